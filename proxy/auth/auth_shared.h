// What all logins share (ServerState::auth): both replaced by reloads; new sessions take the new
// one, established ones keep theirs.
#pragma once

#include <atomic>
#include <memory>

#include "config/userlist.h"

namespace pgtandem::proxy {

struct ClientTls;

struct AuthShared {
  // [auth] mode = "file": the users pgtandem authenticates; read by each login.
  std::atomic<std::shared_ptr<const config::Userlist>> userlist;
  // [tls]: how client SSLRequests are answered.
  std::atomic<std::shared_ptr<const ClientTls>> client_tls;
};

}  // namespace pgtandem::proxy
