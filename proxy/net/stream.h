// The byte stream of a connection: a plain socket (TCP or Unix), or TLS over one once
// proxy/net/tls.h upgraded it. The data path reads and writes a Stream whichever it is; the plain path
// costs one predictable branch, and asio/ssl.hpp and OpenSSL stay in proxy/net/tls.cc.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <concepts>
#include <cstddef>
#include <memory>
#include <utility>

namespace pgtandem::proxy {

namespace asio = boost::asio;
using RawSocket = asio::generic::stream_protocol::socket;
using IoHandler = asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

namespace asio = boost::asio;
using RawSocket = asio::generic::stream_protocol::socket;

class UringLeg;    // proxy/net/uring_relay.h: the socket's presence on the worker's ring
class UringRelay;
// In proxy/net/uring_relay.cc: puts a plain TCP socket on the ring (null: not possible), and
// takes it off (synchronously: nothing of the leg stays in the kernel).
UringLeg* uring_attach(UringRelay& relay, RawSocket& socket);
void uring_release(UringRelay& relay, UringLeg* leg);

// A Stream's leg on the ring; moves with the Stream, released when the Stream closes or dies.
class UringAttachment {
 public:
  UringAttachment() = default;
  UringAttachment(UringAttachment&& o) noexcept
      : relay_(std::exchange(o.relay_, nullptr)), leg_(std::exchange(o.leg_, nullptr)) {}
  UringAttachment& operator=(UringAttachment&& o) noexcept {
    if (this != &o) {
      release();
      relay_ = std::exchange(o.relay_, nullptr);
      leg_ = std::exchange(o.leg_, nullptr);
    }
    return *this;
  }
  ~UringAttachment() { release(); }
  UringLeg* leg() const { return leg_; }
  void attach(UringRelay& relay, RawSocket& socket) {
    release();
    leg_ = uring_attach(relay, socket);
    if (leg_ != nullptr) relay_ = &relay;
  }
  void release() {
    if (leg_ != nullptr) uring_release(*relay_, leg_);
    leg_ = nullptr;
    relay_ = nullptr;
  }

 private:
  UringRelay* relay_ = nullptr;
  UringLeg* leg_ = nullptr;
};
void uring_cancel(UringLeg& leg);

class TlsConnection;  // proxy/net/tls.cc: OpenSSL's state and the socket it runs over
struct TlsConnectionDeleter {
  void operator()(TlsConnection* tls) const;  // in proxy/net/tls.cc, where the type is complete
};
using TlsConnectionPtr = std::unique_ptr<TlsConnection, TlsConnectionDeleter>;

// Out of line, in proxy/net/tls.cc. TLS reads and writes use the first non-empty buffer only, which
// async_read_some/async_write_some allow (they may transfer less than asked).
void tls_async_read_some(TlsConnection& tls, asio::mutable_buffer buffer, IoHandler handler);
void tls_async_write_some(TlsConnection& tls, asio::const_buffer buffer, IoHandler handler);
std::size_t tls_write_some(TlsConnection& tls, asio::const_buffer buffer,
                           boost::system::error_code& ec);
RawSocket& tls_socket(TlsConnection& tls);

class Stream {
 public:
  using executor_type = RawSocket::executor_type;
  using endpoint_type = RawSocket::endpoint_type;

  // Whatever constructs a socket: an io_context or executor, optionally a protocol and a fd.
  template <typename... Args>
    requires std::constructible_from<RawSocket, Args&&...>
  explicit Stream(Args&&... args) : socket_(std::forward<Args>(args)...) {}
  Stream(Stream&& other) noexcept = default;
  Stream& operator=(Stream&& other) noexcept = default;

  executor_type get_executor() { return socket_.get_executor(); }
  // The socket under TLS, or the plain one: for options, endpoints, close and cancel.
  RawSocket& raw() { return tls_ == nullptr ? socket_ : tls_socket(*tls_); }
  // proxy/net/relay_read.h's: the reactor of the io_context `relay_context` (looking it up takes
  // Asio's service registry lock, once per socket and io_context rather than once per read).
  void* relay_reactor = nullptr;
  const void* relay_context = nullptr;
  bool tls() const { return tls_ != nullptr; }
  TlsConnection* tls_connection() const { return tls_.get(); }
  // Used by proxy/net/tls.cc: takes the plain socket to run TLS over it.
  RawSocket take_plain() { return std::move(socket_); }
  void attach_tls(TlsConnectionPtr tls) { tls_ = std::move(tls); }

  bool is_open() { return raw().is_open(); }
  void close(boost::system::error_code& ec) {
    uring_.release();
    raw().close(ec);
  }
  // Cancels pending reads and writes (a TLS read so cancelled can be started again; on the ring,
  // the pump's wait for bytes).
  void cancel() {
    boost::system::error_code ignored;
    cancel(ignored);
  }
  void cancel(boost::system::error_code& ec) {
    if (uring_.leg() != nullptr) uring_cancel(*uring_.leg());
    raw().cancel(ec);
  }

  // The liburing relay (io_backend = "uring", proxy/net/uring_relay.h): a pump puts a plain TCP
  // socket on its worker's ring after login; reads and writes then go through uring() while it
  // is non-null. Everyone else (routed reads' replies, a malformed frame's last bytes) still
  // writes through Asio, never at the same time as the ring (the pumps wait for their sends).
  UringLeg* uring() const { return uring_.leg(); }
  void attach_uring(UringRelay& relay) {
    if (tls_ != nullptr || uring_.leg() != nullptr) return;
    int domain = 0;
    socklen_t len = sizeof(domain);
    const int fd = socket_.native_handle();
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return;
    if (domain != AF_INET && domain != AF_INET6) return;
    uring_.attach(relay, socket_);
  }
  // Takes the socket off the ring (a flip hands it to the mirror link, which reads it with Asio).
  void detach_uring() { uring_.release(); }
  // Moves a plain socket to another io_context (`ex`'s) by its descriptor: it leaves its reactor
  // and joins the other's (an epoll_ctl each). Nothing may be pending on it; it is taken off the
  // ring. A mirror link lends its socket this way to a session on another thread
  // (proxy/mirror/mirror_link.h). A TLS stream is not moved (OpenSSL's Asio stream stays bound to
  // its io_context's timers): its borrower uses it from its own thread, which Asio allows (the
  // reactor locks; completions go to the borrower's executor), at a thread hop per operation. A
  // closed socket just takes the new executor; one Asio cannot move is closed (the next use fails
  // as on a lost connection, which its owner handles).
  void rehome(const executor_type& ex) {
    uring_.release();
    if (tls_ != nullptr) return;
    if (socket_.get_executor() == ex) return;  // already there (a borrower on the link's home)
    if (!socket_.is_open()) {
      socket_ = RawSocket(ex);
      return;
    }
    const int fd0 = socket_.native_handle();
    int domain = 0;
    int protocol = 0;
    socklen_t len = sizeof(domain);
    ::getsockopt(fd0, SOL_SOCKET, SO_DOMAIN, &domain, &len);
    len = sizeof(protocol);
    ::getsockopt(fd0, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
    boost::system::error_code ec;
    const int fd = socket_.release(ec);
    RawSocket moved(ex);
    if (!ec) {
      moved.assign(asio::generic::stream_protocol(domain, protocol), fd, ec);
      if (ec) ::close(fd);
    } else {
      socket_.close(ec);
    }
    socket_ = std::move(moved);
  }
  void shutdown(asio::socket_base::shutdown_type what, boost::system::error_code& ec) {
    raw().shutdown(what, ec);
  }
  endpoint_type remote_endpoint(boost::system::error_code& ec) { return raw().remote_endpoint(ec); }
  endpoint_type local_endpoint(boost::system::error_code& ec) { return raw().local_endpoint(ec); }
  RawSocket::native_handle_type native_handle() { return raw().native_handle(); }
  void connect(const endpoint_type& endpoint) { socket_.connect(endpoint); }
  void connect(const endpoint_type& endpoint, boost::system::error_code& ec) {
    socket_.connect(endpoint, ec);
  }
  template <typename Token>
  auto async_connect(const endpoint_type& endpoint, Token&& token) {
    return socket_.async_connect(endpoint, std::forward<Token>(token));
  }

  // Blocking (for tools such as `pgtandem replay`, never on a worker).
  template <typename ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    if (tls_ == nullptr) return socket_.write_some(buffers, ec);
    return tls_write_some(*tls_, first_buffer<asio::const_buffer>(buffers), ec);
  }

  // The relay's write on a plain socket (tls() false): one send straight on the descriptor, never
  // blocking, no reactor operation. A write that completes at once through Asio still posts its
  // completion, and the posted handler makes the worker's next reactor turn an extra epoll_wait
  // with a zero timeout; this costs the send alone. Returns the bytes sent (maybe fewer than
  // asked; 0 when the socket buffer is full), 0 with ec set on a hard error. The pumps' read is
  // proxy/net/relay_read.h.
  std::size_t try_send(const void* data, std::size_t size, boost::system::error_code& ec) {
    for (;;) {
      const ssize_t n = ::send(socket_.native_handle(), data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        ec = boost::system::error_code(errno, boost::system::system_category());
      }
      return 0;
    }
  }

  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (tls_ == nullptr) [[likely]] {
            socket_.async_read_some(b, std::move(handler));
          } else {
            tls_async_read_some(*tls_, first_buffer<asio::mutable_buffer>(b),
                                IoHandler(std::move(handler)));
          }
        },
        token, buffers);
  }

  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (tls_ == nullptr) [[likely]] {
            socket_.async_write_some(b, std::move(handler));
          } else {
            tls_async_write_some(*tls_, first_buffer<asio::const_buffer>(b),
                                 IoHandler(std::move(handler)));
          }
        },
        token, buffers);
  }

 private:
  template <typename Buffer, typename Sequence>
  static Buffer first_buffer(const Sequence& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      Buffer b(*it);
      if (b.size() != 0) return b;
    }
    return Buffer();
  }

  RawSocket socket_;  // the plain socket; moved into tls_ when TLS starts
  TlsConnectionPtr tls_;
  UringAttachment uring_;  // last: released before the socket closes
};

}  // namespace pgtandem::proxy
