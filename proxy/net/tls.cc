#include "proxy/net/tls.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

namespace pgtandem::proxy {

namespace ssl = asio::ssl;

class TlsContext {
 public:
  explicit TlsContext(ssl::context::method method) : ssl(method) {}
  ssl::context ssl;
};

class TlsConnection {
 public:
  TlsConnection(RawSocket socket, std::shared_ptr<TlsContext> context)
      : context_(std::move(context)), stream_(std::move(socket), context_->ssl) {}

  std::shared_ptr<TlsContext> context_;  // kept alive as long as the connection (reloads)
  ssl::stream<RawSocket> stream_;
};

void TlsConnectionDeleter::operator()(TlsConnection* tls) const { delete tls; }

void tls_async_read_some(TlsConnection& tls, asio::mutable_buffer buffer, IoHandler handler) {
  tls.stream_.async_read_some(buffer, std::move(handler));
}

void tls_async_write_some(TlsConnection& tls, asio::const_buffer buffer, IoHandler handler) {
  tls.stream_.async_write_some(buffer, std::move(handler));
}

std::size_t tls_write_some(TlsConnection& tls, asio::const_buffer buffer,
                           boost::system::error_code& ec) {
  return tls.stream_.write_some(buffer, ec);
}

RawSocket& tls_socket(TlsConnection& tls) { return tls.stream_.next_layer(); }

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

class TlsCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "pgtandem.tls"; }
  std::string message(int ev) const override {
    if (ev == static_cast<int>(TlsError::kRefusedByTarget)) {
      return "the server does not support SSL, but sslmode requires it";
    }
    if (ev == static_cast<int>(TlsError::kBadAnswer)) {
      return "the server answered the SSLRequest with neither 'S' nor 'N'";
    }
    if (ev >= static_cast<int>(TlsError::kVerifyBase)) {
      return std::string("certificate verify failed: ") +
             X509_verify_cert_error_string(ev - static_cast<int>(TlsError::kVerifyBase));
    }
    return "TLS error";
  }
};

// OpenSSL's reason for the last failure, with the file it concerns.
std::string describe(const std::string& what, const std::string& file,
                     const boost::system::error_code& ec) {
  std::string out = what + " " + file + ": " + ec.message();
  ERR_clear_error();
  return out;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void harden(SSL_CTX* ctx, const std::string& min_version) {
  SSL_CTX_set_min_proto_version(ctx, min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  // As the server does: no compression (CRIME), no renegotiation, no session cache (a session's
  // resumption would skip the checks made at a full handshake).
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);  // TLS 1.3 tickets: nothing would resume with them
}

}  // namespace

const boost::system::error_category& tls_category() {
  static const TlsCategory category;
  return category;
}

boost::system::error_code make_error_code(TlsError e) {
  return {static_cast<int>(e), tls_category()};
}

std::shared_ptr<const ClientTls> make_client_tls(const config::Tls& tls, std::string* error) {
  auto out = std::make_shared<ClientTls>();
  if (!tls.enabled()) return out;
  out->mode = tls.mode == "require" ? ClientTls::Mode::kRequire : ClientTls::Mode::kAllow;
  auto context = std::make_shared<TlsContext>(ssl::context::tls_server);
  SSL_CTX* ctx = context->ssl.native_handle();
  harden(ctx, tls.min_version);
  boost::system::error_code ec;
  context->ssl.use_certificate_chain_file(tls.cert_file, ec);
  if (ec) {
    *error = describe("cannot use tls.cert_file", tls.cert_file, ec);
    return nullptr;
  }
  context->ssl.use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) {
    *error = describe("cannot use tls.key_file", tls.key_file, ec);
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    *error = "tls.key_file " + tls.key_file + " does not match tls.cert_file " + tls.cert_file;
    return nullptr;
  }
  if (!tls.ca_file.empty()) {
    context->ssl.load_verify_file(tls.ca_file, ec);
    if (ec) {
      *error = describe("cannot use tls.ca_file", tls.ca_file, ec);
      return nullptr;
    }
    // As the server with ssl_ca_file: a client certificate is asked for and, when given, must
    // chain to the CA; a client without one is still served.
    context->ssl.set_verify_mode(ssl::verify_peer);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    static const unsigned char kSessionContext[] = "pgtandem";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  }
  out->context = std::move(context);
  return out;
}

std::shared_ptr<const TargetTls> make_target_tls(const config::Target& target, std::string* error) {
  if (target.sslmode == "disable" || !target.unix_socket_dir.empty()) return nullptr;
  auto out = std::make_shared<TargetTls>();
  out->required = target.sslmode != "prefer";
  out->verify_host = target.sslmode == "verify-full";
  out->host = target.host;
  auto context = std::make_shared<TlsContext>(ssl::context::tls_client);
  harden(context->ssl.native_handle(), "1.2");
  const std::string prefix = "targets." + target.name + ".";
  boost::system::error_code ec;
  // As libpq: require with a root certificate verifies the chain like verify-ca; prefer never
  // verifies.
  const bool verify = target.sslmode == "verify-ca" || target.sslmode == "verify-full" ||
                      (target.sslmode == "require" && !target.sslrootcert.empty());
  if (verify) {
    context->ssl.load_verify_file(target.sslrootcert, ec);
    if (ec) {
      *error = describe("cannot use " + prefix + "sslrootcert", target.sslrootcert, ec);
      return nullptr;
    }
    context->ssl.set_verify_mode(ssl::verify_peer);
  } else {
    context->ssl.set_verify_mode(ssl::verify_none);
  }
  if (!target.sslcert.empty()) {
    context->ssl.use_certificate_chain_file(target.sslcert, ec);
    if (ec) {
      *error = describe("cannot use " + prefix + "sslcert", target.sslcert, ec);
      return nullptr;
    }
    context->ssl.use_private_key_file(target.sslkey, ssl::context::pem, ec);
    if (ec) {
      *error = describe("cannot use " + prefix + "sslkey", target.sslkey, ec);
      return nullptr;
    }
  }
  out->context = std::move(context);
  return out;
}

asio::awaitable<boost::system::error_code> tls_accept(Stream& stream,
                                                       std::shared_ptr<TlsContext> context) {
  TlsConnectionPtr conn(new TlsConnection(stream.take_plain(), std::move(context)));
  TlsConnection& c = *conn;
  stream.attach_tls(std::move(conn));  // closing or cancelling the stream now reaches the socket
  auto [ec] = co_await c.stream_.async_handshake(ssl::stream_base::server, kNoThrow);
  co_return ec;
}

asio::awaitable<boost::system::error_code> tls_connect(Stream& stream, const TargetTls& tls) {
  TlsConnectionPtr conn(new TlsConnection(stream.take_plain(), tls.context));
  TlsConnection& c = *conn;
  stream.attach_tls(std::move(conn));
  SSL* s = c.stream_.native_handle();
  const bool ip = is_ip_address(tls.host);
  // SNI for a host name, as libpq sends it (never for an address: RFC 6066).
  if (!ip) SSL_set_tlsext_host_name(s, tls.host.c_str());
  if (tls.verify_host) {
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, tls.host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, tls.host.c_str(), 0);
    if (ok != 1) co_return make_error_code(static_cast<TlsError>(
        static_cast<int>(TlsError::kVerifyBase) + X509_V_ERR_HOSTNAME_MISMATCH));
  }
  auto [ec] = co_await c.stream_.async_handshake(ssl::stream_base::client, kNoThrow);
  if (ec) {
    const long verify = SSL_get_verify_result(s);
    if (verify != X509_V_OK) {
      ec = make_error_code(
          static_cast<TlsError>(static_cast<int>(TlsError::kVerifyBase) + static_cast<int>(verify)));
    }
    ERR_clear_error();
  }
  co_return ec;
}

bool tls_same_certificate(const Stream& client, const Stream& server) {
  TlsConnection* c = client.tls_connection();
  TlsConnection* s = server.tls_connection();
  if (c == nullptr || s == nullptr) return false;
  X509* ours = SSL_get_certificate(c->stream_.native_handle());
  X509* theirs = SSL_get0_peer_certificate(s->stream_.native_handle());
  return ours != nullptr && theirs != nullptr && X509_cmp(ours, theirs) == 0;
}

}  // namespace pgtandem::proxy
