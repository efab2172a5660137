// `[auth] mode = "file"` (issue 6): pgtandem authenticates the client itself, against a userlist
// in PgBouncer's auth_file format (config/userlist.h), instead of relaying the exchange to the
// primary; then it logs in to the primary as that user with its own credentials
// (`[mirror] credentials_file`, backend_login.h) and hands the client the primary's
// ParameterStatus, BackendKeyData and ReadyForQuery, so the session goes on exactly as after a
// relayed login (real BackendKeyData: cancel and pg_backend_pid() behave the same).
//
// The exchange follows PostgreSQL: AuthenticationSASL (SCRAM-SHA-256, scram_server.h) or
// AuthenticationMD5Password per `[auth] method`; a user with a SCRAM verifier always gets SCRAM
// (as PostgreSQL upgrades md5 in pg_hba.conf), a user with an md5 hash cannot do SCRAM. A wrong
// password, an unknown user and a secret that cannot serve the method all end the same way, after
// the same messages: FATAL 28P01 `password authentication failed for user "x"`.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/userlist.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

struct FileLoginResult {
  bool ok = false;        // the client has ReadyForQuery; the session can start
  size_t target = 0;      // the target logged in to (the primary)
  bool have_key = false;  // the primary sent BackendKeyData
  int32_t process_id = 0;
  int32_t secret_key = 0;
  std::string leftover;  // bytes the primary sent after ReadyForQuery
};

// Runs the whole file-mode login for a client whose StartupMessage (`startup_packet`, validated)
// was read; `in` holds what the client sent after it. Answers the client itself on failure (and
// then the caller closes). `on_ready` is called just before ReadyForQuery goes to the client.
asio::awaitable<FileLoginResult> file_login(Worker& worker, Socket& client, Socket& backend,
                                            std::string& in, std::string_view startup_packet,
                                            const std::function<void()>& on_ready);

// Loads the userlist `config` names when it is in file mode (else *out = nullptr). False with
// every error if the file cannot be used.
bool load_userlist(const config::Config& config, std::shared_ptr<const config::Userlist>* out,
                   std::vector<config::Error>* errors);

}  // namespace pgtandem::proxy
