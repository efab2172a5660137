#include "proxy/migrate/fence_client.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

namespace pgtandem::proxy::migrate {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPauseTimeoutMs = 5000;  // per pgtandem: in-flight transactions must end within it
constexpr int kPauseLeaseMs = 3000;    // a pause the tool never armed ends by itself after this
constexpr int kCutAttempts = 3;        // pauses that timed out under load are tried again

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct FenceReply {
  int status = 0;  // 0: not answered
  std::optional<pm::Json> json;
  std::string error;
  std::string str(const char* key) const {
    const pm::Json* v = json ? json->get(key) : nullptr;
    return v ? v->as_string() : std::string();
  }
  int64_t num(const char* key) const {
    const pm::Json* v = json ? json->get(key) : nullptr;
    return v ? v->as_int() : 0;
  }
};

FenceReply fence_call(const Context& ctx, const std::string& admin, const std::string& query) {
  FenceReply r;
  std::string body;
  std::vector<std::string> headers;
  if (!ctx.admin_token.empty()) headers.push_back("Authorization: Bearer " + ctx.admin_token);
  if (!admin_request(admin, "POST", "/mirror/fence?" + query, headers, "", kPauseTimeoutMs + 5000,
                     &r.status, &body, &r.error)) {
    r.status = 0;
    return r;
  }
  r.json = pm::Json::parse(body);
  if (r.status != 200) {
    const std::string e = r.str("error");
    r.error = "pgtandem " + admin + ": " + (e.empty() ? "answered " + std::to_string(r.status) : e);
  }
  return r;
}

}  // namespace

FenceClient::FenceClient(const Context& ctx, std::vector<std::string> admins)
    : ctx_(ctx), admins_(std::move(admins)) {}

bool FenceClient::pause_all(double* pause_ms, bool* unavailable_out, std::string* why_out) {
  const std::string q = "action=pause&timeout_ms=" + std::to_string(kPauseTimeoutMs) +
                        "&lease_ms=" + std::to_string(kPauseLeaseMs);
  for (int attempt = 1;; ++attempt) {
    std::vector<FenceReply> replies(admins_.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < admins_.size(); ++i)
      threads.emplace_back([&, i] { replies[i] = fence_call(ctx_, admins_[i], q); });
    for (auto& t : threads) t.join();
    bool all = true, unavailable = false, retry = false;
    std::string why;
    ids_.assign(admins_.size(), "");
    for (size_t i = 0; i < replies.size(); ++i) {
      const FenceReply& r = replies[i];
      if (r.status == 200) {
        ids_[i] = r.str("id");
        *pause_ms = std::max(*pause_ms, static_cast<double>(r.num("pause_ms")));
        continue;
      }
      all = false;
      if (why.empty()) why = r.error;
      // 404: a pgtandem without the fence; 403: no token there; 409 without a fence held: catch-up
      // off; 507: its journal file too near its limit. Those cannot be waited out.
      if (r.status == 404 || r.status == 403 || r.status == 507 ||
          (r.status == 409 && r.error.find("catchup") != std::string::npos))
        unavailable = true;
      if (r.status == 503 || (r.status == 409 && r.error.find("already held") != std::string::npos))
        retry = true;
    }
    if (all) return true;
    release_all();
    if (unavailable) {
      *unavailable_out = true;
      *why_out = why;
      return false;
    }
    if (!retry || attempt >= kCutAttempts) {
      *why_out = "cannot pause traffic for the snapshot: " + why;
      return false;
    }
    std::fprintf(stderr, "pgtandem backfill: %s; trying again in %d s\n", why.c_str(), attempt);
    std::this_thread::sleep_for(std::chrono::seconds(attempt));
  }
}

// `action` (arm, renew) with a fresh lease on every fence, in turn; false at the first refusal.
bool FenceClient::each_with_lease(const char* action, std::string* error) {
  for (size_t i = 0; i < admins_.size(); ++i) {
    auto r = fence_call(ctx_, admins_[i],
                        std::string("action=") + action + "&id=" + ids_[i] + "&lease_ms=" +
                            std::to_string(ctx_.opt.fence_lease_ms));
    if (r.status != 200) {
      *error = r.error;
      return false;
    }
  }
  return true;
}

bool FenceClient::arm_all(std::string* error) {
  if (each_with_lease("arm", error)) return true;
  *error = "cannot arm the mirror fence: " + *error;
  return false;
}

void FenceClient::release_all() {
  for (size_t i = 0; i < admins_.size(); ++i) {
    if (ids_.size() <= i || ids_[i].empty()) continue;
    auto r = fence_call(ctx_, admins_[i], "action=release&id=" + ids_[i]);
    if (r.status != 200 && r.status != 409)
      std::fprintf(stderr, "pgtandem backfill: releasing the fence: %s (its lease ends it)\n", r.error.c_str());
  }
}

bool FenceClient::renew_all(std::string* error) { return each_with_lease("renew", error); }

// After the release: every pgtandem's catch-up applies what the fence held back; the run ends
// when each is live again (a verify right after then sees `new` complete). Fails only when a
// catch-up makes no progress for the watermark timeout.
bool FenceClient::wait_caught_up(int64_t* entries, std::string* error) {
  for (size_t i = 0; i < admins_.size(); ++i) {
    int64_t last_left = -1;
    auto last_move = Clock::now();
    bool printed = false;
    for (;;) {
      auto r = fence_call(ctx_, admins_[i], "action=status");
      if (r.status != 200) {
        *error = "after the copy: " + r.error;
        return false;
      }
      const int64_t left = r.num("backlog_entries");
      if (r.str("catchup") == "live" && left == 0) break;
      if (!printed && left > 0) {
        std::printf("mirror %s: applying %lld writes journaled during the copy\n", admins_[i].c_str(),
                    static_cast<long long>(left));
        std::fflush(stdout);
        printed = true;
        *entries += left;
      }
      if (left != last_left) {
        last_left = left;
        last_move = Clock::now();
      } else if (ms_since(last_move) > ctx_.opt.watermark_timeout_ms) {
        *error = "pgtandem " + admins_[i] + ": catch-up made no progress for " +
                   std::to_string(ctx_.opt.watermark_timeout_ms) + " ms (" + std::to_string(left) +
                   " entries left, catch-up " + r.str("catchup") + "); the copy is complete, the mirror is behind";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return true;
}

}  // namespace pgtandem::proxy::migrate
