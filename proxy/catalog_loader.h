// Learning function volatility from the primary's pg_proc (as Pgpool-II does), so the classifier
// knows which functions in a SELECT write: a VOLATILE function makes the statement a write.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

#include "proxy/worker.h"

namespace pgtandem::proxy {

// Logs in to `target` as [classifier] catalog_user / catalog_database (password from the mirror
// credentials file) and reads every function's schema, name and provolatile. Null with *error
// when it cannot.
asio::awaitable<std::shared_ptr<const routing::VolatilityCatalog>> load_volatility_catalog(
    ServerState& state, size_t target, std::string* error);

}  // namespace pgtandem::proxy
