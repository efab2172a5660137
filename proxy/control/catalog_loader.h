// Learning function volatility from the primary's pg_proc (as Pgpool-II does), so the classifier
// knows which functions in a SELECT write: a VOLATILE function makes the statement a write. With
// it, the columns whose default differs between servers (serial, identity, now() ...), so that an
// INSERT leaving one to its default counts as nondeterministic.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

#include "proxy/worker.h"

namespace pgtandem::proxy {

// Logs in to `target` as [classifier] catalog_user / catalog_database (password from the mirror
// credentials file) and reads every function's schema, name and provolatile, then the columns of
// that database's tables with a default or identity (see policy/sql/column_defaults.h). Null with
// *error when the functions cannot be read; without column defaults (logged) when only those
// cannot.
asio::awaitable<std::shared_ptr<const policy::VolatilityCatalog>> load_volatility_catalog(
    ServerState& state, size_t target, std::string* error);

}  // namespace pgtandem::proxy
