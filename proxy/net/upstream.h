// Connecting to a target.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <system_error>

#include "proxy/worker.h"

namespace pgtandem::proxy {

// Connects `socket` (on the caller's executor) to the target within `timeout`; sets TCP_NODELAY
// and keepalive for TCP; then, as the target's sslmode says, asks for TLS (SSLRequest) and
// handshakes, so the stream is TLS on return when the target is. Returns an error code instead
// of throwing (TLS failures in tls_category(), with OpenSSL's reason).
asio::awaitable<boost::system::error_code> connect_target(Socket& socket, const TargetEndpoint& target,
                                                          std::chrono::milliseconds timeout);

// Builds endpoints from config (with their TLS contexts); false with *error when a host cannot be
// resolved or a TLS file cannot be used.
bool resolve_targets(const config::Config& config, std::vector<TargetEndpoint>* out,
                     std::string* error);

void set_tcp_options(RawSocket& socket);

// The host name a pgpass line must carry for this target, as libpq looks it up: the configured
// host, or for a Unix socket the directory ("localhost" for the default /var/run/postgresql).
std::string pgpass_host(const config::Target& target);

}  // namespace pgtandem::proxy
