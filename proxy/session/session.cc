// One client session (proxy/session/session.h): run() logs the client in, then runs the two pumps.
// The Session class and its parts: proxy/session/session_state.h.
#include "proxy/session/session.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <cstring>
#include <memory>
#include <string>

#include "protocol/errors.h"
#include "proxy/session/session_state.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {
namespace session {

using namespace asio::experimental::awaitable_operators;

Session::Session(Worker& worker, Socket client)
    : worker_(worker),
      state_(worker.state()),
      stats_(worker.stats()),
      client_(std::move(client)),
      backend_(worker.io()),
      answered_(worker.io()),
      client_free_(worker.io()),
      flip_front_(worker.io()),
      flip_back_(worker.io()) {}

std::string fatal(std::string_view sqlstate, std::string_view message, std::string_view detail) {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kFatal, sqlstate, message, detail);
  return out;
}

asio::awaitable<void> Session::run() {
  ServerState& st = state_;
  const auto& limits = st.config->limits;
  st.metrics->session_started();

  AuthResult login = AuthResult::kDone;
  {
    auto r = co_await (startup_and_login() ||
                       deadline(std::chrono::milliseconds(limits.startup_timeout_ms)));
    if (r.index() == 0) {
      login = std::get<0>(r);
    } else {
      st.metrics->rejected(RejectReason::kStartupTimeout);
      log::debug("startup timeout");
    }
  }
  release_login_slot();
  if (login != AuthResult::kReady) {
    close_backend();
    close_client();
    co_return;
  }

  primary_pid_ = backend_pid_;
  primary_secret_ = backend_secret_;
  if (have_key_) st.cancels.add(backend_pid_, backend_secret_, target_);
  start_secondary();
  adopt_login_leftovers();

  {
    DrainRegistration drain_registration(worker_, &drain_signal_);
    co_await (pump_frontend() && pump_backend());
  }

  // The mirror applies what it was given even after the client left.
  if (shadow_lane_) shadow_lane_->close();
  release_order_reservation();  // a COMMIT whose answer never came: nothing will take its number
  if (mirror_) mirror_->finish();
  if (have_key_) st.cancels.remove(backend_pid_, backend_secret_);
  close_backend();
  close_client();
}

asio::awaitable<void> Session::deadline(std::chrono::milliseconds d) {
  asio::steady_timer timer(worker_.io(), d);
  co_await timer.async_wait(kNoThrow);
}

void Session::release_login_slot() {
  if (!holds_login_slot_) return;
  holds_login_slot_ = false;
  state_.unauthenticated.fetch_sub(1, std::memory_order_relaxed);
}

void Session::close_client() {
  boost::system::error_code ec;
  client_.close(ec);
}

void Session::close_backend() {
  boost::system::error_code ec;
  backend_.close(ec);
}

// The pumps' buffers, with what each side sent right behind the login.
void Session::adopt_login_leftovers() {
  fbuf_.bind(worker_.frontend_buffers());
  bbuf_.bind(worker_.backend_buffers());
  fbuf_.hold();
  bbuf_.hold();
  // Bytes the client sent right behind its last login message belong to the session.
  if (!in_.empty() && in_.size() <= kFrontendBufferSize) {
    std::memcpy(fbuf_.data(), in_.data(), in_.size());
    fend_ = in_.size();
  }
  if (!backend_login_leftover_.empty() && backend_login_leftover_.size() <= kBackendBufferSize) {
    std::memcpy(bbuf_.data(), backend_login_leftover_.data(), backend_login_leftover_.size());
    bend_ = backend_login_leftover_.size();
  }
  in_.clear();
  in_.shrink_to_fit();
  backend_login_leftover_.clear();
  backend_login_leftover_.shrink_to_fit();
}

}  // namespace session

asio::awaitable<void> run_session(Worker& worker, Socket client) {
  session::Session s(worker, std::move(client));
  co_await s.run();
}

}  // namespace pgtandem::proxy
