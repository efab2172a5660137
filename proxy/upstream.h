// Connecting to a target.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <system_error>

#include "proxy/worker.h"

namespace pgtandem::proxy {

// Connects `socket` (on the caller's executor) to the target within `timeout`; sets TCP_NODELAY
// and keepalive for TCP. Returns an error code instead of throwing.
asio::awaitable<boost::system::error_code> connect_target(Socket& socket, const TargetEndpoint& target,
                                                          std::chrono::milliseconds timeout);

// Builds endpoints from config; false with *error when a host cannot be resolved.
bool resolve_targets(const config::Config& config, std::vector<TargetEndpoint>* out,
                     std::string* error);

void set_tcp_options(Socket& socket);

// The host name a pgpass line must carry for this target, as libpq looks it up: the configured
// host, or for a Unix socket the directory ("localhost" for the default /var/run/postgresql).
std::string pgpass_host(const config::Target& target);

}  // namespace pgtandem::proxy
