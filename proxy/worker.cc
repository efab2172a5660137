// A worker's thread and what it keeps for the process: the sessions it adopts, the mirror links
// started on it (journaled at shutdown), the drain signals. The data path itself is in session/.
#include "proxy/worker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_link.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/net/uring_relay.h"
#include "proxy/session/session.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

ServerState::ServerState() = default;
ServerState::~ServerState() = default;

Worker::Worker(size_t index, ServerState& state) : index_(index), state_(state) {}

void Worker::adopt(int family, int protocol, int fd) {
  sessions_.fetch_add(1, std::memory_order_relaxed);
  asio::post(io_, [this, family, protocol, fd] {
    Socket socket(io_, asio::generic::stream_protocol(family, protocol), fd);
    asio::co_spawn(
        io_,
        [this, s = std::move(socket)]() mutable -> asio::awaitable<void> {
          state_.metrics->client_connected();
          co_await run_session(*this, std::move(s));
          state_.metrics->client_disconnected();
          state_.clients.fetch_sub(1, std::memory_order_relaxed);
          sessions_.fetch_sub(1, std::memory_order_relaxed);
        },
        asio::detached);
  });
}

void Worker::add_mirror_link(const std::shared_ptr<MirrorLink>& link) {
  std::lock_guard lock(mirror_links_mu_);
  if (mirror_links_.size() >= 64 && mirror_links_.size() % 64 == 0) {
    std::erase_if(mirror_links_, [](const auto& w) { return w.expired(); });
  }
  mirror_links_.push_back(link);
}

namespace {
std::vector<std::shared_ptr<MirrorLink>> live(std::mutex& mu,
                                              std::vector<std::weak_ptr<MirrorLink>>& links) {
  std::lock_guard lock(mu);
  std::erase_if(links, [](const auto& w) { return w.expired(); });
  std::vector<std::shared_ptr<MirrorLink>> out;
  for (auto& weak : links) {
    if (auto link = weak.lock()) out.push_back(std::move(link));
  }
  return out;
}
}  // namespace

void Worker::journal_pending_mirror_writes() {
  for (auto& link : live(mirror_links_mu_, mirror_links_)) link->journal_pending("shutdown");
}

void Worker::close_mirror_links() {
  for (auto& link : live(mirror_links_mu_, mirror_links_)) {
    link->close();
    link->abandon_idle();
  }
}

// (The thread has ended: Server::stop() joined it. A link parked idle holds its own coroutine, and
// the coroutine the link: let go here, before io_ goes, or neither would ever be freed.)
Worker::~Worker() { close_mirror_links(); }

void Worker::wake_for_drain() {
  // Copied first: a woken session may unregister while the signals are emitted.
  std::vector<asio::cancellation_signal*> signals(drain_signals_.begin(), drain_signals_.end());
  for (auto* signal : signals) {
    if (drain_signals_.count(signal) != 0) signal->emit(asio::cancellation_type::terminal);
  }
}

bool Worker::mirror_links_drained() {
  for (auto& link : live(mirror_links_mu_, mirror_links_)) {
    if (!link->drained()) return false;
  }
  return true;
}

void Worker::start() {
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    // Named for `top -H`, perf and /proc/PID/task/*/comm (15 characters at most): pgt-worker-N,
    // pgt-link-N (a mirror link thread's index among those threads).
    const std::string name = mirror_home_role_
                                 ? "pgt-link-" + std::to_string(index_ - state_.workers.size())
                                 : "pgt-worker-" + std::to_string(index_);
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    if (mirror_home_role_) {
      // This thread only (Linux: a thread's nice is its own); the relay's threads keep theirs.
      if (nice_ != 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice_) != 0) {
        log::warn("mirror link thread: nice not applied",
                  {{"nice", std::to_string(nice_)}, {"error", std::strerror(errno)}});
      }
      io_.run();
      return;
    }
#if PGTANDEM_URING_RELAY
    // io_backend = "uring": the ring is created here, on the thread that alone submits to it
    // (IORING_SETUP_SINGLE_ISSUER); start_server probed the same setup before any worker started.
    if (state_.uring_relay) uring_ = std::make_unique<UringRelay>(io_);
#endif
    if (uring_) {
      uring_->run_worker();  // the ring waits; it runs Asio's handlers too (uring_relay.cc)
      uring_->shut_down();
    } else {
      io_.run();
    }
  });
}

void Worker::stop() { io_.stop(); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace pgtandem::proxy
