// The liburing relay backend (io_backend = "uring"; docs/design.md 4.1, issue 17): one io_uring per
// worker carries the session pumps' socket I/O for plain TCP sessions after login. Everything else
// (logins, TLS, Unix sockets, routed reads, shadow lanes, mirror links, the admin API, timers)
// stays on the worker's Asio io_context. The ring is the worker thread's only wait and runs Asio's
// handlers when Asio has work (UringRelay::run_worker; docs/design.md 4.1).
//
// A UringLeg is one socket's presence on the ring, taken by a pump after login (Stream::attach_uring)
// and given back at close, at a flip (detach), or with the Stream:
//   - reads: a multishot recv with buffer selection from the worker's provided buffer ring; what
//     arrives waits in the ring's buffers, listed per leg, until the pump takes it (`take`, a copy
//     into the pump's own buffer, where the policy hooks read whole messages as before); a leg that
//     holds kMaxHeldBuffers stops receiving until the pump catches up (flow control: one slow
//     client cannot take every buffer of the worker);
//   - writes: IORING_OP_SEND with MSG_WAITALL (all of it, or an error), queued and submitted with
//     the worker's next ring entry together with every other send of that loop turn;
//   - the socket is a registered (fixed) file for its time on the ring.
// No allocation per message: handlers are stored in place (StoredHandler), buffers are the ring's.
// Included by the pumps and by proxy/net/stream.h's users that attach; liburing.h stays in the .cc.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "proxy/net/stream.h"
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace pgtandem::proxy {

namespace asio = boost::asio;

// A completion handler kept in fixed storage (no allocation); invoked at most once.
class StoredHandler {
 public:
  StoredHandler() = default;
  StoredHandler(const StoredHandler&) = delete;
  StoredHandler& operator=(const StoredHandler&) = delete;
  ~StoredHandler() { reset(); }

  explicit operator bool() const { return invoke_ != nullptr; }

  template <typename Handler>
  void emplace(Handler&& handler) {
    using H = std::decay_t<Handler>;
    static_assert(sizeof(H) <= kSize && alignof(H) <= alignof(std::max_align_t),
                  "StoredHandler: the pumps' handler no longer fits its fixed storage");
    reset();
    ::new (static_cast<void*>(storage_)) H(std::forward<Handler>(handler));
    invoke_ = [](void* p, boost::system::error_code ec, std::size_t n) {
      H* h = static_cast<H*>(p);
      H local(std::move(*h));
      h->~H();
      std::move(local)(ec, n);
    };
    destroy_ = [](void* p) { static_cast<H*>(p)->~H(); };
    post_ = [](void* p, asio::io_context& io, boost::system::error_code ec) {
      H* h = static_cast<H*>(p);
      asio::post(io, [local = H(std::move(*h)), ec]() mutable { std::move(local)(ec, 0); });
      h->~H();
    };
  }
  // Takes the handler out and calls it (the storage is free again before the call).
  void complete(boost::system::error_code ec, std::size_t n) {
    auto* f = invoke_;
    clear();
    f(storage_, ec, n);
  }
  // Moves the handler into a posted call (an aborted operation completes later, never inside the
  // caller: close and cancel are called from other coroutines). Rare path; Asio recycles the memory.
  void post_completion(asio::io_context& io, boost::system::error_code ec) {
    if (post_ == nullptr) return;
    auto* f = post_;
    clear();
    f(storage_, io, ec);
  }
  void reset() {
    auto* d = destroy_;
    clear();  // first: destroying a coroutine's handler may release this leg again
    if (d != nullptr) d(storage_);
  }
  // Drops the handler without running its destructor (after the worker's io_context stopped:
  // the coroutine it would destroy belongs to a context being torn down).
  void forget() { clear(); }

 private:
  static constexpr std::size_t kSize = 96;
  alignas(std::max_align_t) unsigned char storage_[kSize];
  void (*invoke_)(void*, boost::system::error_code, std::size_t) = nullptr;
  void (*destroy_)(void*) = nullptr;
  void (*post_)(void*, asio::io_context&, boost::system::error_code) = nullptr;
  void clear() {
    invoke_ = nullptr;
    destroy_ = nullptr;
    post_ = nullptr;
  }
};

class UringRelay;

class UringLeg {
 public:
  UringLeg(const UringLeg&) = delete;
  UringLeg& operator=(const UringLeg&) = delete;

  // Copies what has arrived, up to `size` bytes, into `data` (no syscall). 0 with `ec` clear:
  // nothing yet (async_wait for it); `ec` is set (eof, or the socket's error) once everything
  // received before the end has been taken.
  std::size_t take(void* data, std::size_t size, boost::system::error_code& ec);
  // take() has something now (bytes, eof or an error): no need to wait.
  bool ready() const { return head_ >= 0 || eof_ || error_ != 0; }

  // Completes with no error when take() has something (bytes, eof or an error); with
  // operation_aborted when cancelled (cancel(), close(), or the handler's cancellation slot).
  template <typename Token>
  auto async_wait(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          if (slot.is_connected()) {
            read_slot_ = slot;
            slot.template emplace<WaitCancellation>(this);
          }
          read_waiter_.emplace(std::move(handler));
          start_wait();
        },
        token);
  }

  // Sends all of [data, data + size) (MSG_WAITALL), queued for the worker's next ring entry. The
  // bytes must stay untouched until the completion, which reports the bytes sent.
  template <typename Token>
  auto async_send(const void* data, std::size_t size, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this, data, size](auto handler) {
          send_waiter_.emplace(std::move(handler));
          start_send(data, size);
        },
        token);
  }

  // A waiting read completes with operation_aborted (Stream::cancel).
  void cancel();

 private:
  friend class UringRelay;
  struct WaitCancellation {
    UringLeg* leg;
    explicit WaitCancellation(UringLeg* l) : leg(l) {}
    void operator()(asio::cancellation_type_t) { leg->cancel_from_slot(); }
  };
  UringLeg() = default;
  void start_wait();
  void start_send(const void* data, std::size_t size);
  void cancel_from_slot();
  void clear_slot();

  UringRelay* relay_ = nullptr;
  uint32_t slot_ = 0;  // index in the relay's leg table and its fixed-file table
  uint32_t gen_ = 0;   // bumped at every release: completions of an earlier use are stale
  int fd_ = -1;
  void* asio_data_ = nullptr;  // Asio's registration of the socket in its epoll set
  // Received and not yet taken: provided buffers, linked through the relay's per-buffer arrays.
  int32_t head_ = -1;
  int32_t tail_ = -1;
  uint32_t head_off_ = 0;
  uint32_t held_ = 0;
  bool in_use_ = false;
  bool armed_ = false;         // a multishot recv is in the kernel
  bool pausing_ = false;       // a cancel of it is on the way (flow control)
  bool starving_ = false;      // the recv ended for want of buffers: re-armed when some come back
  bool eof_ = false;
  bool sending_ = false;
  int error_ = 0;              // errno of a failed recv
  std::size_t send_size_ = 0;
  StoredHandler read_waiter_;
  StoredHandler send_waiter_;
  asio::cancellation_slot read_slot_;
};

// The worker's ring. Created on the worker thread (IORING_SETUP_SINGLE_ISSUER), used there only.
class UringRelay {
 public:
  // Sets up the ring, its provided buffers and fixed-file table for the worker of `io`. Throws
  // std::system_error when the kernel refuses (pgtandem then does not start).
  explicit UringRelay(asio::io_context& io);
  ~UringRelay();
  UringRelay(const UringRelay&) = delete;
  UringRelay& operator=(const UringRelay&) = delete;

  // Puts socket `fd` (plain TCP) on the ring; null when the table is full (the session then stays
  // on Asio).
  UringLeg* attach(RawSocket& socket);
  // Takes the socket off the ring, synchronously: no request of the leg is left in the kernel,
  // waiters complete with operation_aborted (posted), unread bytes held by the leg are dropped.
  // The descriptor itself is left open (the Stream owns it).
  void release(UringLeg* leg);
  // After the worker's io_context stopped: later releases only forget their legs.
  // Called on the worker thread once its io_context stopped.
  void shut_down();

  // The worker thread's loop in place of io_context::run() (returns when the context stops).
  void run_worker();

 private:
  friend class UringLeg;
  struct Impl;
  void schedule_flush();
  void arm_recv(UringLeg& leg);
  void queue_send(UringLeg& leg, const void* data, std::size_t size);
  void recycle(uint32_t bid);
  void rearm_starving();
  void handle(uint64_t user_data, int res, uint32_t flags);
  void on_recv(UringLeg& leg, int res, uint32_t flags);

  asio::io_context& io_;
  Impl* impl_;
  bool running_ = false;
  bool shut_down_ = false;
  uint32_t starving_count_ = 0;
};

}  // namespace pgtandem::proxy
