// The pumps' read: Asio's async_read_some, except that a pump which knows its socket is empty can
// start the next read without trying a recv first (issue 17; bench/README.md, "Relay syscalls").
//
// Asio's epoll reactor tries every read at once (a "speculative" recv) unless the descriptor's
// try_speculative flag is off, which its own recv operation does only at end of file; so after
// each message the pump's next read was a recv returning EAGAIN, then epoll_wait, then the recv
// that reads: three syscalls where two do. RelayRecvOp is Asio's stream recv operation with two
// differences:
//   - it reads with recvmsg and, on a TCP socket with TCP_INQ on (enable_inq), reports how many
//     bytes were left in the receive queue after the read (`inq`; the kernel reports 1 when a FIN
//     is pending, so an orderly close is never taken for "empty"), -1 when unknown;
//   - with `wait_first`, the reactor's speculative attempt at start is skipped: the operation is
//     queued at once (no syscall: the descriptor is registered edge-triggered for input from the
//     start) and reads at the socket's next readiness event.
// A pump asks for wait_first only when the last read left nothing (inq == 0), was done at a
// readiness event (not speculatively at start: inq is then -1), the pump has not suspended since
// (no reactor turn: Asio does not replay to a later read a readiness event that came while no read
// was queued), and the protocol says its peer now waits for the other side (the server after
// ReadyForQuery with nothing outstanding; the client with requests outstanding). Any byte, FIN or
// reset arriving after that read raises a new readiness event, which the queued read takes. A reset that arrived before it,
// behind the last bytes, is not seen by inq: the session then notices through the other pump (a
// write to a reset client fails and closes it).
//
// Built on Asio's epoll reactor internals (reactor_op, handler_work, start_op) as Boost 1.81 has
// them; with another Boost version, with Asio's io_uring backend (PGTANDEM_IO_URING) and on TLS
// streams it is plain async_read_some (check these internals before allowing a newer Boost).
// Included only by the pumps (proxy/session/{client,server}_pump.cc).
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#include <boost/version.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "proxy/net/stream.h"

#if BOOST_VERSION == 108100 && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define PGTANDEM_RELAY_READ_OP 1
#else
#define PGTANDEM_RELAY_READ_OP 0
#endif

namespace pgtandem::proxy {
namespace relay_detail {

#if PGTANDEM_RELAY_READ_OP
namespace ad = boost::asio::detail;

template <typename Handler, typename IoExecutor>
class RelayRecvOp : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(RelayRecvOp);

  RelayRecvOp(ad::socket_type socket, void* data, std::size_t size, int* inq, Handler& handler,
              const IoExecutor& io_ex)
      : ad::reactor_op(boost::system::error_code(), &RelayRecvOp::do_perform,
                       &RelayRecvOp::do_complete),
        socket_(socket),
        data_(data),
        size_(size),
        inq_(inq),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  bool skip_ = false;      // set around start_op only: skip the speculative attempt
  bool in_start_ = false;  // set around start_op: a read done there completes through a posted
                           // handler, after which the reactor may turn before the pump resumes

  // The descriptor is non-blocking (Asio set it so for its own operations before this one).
  static status do_perform(ad::reactor_op* base) {
    auto* o = static_cast<RelayRecvOp*>(base);
    if (o->skip_) return not_done;
    for (;;) {
      iovec iov{o->data_, o->size_};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      const ssize_t n = ::recvmsg(o->socket_, &msg, 0);
      if (n > 0) {
        o->ec_ = boost::system::error_code();
        o->bytes_transferred_ = static_cast<std::size_t>(n);
        *o->inq_ = -1;
        // Only a read done at a readiness event is followed by the pump with no reactor turn in
        // between; after a speculative one, "empty" may be stale by the time the pump sees it.
        if (o->in_start_) return done;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
          if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ) {
            std::memcpy(o->inq_, CMSG_DATA(c), sizeof(int));
          }
        }
        return done;
      }
      o->bytes_transferred_ = 0;
      if (n == 0) {
        o->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
      return done;
    }
  }

  static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&,
                          std::size_t) {
    auto* o = static_cast<RelayRecvOp*>(base);
    ptr p = {ad::addressof(o->handler_), o, o};
    ad::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    ad::binder2<Handler, boost::system::error_code, std::size_t> handler(o->handler_, o->ec_,
                                                                         o->bytes_transferred_);
    p.h = ad::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  ad::socket_type socket_;
  void* data_;
  std::size_t size_;
  int* inq_;
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
};

// Per-operation cancellation (the drain signal on the client read), as Asio's own.
class RelayRecvCancellation {
 public:
  RelayRecvCancellation(ad::reactor* r, ad::reactor::per_descriptor_data* d, int fd)
      : reactor_(r), data_(d), fd_(fd) {}
  void operator()(boost::asio::cancellation_type_t type) {
    using boost::asio::cancellation_type;
    if (!!(type & (cancellation_type::terminal | cancellation_type::partial |
                   cancellation_type::total))) {
      reactor_->cancel_ops_by_key(fd_, *data_, ad::reactor::read_op, this);
    }
  }

 private:
  ad::reactor* reactor_;
  ad::reactor::per_descriptor_data* data_;
  int fd_;
};

// basic_socket keeps its implementation protected; a member pointer taken through a derived
// class reaches it without copying the socket.
struct SocketImplAccess : RawSocket {
  using RawSocket::impl_;
};
#endif

}  // namespace relay_detail

// Asks the kernel to report, with each read of this TCP socket, what is left to read (no-op on
// other sockets and where unsupported: inq then stays -1, and wait_first is never asked for).
inline void enable_inq(Stream& stream) {
  if (stream.tls()) return;
  const int on = 1;
  ::setsockopt(stream.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof(on));
}

// Reads into `buffer`; `*inq` gets what the kernel says is left after the read (-1: unknown).
// `wait_first`: the caller knows the socket is empty (see above).
template <typename Token>
auto relay_read_some(Stream& stream, asio::mutable_buffer buffer, bool wait_first, int* inq,
                     Token&& token) {
  *inq = -1;
  return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      [&stream, wait_first, inq](auto handler, asio::mutable_buffer b) {
#if PGTANDEM_RELAY_READ_OP
        namespace ad = boost::asio::detail;
        using Handler = std::decay_t<decltype(handler)>;
        RawSocket& socket = stream.raw();
        auto& impl = (socket.*(&relay_detail::SocketImplAccess::impl_)).get_implementation();
        if (stream.tls() || b.size() == 0 ||
            (impl.state_ & ad::socket_ops::internal_non_blocking) == 0) {
          stream.async_read_some(b, std::move(handler));
          return;
        }
        using IoExecutor = RawSocket::executor_type;
        using Op = relay_detail::RelayRecvOp<Handler, IoExecutor>;
        const IoExecutor io_ex = socket.get_executor();
        // use_service() takes the service registry's lock: looked up once per socket and
        // io_context (a socket cannot outlive its io_context; a moved one looks again), not once
        // per read.
        asio::execution_context& context = asio::query(io_ex, asio::execution::context);
        if (stream.relay_context != &context) {
          stream.relay_reactor = &asio::use_service<ad::reactor>(context);
          stream.relay_context = &context;
        }
        ad::reactor& reactor = *static_cast<ad::reactor*>(stream.relay_reactor);
        const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
        auto slot = asio::get_associated_cancellation_slot(handler);
        typename Op::ptr p = {ad::addressof(handler), Op::ptr::allocate(handler), 0};
        p.p = new (p.v) Op(impl.socket_, b.data(), b.size(), inq, handler, io_ex);
        if (slot.is_connected()) {
          p.p->cancellation_key_ = &slot.template emplace<relay_detail::RelayRecvCancellation>(
              &reactor, &impl.reactor_data_, impl.socket_);
        }
        // The skip applies to start_op's own attempt only: once queued, the operation reads at
        // every readiness event. (Single-threaded worker: nothing runs the operation before
        // start_op returns; a completion it posts runs later.)
        Op* op = p.p;
        op->skip_ = wait_first;
        op->in_start_ = true;
        reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, op,
                         is_continuation, true);
        op->skip_ = false;
        op->in_start_ = false;
        p.v = p.p = 0;
#else
        (void)wait_first;
        (void)inq;
        stream.async_read_some(b, std::move(handler));
#endif
      },
      token, buffer);
}

}  // namespace pgtandem::proxy
