// The mirror fence (issue 13; docs/migration.md, "Snapshot backfill"): what lets `pgtandem
// backfill` copy whole tables from one snapshot of the primary, with no row lock, and stay exact
// while clients keep writing through pgtandem. Driven over the admin API, POST /mirror/fence:
//   action=pause&timeout_ms=T&lease_ms=L  close the pause gate (the cutover's), wait until no
//       transaction is in flight and the mirror has applied every unit numbered so far; the reply
//       names the fence's id and that last number. Sessions wait at their next boundary until
//       arm or release, or until the pause's lease ends (then they go on, no fence).
//   action=arm&id=X&lease_ms=L  the fence: from now on every mirrored unit goes to the journal and
//       catch-up applies none of it; the gate opens. The tool takes its snapshot on the primary
//       before this (nothing commits through pgtandem while paused), so the snapshot holds exactly
//       the units up to the fence and the journal exactly those after it.
//   action=renew&id=X&lease_ms=L  the tool is alive; 409 once the fence ended (why in the reply).
//   action=release&id=X  catch-up applies the journal on top of the copies and returns to live.
//   action=status  the fence, catch-up's state and the backlog.
// A fence ends by itself when its lease runs out (a killed tool) or when the journal file reaches
// 3/4 of [mirror] journal_max_bytes (the limit counts the file; at it mirroring would stop):
// catch-up then applies the journal. Either way nothing is lost; the tool learns it at its next
// renew and counts no table copied after it. A pause is refused (507) while the file is already
// at half the limit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace pgtandem::proxy {

struct ServerState;

// Every mirrored write so far is on the mirror target: nothing queued, every unit numbered is
// done and, with catch-up, no journal backlog (the cutover's pause and the fence's wait for it).
bool mirror_settled(const ServerState& state);

class MirrorFence {
 public:
  // `journal_max_bytes`: [mirror] journal_max_bytes (see above).
  MirrorFence(ServerState& state, uint64_t journal_max_bytes);
  ~MirrorFence();  // opens a pause, ends a fence
  MirrorFence(const MirrorFence&) = delete;
  MirrorFence& operator=(const MirrorFence&) = delete;

  struct Reply {
    int status = 200;
    std::string body;  // JSON
  };
  // One admin request (POST /mirror/fence's query, parsed by the admin glue). Blocking (a pause
  // waits for the transactions in flight): the admin thread's.
  struct Request {
    std::string action, id;
    int64_t timeout_ms = 5000, lease_ms = 10000;  // clamped to 1..60000 and 200..600000
  };
  Reply handle(Request request);

 private:
  enum class State { kIdle, kPaused, kArmed };
  Reply pause(int64_t timeout_ms, int64_t lease_ms);
  Reply arm(const std::string& id, int64_t lease_ms);
  Reply renew(const std::string& id, int64_t lease_ms);
  Reply release(const std::string& id);
  Reply status();
  void unpause(const std::string& why);            // under mu_, State::kPaused: no fence
  void end(const std::string& why, bool expired);  // under mu_, State::kArmed
  void watch();                                    // the lease thread
  std::string state_json() const;                  // under mu_

  ServerState& state_;
  uint64_t journal_max_bytes_;
  std::mutex mu_;
  State st_ = State::kIdle;
  std::string id_;
  std::string last_id_, last_end_;  // the fence that ended last, and why
  uint64_t through_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace pgtandem::proxy
