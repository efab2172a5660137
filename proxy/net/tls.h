// TLS on both legs (issue 6): pgtandem terminates clients' TLS ([tls]) and opens TLS to the targets
// ([targets.*] sslmode). Contexts are immutable and shared: a reload builds new ones for new
// connections, and a connection keeps the context it was made with. OpenSSL stays in tls.cc.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/net/stream.h"

namespace pgtandem::proxy {

class TlsContext;  // an SSL_CTX with its settings

// The client side ([tls]): what an SSLRequest is answered with, and the certificate presented.
struct ClientTls {
  enum class Mode { kDisable, kAllow, kRequire };
  Mode mode = Mode::kDisable;
  std::shared_ptr<TlsContext> context;  // null when disabled
};
// Reads the certificate, key and CA files now; nullptr with *error if any cannot be used.
std::shared_ptr<const ClientTls> make_client_tls(const config::Tls& tls, std::string* error);

// TLS to one target, from its sslmode and files.
struct TargetTls {
  bool required = false;     // require, verify-ca, verify-full: a server answering 'N' is refused
  bool verify_host = false;  // verify-full: the certificate must name `host` (SAN DNS or IP)
  std::string host;          // as configured: what verify-full checks, and the SNI for a name
  std::shared_ptr<TlsContext> context;
};
// nullptr and no error when the target never uses TLS (sslmode disable, or a Unix socket).
std::shared_ptr<const TargetTls> make_target_tls(const config::Target& target, std::string* error);

// Runs the server side of a handshake on `stream` (plain until now). On return the stream is TLS
// (a failed handshake leaves a TLS stream that is only good for closing).
asio::awaitable<boost::system::error_code> tls_accept(Stream& stream,
                                                       std::shared_ptr<TlsContext> context);

// After the target answered an SSLRequest with 'S': the client side of the handshake, verifying as
// `tls` says. A verification failure is reported in tls_category() with OpenSSL's reason.
asio::awaitable<boost::system::error_code> tls_connect(Stream& stream, const TargetTls& tls);

// Both streams are TLS and `client`'s certificate (pgtandem's own) is the one `server` (a target)
// presented: only then can a client's SCRAM channel binding (tls-server-end-point) hold end to end.
bool tls_same_certificate(const Stream& client, const Stream& server);

// Errors pgtandem itself reports about TLS to a target.
enum class TlsError {
  kRefusedByTarget = 1,  // 'N' to an SSLRequest under a mode that needs TLS
  kBadAnswer = 2,        // neither 'S' nor 'N'
  // kVerifyBase + an X509_V_ERR_* code: the certificate did not verify
  kVerifyBase = 1000,
};
const boost::system::error_category& tls_category();
boost::system::error_code make_error_code(TlsError e);

}  // namespace pgtandem::proxy
