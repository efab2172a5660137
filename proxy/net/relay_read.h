// The pumps' read: Asio's async_read_some, except that a read which leaves the socket empty tells
// the reactor so, and the next read waits for readiness instead of trying a recv that returns
// EAGAIN (issue 17; bench/README.md, "Relay syscalls").
//
// Asio's epoll reactor tries every read at once (a "speculative" recv) unless the descriptor's
// try_speculative flag is off; its own recv operation turns the flag off only at end of file. So
// after each message the pump's next read was a recv returning EAGAIN, then epoll_wait, then the
// recv that reads: three syscalls where two do. RelayRecvOp is Asio's stream recv operation with
// one difference: a read that returns less than the room it was given reports
// done_and_exhausted, which turns the flag off; the reactor turns it on again for the next
// readiness event of that socket, whether or not a read is queued then, so no event is lost (an
// event for bytes that an earlier recv already took costs one recv that finds nothing, as before).
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

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
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

  RelayRecvOp(ad::socket_type socket, void* data, std::size_t size, Handler& handler,
              const IoExecutor& io_ex)
      : ad::reactor_op(boost::system::error_code(), &RelayRecvOp::do_perform,
                       &RelayRecvOp::do_complete),
        socket_(socket),
        data_(data),
        size_(size),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  // The descriptor is non-blocking (Asio set it so for its own operations before this one).
  static status do_perform(ad::reactor_op* base) {
    auto* o = static_cast<RelayRecvOp*>(base);
    for (;;) {
      const ssize_t n = ::recv(o->socket_, o->data_, o->size_, 0);
      if (n > 0) {
        o->ec_ = boost::system::error_code();
        o->bytes_transferred_ = static_cast<std::size_t>(n);
        return o->bytes_transferred_ < o->size_ ? done_and_exhausted : done;
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

template <typename Token>
auto relay_read_some(Stream& stream, asio::mutable_buffer buffer, Token&& token) {
  return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      [&stream](auto handler, asio::mutable_buffer b) {
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
        auto& reactor =
            asio::use_service<ad::reactor>(asio::query(io_ex, asio::execution::context));
        const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
        auto slot = asio::get_associated_cancellation_slot(handler);
        typename Op::ptr p = {ad::addressof(handler), Op::ptr::allocate(handler), 0};
        p.p = new (p.v) Op(impl.socket_, b.data(), b.size(), handler, io_ex);
        if (slot.is_connected()) {
          p.p->cancellation_key_ = &slot.template emplace<relay_detail::RelayRecvCancellation>(
              &reactor, &impl.reactor_data_, impl.socket_);
        }
        reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p,
                         is_continuation, true);
        p.v = p.p = 0;
#else
        stream.async_read_some(b, std::move(handler));
#endif
      },
      token, buffer);
}

}  // namespace pgtandem::proxy
