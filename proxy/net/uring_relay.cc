// The liburing relay backend: see proxy/net/uring_relay.h and docs/design.md 4.1.
#include "proxy/net/uring_relay.h"

#include "proxy/net/stream.h"

#include <cerrno>
#include <system_error>

#if PGTANDEM_URING_RELAY

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/op_queue.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/thread_context.hpp>
#include <boost/version.hpp>

#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

namespace pgtandem::proxy {
namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 4096;
constexpr unsigned kBuffers = 256;           // provided buffers per worker (a power of two)
constexpr unsigned kBufferSize = 16 * 1024;  // 4 MB per worker in all
constexpr unsigned kGroup = 1;               // the buffer group id
constexpr unsigned kFixedFiles = 16384;      // legs per worker (two per session)
constexpr uint32_t kMaxHeldBuffers = 4;      // per leg, before its recv pauses (64 KB)

enum Kind : uint64_t { kRecv = 1, kSend = 2, kCancel = 3 };
constexpr uint64_t kAsioPoll = 0;  // user_data of the poll on Asio's epoll descriptor

// The worker loop waits in the ring and runs Asio's handlers when Asio has work (see run_worker).
// That needs five private members of Boost 1.81's scheduler and epoll reactor, reached the one
// way C++ allows (an explicit instantiation may name private members). Check them before
// allowing another Boost version (CMake pins 1.81; proxy/net/relay_read.h depends on it too).
#if BOOST_VERSION != 108100 || defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "proxy/net/uring_relay.cc reaches into Boost 1.81's epoll reactor and scheduler"
#endif
namespace ad = boost::asio::detail;
template <typename Tag, typename Tag::type Member>
struct Reach {
  friend typename Tag::type member(Tag) { return Member; }
};
struct EpollFd {
  using type = int ad::epoll_reactor::*;
  friend type member(EpollFd);
};
template struct Reach<EpollFd, &ad::epoll_reactor::epoll_fd_>;
struct SchedMutex {
  using type = ad::conditionally_enabled_mutex ad::scheduler::*;
  friend type member(SchedMutex);
};
template struct Reach<SchedMutex, &ad::scheduler::mutex_>;
struct TaskInterrupted {
  using type = bool ad::scheduler::*;
  friend type member(TaskInterrupted);
};
template struct Reach<TaskInterrupted, &ad::scheduler::task_interrupted_>;
struct SchedQueue {
  using type = ad::op_queue<ad::scheduler_operation> ad::scheduler::*;
  friend type member(SchedQueue);
};
template struct Reach<SchedQueue, &ad::scheduler::op_queue_>;
struct SchedStopped {
  using type = bool ad::scheduler::*;
  friend type member(SchedStopped);
};
template struct Reach<SchedStopped, &ad::scheduler::stopped_>;
// A socket's implementation (basic_socket keeps it protected): its reactor registration.
struct SocketImpl : RawSocket {
  using RawSocket::impl_;
};
void* reactor_data(RawSocket& socket) {
  return (socket.*(&SocketImpl::impl_)).get_implementation().reactor_data_;
}

uint64_t encode(Kind kind, uint32_t slot, uint32_t gen) {
  return (uint64_t{gen} << 32) | (uint64_t{slot} << 2) | kind;
}

[[noreturn]] void fail(int err, const char* what) {
  throw std::system_error(err, std::system_category(), what);
}

}  // namespace

struct UringRelay::Impl {
  io_uring ring{};
  io_uring_buf_ring* br = nullptr;
  char* buffers = nullptr;
  std::vector<int32_t> next;   // per buffer: the next buffer of the same leg's list
  std::vector<uint32_t> len;   // per buffer: bytes received into it
  std::vector<std::unique_ptr<UringLeg>> legs;
  std::vector<uint32_t> free_slots;
  int epfd = -1;  // Asio's epoll descriptor
  explicit Impl(asio::io_context&) {}
  char* buffer(uint32_t bid) { return buffers + size_t{bid} * kBufferSize; }
  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {  // the SQ is full: submit what is there first
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }
};

UringRelay::UringRelay(asio::io_context& io) : io_(io), impl_(new Impl(io)) {
  Impl& m = *impl_;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
            IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, &m.ring, &p);
  if (r < 0) {
    delete impl_;
    fail(-r, "io_uring_queue_init_params (SINGLE_ISSUER | DEFER_TASKRUN)");
  }
  const size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ring_bytes + size_t{kBuffers} * kBufferSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  // A failure past this point (a kernel without buffer rings or sparse file tables) undoes the
  // setup before it throws: the startup probe runs in the main process.
  auto undo_and_fail = [&](int err, const char* what) {
    io_uring_queue_exit(&m.ring);
    if (mem != MAP_FAILED) munmap(mem, ring_bytes + size_t{kBuffers} * kBufferSize);
    delete impl_;
    fail(err, what);
  };
  if (mem == MAP_FAILED) undo_and_fail(errno, "mmap (provided buffers)");
  m.br = static_cast<io_uring_buf_ring*>(mem);
  m.buffers = static_cast<char*>(mem) + ring_bytes;
  io_uring_buf_ring_init(m.br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(m.br);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  r = io_uring_register_buf_ring(&m.ring, &reg, 0);
  if (r < 0) undo_and_fail(-r, "io_uring_register_buf_ring");
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(m.br, m.buffer(i), kBufferSize, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(m.br, kBuffers);
  m.next.assign(kBuffers, -1);
  m.len.assign(kBuffers, 0);
  r = io_uring_register_files_sparse(&m.ring, kFixedFiles);
  if (r < 0) undo_and_fail(-r, "io_uring_register_files_sparse");
  // Asio's reactor exists once a socket was made on the context; make sure of it.
  auto& reactor = asio::use_service<ad::epoll_reactor>(io);
  reactor.init_task();  // the scheduler's queue then always holds the reactor's entry (run_worker)
  m.epfd = reactor.*member(EpollFd{});
}

UringRelay::~UringRelay() {
  Impl& m = *impl_;
  // Coroutines still waiting on a leg belong to the stopped io_context: never resumed, never
  // destroyed from here.
  for (auto& l : m.legs) {
    l->read_waiter_.forget();
    l->send_waiter_.forget();
  }
  io_uring_queue_exit(&m.ring);
  munmap(m.br, kBuffers * sizeof(io_uring_buf) + size_t{kBuffers} * kBufferSize);
  delete impl_;
}

// After the worker's loop ended (io_ stopped). Waiters still parked on a leg go to io_ as aborted
// completions, which it never runs: its destruction destroys them (their coroutine frames and what
// those hold, releasing their legs to this relay, which outlives io_ in Worker), as it does for the
// operations Asio itself holds on the epoll path. Dropped here instead, every session still open
// at a stop leaked (LeakSanitizer, ShutdownTest.SigintIsFast on the uring relay).
void UringRelay::shut_down() {
  shut_down_ = true;
  for (auto& l : impl_->legs) {
    l->read_waiter_.post_completion(io_, asio::error::operation_aborted);
    l->send_waiter_.post_completion(io_, asio::error::operation_aborted);
  }
}

// SQEs queued by anyone are submitted by the worker loop before it waits again.
void UringRelay::schedule_flush() {}

// The worker thread's loop, instead of io_context::run(): the ring is the only wait.
//   - Asio's epoll descriptor is watched by the ring (a poll SQE, re-armed after each use): Asio's
//     sockets, its timers (timerfd) and its interrupter are in that set, so any of them wakes the
//     ring, and io_context::poll() then runs Asio's ready handlers (one epoll_wait(0) each time).
//   - Handlers posted from this thread (a pump resumed here that starts an Asio operation) land
//     on this loop's thread-private queue: checked after every batch of completions.
//   - Handlers posted from other threads (adopt(), reloads, stop()) make Asio interrupt its
//     reactor only while it believes the reactor is waiting: the loop says so (task_interrupted_
//     = false) under the scheduler's lock before it blocks, after checking that queue is empty;
//     the interrupt makes the epoll descriptor readable, which completes the ring's poll.
//   - The loop is a thread context of the scheduler for its whole life (like run()), so Asio's
//     recycled handler memory and coroutine frames work for the pumps it resumes.
// Per message and direction this is one io_uring_enter that waits and one that submits the send
// (and returns at once with its completion), against epoll_wait + recv + send on epoll.
void UringRelay::run_worker() {
  Impl& m = *impl_;
  auto& sched = asio::use_service<ad::scheduler>(io_);
  ad::scheduler_thread_info info;
  info.private_outstanding_work = 0;
  ad::call_stack<ad::thread_context, ad::thread_info_base>::context ctx(&sched, info);
  bool asio_due = true;
  bool poll_armed = false;
  io_uring_cqe* batch[64];
  struct Done {
    uint64_t user_data;
    int res;
    uint32_t flags;
  } done[64];
  while (!io_.stopped()) {
    if (asio_due || !info.private_op_queue.empty()) {
      // Work posted to this thread's queue counts once it is on the scheduler's.
      for (; info.private_outstanding_work > 0; --info.private_outstanding_work) sched.work_started();
      io_.poll();
      asio_due = false;
      continue;
    }
    if (!poll_armed) {
      io_uring_sqe* sq = m.sqe();
      io_uring_prep_poll_add(sq, m.epfd, POLLIN);
      io_uring_sqe_set_data64(sq, kAsioPoll);
      poll_armed = true;
    }
    {
      ad::conditionally_enabled_mutex::scoped_lock lock(sched.*member(SchedMutex{}));
      // A stop since the loop's check above: io_context::stop() interrupts the reactor only when
      // it is said to wait, which it is not yet, so the ring would sleep through it. Checked
      // under the lock stop() takes: a later stop finds the loop waiting and wakes it.
      if (sched.*member(SchedStopped{})) break;
      auto& queue = sched.*member(SchedQueue{});
      // The reactor's own entry is always there while it does not run; anything more is a
      // handler posted from another thread.
      ad::scheduler_operation* front = queue.front();
      if (front != nullptr && ad::op_queue_access::next(front) != nullptr) {
        asio_due = true;
        continue;
      }
      sched.*member(TaskInterrupted{}) = false;
    }
    running_ = true;
    io_uring_submit_and_wait(&m.ring, 1);
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&m.ring, batch, 64);
      if (n == 0) break;
      for (unsigned i = 0; i < n; ++i) done[i] = {batch[i]->user_data, batch[i]->res, batch[i]->flags};
      io_uring_cq_advance(&m.ring, n);
      for (unsigned i = 0; i < n; ++i) {
        if (done[i].user_data == kAsioPoll) {
          poll_armed = false;
          asio_due = true;
        } else {
          handle(done[i].user_data, done[i].res, done[i].flags);
        }
      }
    }
    running_ = false;
  }
}

void UringRelay::handle(uint64_t user_data, int res, uint32_t flags) {
  const auto kind = static_cast<Kind>(user_data & 3);
  if (kind == kCancel) return;
  const auto slot = static_cast<uint32_t>((user_data >> 2) & 0x3fffffff);
  const auto gen = static_cast<uint32_t>(user_data >> 32);
  Impl& m = *impl_;
  UringLeg* leg = slot < m.legs.size() ? m.legs[slot].get() : nullptr;
  const bool stale = leg == nullptr || !leg->in_use_ || leg->gen_ != gen;
  if (kind == kRecv) {
    if (stale) {
      if (flags & IORING_CQE_F_BUFFER) recycle(flags >> IORING_CQE_BUFFER_SHIFT);
      return;
    }
    on_recv(*leg, res, flags);
    return;
  }
  if (stale) return;  // a send of a released leg (release cancelled it and completed its waiter)
  leg->sending_ = false;
  boost::system::error_code ec;
  if (res < 0) {
    ec = boost::system::error_code(-res, boost::system::system_category());
  } else if (static_cast<size_t>(res) < leg->send_size_) {
    ec = asio::error::broken_pipe;
  }
  if (leg->send_waiter_) leg->send_waiter_.complete(ec, res > 0 ? static_cast<size_t>(res) : 0);
}

void UringRelay::on_recv(UringLeg& leg, int res, uint32_t flags) {
  Impl& m = *impl_;
  bool no_buffers = false;
  if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
    const uint32_t bid = flags >> IORING_CQE_BUFFER_SHIFT;
    m.len[bid] = static_cast<uint32_t>(res);
    m.next[bid] = -1;
    if (leg.tail_ >= 0) {
      m.next[leg.tail_] = static_cast<int32_t>(bid);
    } else {
      leg.head_ = static_cast<int32_t>(bid);
      leg.head_off_ = 0;
    }
    leg.tail_ = static_cast<int32_t>(bid);
    ++leg.held_;
  } else if (res == 0) {
    leg.eof_ = true;
  } else if (res == -ENOBUFS) {
    no_buffers = true;
  } else if (res < 0 && res != -ECANCELED) {
    leg.error_ = -res;
  }
  if ((flags & IORING_CQE_F_MORE) == 0) {
    leg.armed_ = false;
    leg.pausing_ = false;
    if (no_buffers && !leg.starving_) {
      leg.starving_ = true;
      ++starving_count_;
    }
  } else if (leg.held_ >= kMaxHeldBuffers && !leg.pausing_) {
    // Flow control: the pump is behind; stop this socket's recv until it has taken some.
    io_uring_sqe* s = m.sqe();
    io_uring_prep_cancel64(s, encode(kRecv, leg.slot_, leg.gen_), 0);
    io_uring_sqe_set_data64(s, encode(kCancel, leg.slot_, leg.gen_));
    leg.pausing_ = true;
  }
  if (leg.read_waiter_ && (leg.head_ >= 0 || leg.eof_ || leg.error_ != 0)) {
    leg.clear_slot();
    leg.read_waiter_.complete({}, 0);
  } else if (leg.read_waiter_ && !leg.armed_ && !leg.starving_) {
    arm_recv(leg);  // ended with nothing for the waiting pump (a pause's cancel): go on
  }
}

void UringRelay::arm_recv(UringLeg& leg) {
  io_uring_sqe* s = impl_->sqe();
  io_uring_prep_recv_multishot(s, static_cast<int>(leg.slot_), nullptr, 0, 0);
  s->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
  s->buf_group = kGroup;
  io_uring_sqe_set_data64(s, encode(kRecv, leg.slot_, leg.gen_));
  leg.armed_ = true;
  schedule_flush();
}

void UringRelay::queue_send(UringLeg& leg, const void* data, std::size_t size) {
  io_uring_sqe* s = impl_->sqe();
  io_uring_prep_send(s, static_cast<int>(leg.slot_), data, size, MSG_WAITALL | MSG_NOSIGNAL);
  s->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(s, encode(kSend, leg.slot_, leg.gen_));
  schedule_flush();
}

void UringRelay::recycle(uint32_t bid) {
  Impl& m = *impl_;
  io_uring_buf_ring_add(m.br, m.buffer(bid), kBufferSize, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(m.br, 1);
  if (starving_count_ != 0) rearm_starving();
}

void UringRelay::rearm_starving() {
  for (auto& l : impl_->legs) {
    if (l && l->in_use_ && l->starving_) {
      l->starving_ = false;
      --starving_count_;
      if (!l->armed_ && !l->eof_ && l->error_ == 0) arm_recv(*l);
    }
  }
}

UringLeg* UringRelay::attach(RawSocket& socket) {
  if (shut_down_) return nullptr;
  int fd = socket.native_handle();
  Impl& m = *impl_;
  uint32_t slot;
  if (!m.free_slots.empty()) {
    slot = m.free_slots.back();
    m.free_slots.pop_back();
  } else {
    if (m.legs.size() >= kFixedFiles) return nullptr;
    slot = static_cast<uint32_t>(m.legs.size());
    m.legs.emplace_back(new UringLeg());
    m.legs.back()->relay_ = this;
    m.legs.back()->slot_ = slot;
  }
  if (io_uring_register_files_update(&m.ring, slot, &fd, 1) != 1) {
    m.free_slots.push_back(slot);
    return nullptr;
  }
  UringLeg& leg = *m.legs[slot];
  leg.in_use_ = true;
  leg.fd_ = fd;
  // Off Asio's epoll interest for input: its readiness would wake the ring's poll of that set
  // for nothing on every message. EPOLLOUT stays, so an Asio write that finds the socket full
  // (a routed read's reply) still learns when it drains.
  leg.asio_data_ = reactor_data(socket);
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLET;
  ev.data.ptr = leg.asio_data_;
  epoll_ctl(m.epfd, EPOLL_CTL_MOD, fd, &ev);
  leg.head_ = leg.tail_ = -1;
  leg.head_off_ = leg.held_ = 0;
  leg.armed_ = leg.pausing_ = leg.starving_ = leg.eof_ = leg.sending_ = false;
  leg.error_ = 0;
  arm_recv(leg);
  return &leg;
}

void UringRelay::release(UringLeg* leg) {
  if (leg == nullptr || !leg->in_use_) return;
  Impl& m = *impl_;
  if (shut_down_) {
    leg->read_waiter_.forget();
    leg->send_waiter_.forget();
    leg->in_use_ = false;
    return;
  }
  // A send or recv still queued in the SQ would run after the cancel below, on a slot that may
  // hold another socket by then: submit first.
  if (io_uring_sq_ready(&m.ring) != 0) io_uring_submit(&m.ring);
  // Nothing of this leg stays in the kernel: a pending send no longer reads the pump's buffer,
  // and the recv takes no byte meant for whoever reads the socket next (a flip's mirror link).
  io_uring_sync_cancel_reg reg{};
  reg.fd = static_cast<int32_t>(leg->slot_);
  reg.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL;
  reg.timeout.tv_sec = -1;
  reg.timeout.tv_nsec = -1;
  if (leg->armed_ || leg->sending_) io_uring_register_sync_cancel(&m.ring, &reg);
  int minus_one = -1;
  io_uring_register_files_update(&m.ring, leg->slot_, &minus_one, 1);
  // Back to Asio's registration as it made it (the socket may go on with Asio: a flip). Not
  // EPOLL_CTL_ADD: the descriptor never left the set.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLOUT | EPOLLET;
  ev.data.ptr = leg->asio_data_;
  epoll_ctl(m.epfd, EPOLL_CTL_MOD, leg->fd_, &ev);
  while (leg->head_ >= 0) {
    const auto bid = static_cast<uint32_t>(leg->head_);
    leg->head_ = m.next[bid];
    recycle(bid);
  }
  leg->tail_ = -1;
  leg->held_ = 0;
  if (leg->starving_) --starving_count_;
  leg->starving_ = false;
  leg->clear_slot();
  leg->read_waiter_.post_completion(io_, asio::error::operation_aborted);
  leg->send_waiter_.post_completion(io_, asio::error::operation_aborted);
  leg->in_use_ = false;
  ++leg->gen_;
  m.free_slots.push_back(leg->slot_);
  schedule_flush();  // the cancelled requests' completions (stale now) free their buffers
}

std::size_t UringLeg::take(void* data, std::size_t size, boost::system::error_code& ec) {
  UringRelay::Impl& m = *relay_->impl_;
  std::size_t copied = 0;
  auto* out = static_cast<char*>(data);
  while (copied < size && head_ >= 0) {
    const auto bid = static_cast<uint32_t>(head_);
    const std::size_t n = std::min<std::size_t>(m.len[bid] - head_off_, size - copied);
    std::memcpy(out + copied, m.buffer(bid) + head_off_, n);
    copied += n;
    head_off_ += static_cast<uint32_t>(n);
    if (head_off_ == m.len[bid]) {
      head_ = m.next[bid];
      if (head_ < 0) tail_ = -1;
      head_off_ = 0;
      --held_;
      relay_->recycle(bid);
    }
  }
  if (copied == 0 && head_ < 0) {
    if (error_ != 0) {
      ec = boost::system::error_code(error_, boost::system::system_category());
    } else if (eof_) {
      ec = asio::error::eof;
    }
  }
  if (in_use_ && !armed_ && !pausing_ && !starving_ && !eof_ && error_ == 0 &&
      held_ < kMaxHeldBuffers) {
    relay_->arm_recv(*this);
  }
  return copied;
}

void UringLeg::start_wait() {
  if (!in_use_) {
    clear_slot();
    read_waiter_.post_completion(relay_->io_, asio::error::operation_aborted);
    return;
  }
  if (head_ >= 0 || eof_ || error_ != 0) {
    clear_slot();
    read_waiter_.post_completion(relay_->io_, {});
    return;
  }
  if (!armed_ && !starving_) relay_->arm_recv(*this);
}

void UringLeg::start_send(const void* data, std::size_t size) {
  if (!in_use_) {
    send_waiter_.post_completion(relay_->io_, asio::error::operation_aborted);
    return;
  }
  sending_ = true;
  send_size_ = size;
  relay_->queue_send(*this, data, size);
}

void UringLeg::cancel() {
  if (!read_waiter_) return;
  clear_slot();
  read_waiter_.post_completion(relay_->io_, asio::error::operation_aborted);
}

void UringLeg::cancel_from_slot() {
  // Called by the slot's own handler: leave the slot alone (clearing it would destroy the caller).
  read_slot_ = {};
  if (read_waiter_) read_waiter_.post_completion(relay_->io_, asio::error::operation_aborted);
}

void UringLeg::clear_slot() {
  if (read_slot_.is_connected()) read_slot_.clear();
  read_slot_ = {};
}

UringLeg* uring_attach(UringRelay& relay, RawSocket& socket) { return relay.attach(socket); }
void uring_release(UringRelay& relay, UringLeg* leg) { relay.release(leg); }
void uring_cancel(UringLeg& leg) { leg.cancel(); }

}  // namespace pgtandem::proxy

#else  // built without the liburing relay: nothing is ever attached

namespace pgtandem::proxy {
UringRelay::UringRelay(asio::io_context& io) : io_(io), impl_(nullptr) {
  throw std::system_error(ENOSYS, std::system_category(), "built without PGTANDEM_URING_RELAY");
}
UringRelay::~UringRelay() = default;
void UringRelay::run_worker() {}
void UringRelay::shut_down() {}
UringLeg* UringRelay::attach(RawSocket&) { return nullptr; }
void UringRelay::release(UringLeg*) {}
std::size_t UringLeg::take(void*, std::size_t, boost::system::error_code& ec) {
  ec = asio::error::operation_not_supported;
  return 0;
}
void UringLeg::start_wait() {}
void UringLeg::start_send(const void*, std::size_t) {}
void UringLeg::cancel() {}
void UringLeg::cancel_from_slot() {}
void UringLeg::clear_slot() {}
UringLeg* uring_attach(UringRelay&, RawSocket&) { return nullptr; }
void uring_release(UringRelay&, UringLeg*) {}
void uring_cancel(UringLeg&) {}
}  // namespace pgtandem::proxy

#endif
