// One client session: startup, relayed authentication, then two pumps (client->primary and
// primary->client) that forward raw bytes and decode only what policy needs.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "proxy/worker.h"

namespace pgtandem::proxy {

asio::awaitable<void> run_session(Worker& worker, Socket client);

}  // namespace pgtandem::proxy
