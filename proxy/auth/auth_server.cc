#include "proxy/auth/auth_server.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <utility>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "protocol/startup.h"
#include "proxy/auth/auth_client.h"
#include "proxy/auth/backend_login.h"
#include "proxy/telemetry/log.h"
#include "proxy/auth/scram.h"
#include "proxy/auth/scram_server.h"
#include "proxy/net/upstream.h"

namespace pgtandem::proxy {
namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMd5SaltLength = 4;
constexpr std::string_view kMethodScram = "scram-sha-256";
constexpr std::string_view kMethodMd5 = "md5";

// Keys mock exchanges and the salts of plain-password users: random per process, so a client cannot
// precompute them, and stable within it, so asking twice gives the same salt.
const std::string& process_secret() {
  static const std::string secret = [] {
    std::string s(32, '\0');
    std::span<unsigned char> bytes(reinterpret_cast<unsigned char*>(s.data()), s.size());
    if (!system_random(bytes)) {
      // No CSPRNG: fall back to the clock; mock salts are then guessable, nothing else changes.
      const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
      s = std::string(scram::as_view(scram::sha256(std::to_string(t))));
    }
    return s;
  }();
  return secret;
}

std::string fatal(std::string_view sqlstate, std::string_view message, std::string_view detail = {},
                  std::string_view hint = {}) {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kFatal, sqlstate, message, detail, hint);
  return out;
}

std::string auth_failed_message(std::string_view user) {
  return "password authentication failed for user \"" + std::string(user) + "\"";
}

void put_auth(std::string& out, int32_t code, std::string_view data = {}) {
  protocol::Authentication a;
  a.code = code;
  a.data = data;
  protocol::encode(out, a);
}

enum class ReadStatus { kOk, kClosed, kTooLong };

// Reads one whole message from the client into *type and *body (a copy); `in` keeps the rest.
asio::awaitable<ReadStatus> read_message(Socket& client, std::string& in, uint32_t max_body,
                                         char* type, std::string* body) {
  std::array<char, 4096> tmp;
  for (;;) {
    if (in.size() >= protocol::kHeaderSize) {
      const uint32_t len = protocol::read_u32(in.data() + 1);
      // Why: judged on the length word alone, before anything is allocated or read.
      if (len < 4 || len - 4 > max_body) co_return ReadStatus::kTooLong;
      if (in.size() >= size_t{1} + len) {
        *type = in[0];
        body->assign(in, protocol::kHeaderSize, len - 4);
        in.erase(0, size_t{1} + len);
        co_return ReadStatus::kOk;
      }
    }
    auto [ec, n] = co_await client.async_read_some(asio::buffer(tmp), kNoThrow);
    if (ec) co_return ReadStatus::kClosed;
    in.append(tmp.data(), n);
  }
}

// The outcome of the client's side of the exchange.
enum class Verdict { kOk, kFailed, kUnknownUser, kError, kClosed };

class Exchange {
 public:
  Exchange(Socket& client, std::string& in, std::string user, std::string_view method,
           std::shared_ptr<const config::Userlist> users)
      : client_(client), in_(in), user_(std::move(user)), users_(std::move(users)) {
    entry_ = users_ ? users_->find(user_) : nullptr;
    // A SCRAM verifier cannot answer an MD5 challenge: such a user gets SCRAM whatever the method
    // (as PostgreSQL does with "md5" in pg_hba.conf).
    scram_ =
        method != kMethodMd5 || (entry_ != nullptr && entry_->kind == config::SecretKind::kScram);
  }

  std::string_view method() const { return scram_ ? kMethodScram : kMethodMd5; }
  const config::UserEntry* entry() const { return entry_; }

  asio::awaitable<Verdict> run() {
    if (scram_) {
      Verdict v = co_await run_scram();
      co_return v;
    }
    Verdict v = co_await run_md5();
    co_return v;
  }

  // The answer to send before closing, when the verdict is not kOk.
  const std::string& answer() const { return answer_; }
  // After kOk with SCRAM: AuthenticationSASLFinal, sent ahead of AuthenticationOk.
  const std::string& pending() const { return pending_; }

 private:
  asio::awaitable<bool> send(const std::string& bytes) {
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(bytes), kNoThrow);
    (void)n;
    co_return !ec;
  }

  // Reads the client's 'p' answer; nullopt with answer_ set (or nothing to say) otherwise. The
  // limits and the answers to a wrong message are the server's (protocol/errors.h).
  asio::awaitable<std::optional<std::string>> read_answer(protocol::AuthExchange exchange) {
    const uint32_t max_body = exchange == protocol::AuthExchange::kSasl
                                  ? protocol::kMaxSaslMessageLength
                                  : protocol::kMaxAuthTokenLength;
    char type = 0;
    std::string body;
    ReadStatus st = co_await read_message(client_, in_, max_body, &type, &body);
    if (st == ReadStatus::kClosed) {
      closed_ = true;
      co_return std::nullopt;
    }
    if (st == ReadStatus::kOk && type == protocol::frontend::kPassword) co_return body;
    answer_.clear();
    if (st == ReadStatus::kTooLong) {
      protocol::answer_auth_message_too_large(exchange, user_, answer_);
    } else {
      protocol::answer_unexpected_auth_message(exchange, type, answer_);
    }
    co_return std::nullopt;
  }

  Verdict failed(bool known) {
    answer_ = fatal("28P01", auth_failed_message(user_));
    return known ? Verdict::kFailed : Verdict::kUnknownUser;
  }

  Verdict error_or_closed() { return closed_ ? Verdict::kClosed : Verdict::kError; }

  asio::awaitable<Verdict> run_scram() {
    const std::string& secret_key = process_secret();
    config::ScramSecret secret;
    bool mock = true;
    const bool known = entry_ != nullptr;
    if (entry_ != nullptr && entry_->kind == config::SecretKind::kScram) {
      secret = entry_->scram;
      mock = false;
    } else if (entry_ != nullptr && entry_->kind == config::SecretKind::kPlain) {
      secret = scram::make_secret(entry_->secret, scram_user_salt(secret_key, user_),
                                  kScramDefaultIterations);
      mock = false;
    } else {
      // Unknown user, or an md5 hash (which cannot do SCRAM): a made-up verifier, the same
      // messages, and a failure at the proof.
      secret.iterations = kScramDefaultIterations;
      secret.salt = scram_user_salt(secret_key, user_);
      secret.stored_key =
          std::string(scram::as_view(scram::hmac_sha256(secret_key, "stored:" + user_)));
      secret.server_key =
          std::string(scram::as_view(scram::hmac_sha256(secret_key, "server:" + user_)));
      if (entry_ != nullptr) {
        log::info(
            "client authentication: user has an md5 secret, which cannot "
            "do SCRAM",
            {{"user", user_}});
      }
    }
    ScramServer::Options opts;
    opts.random = system_random;
    ScramServer server(std::move(secret), mock, std::move(opts));

    std::string out;
    const std::array<std::string_view, 1> mechanisms{kScramMechanism};
    protocol::encode_authentication_sasl(out, mechanisms);
    bool sent = co_await send(out);
    if (!sent) co_return Verdict::kClosed;

    std::optional<std::string> first = co_await read_answer(protocol::AuthExchange::kSasl);
    if (!first) co_return error_or_closed();
    protocol::SaslInitialResponse initial;
    if (!protocol::decode(*first, initial)) {
      answer_ = fatal(protocol::sqlstate::kProtocolViolation, "malformed SASLInitialResponse");
      co_return Verdict::kError;
    }
    std::optional<std::string_view> data;
    if (!initial.data.is_null) data = initial.data.data;
    std::string server_first;
    ScramStep step = server.on_initial(initial.mechanism, data, &server_first);
    if (step != ScramStep::kContinue) {
      answer_ = fatal(server.sqlstate(), server.error());
      co_return Verdict::kError;
    }
    out.clear();
    put_auth(out, protocol::kAuthSaslContinue, server_first);
    sent = co_await send(out);
    if (!sent) co_return Verdict::kClosed;

    std::optional<std::string> final_body = co_await read_answer(protocol::AuthExchange::kSasl);
    if (!final_body) co_return error_or_closed();
    protocol::SaslResponse response;
    if (!protocol::decode(*final_body, response)) {
      answer_ = fatal(protocol::sqlstate::kProtocolViolation, "malformed SASLResponse");
      co_return Verdict::kError;
    }
    std::string server_final;
    step = server.on_final(response.data, &server_final);
    if (step == ScramStep::kMalformed) {
      answer_ = fatal(server.sqlstate(), server.error());
      co_return Verdict::kError;
    }
    if (step == ScramStep::kFailed) co_return failed(known);
    pending_.clear();
    put_auth(pending_, protocol::kAuthSaslFinal, server_final);
    co_return Verdict::kOk;
  }

  asio::awaitable<Verdict> run_md5() {
    std::string salt(kMd5SaltLength, '\0');
    std::span<unsigned char> bytes(reinterpret_cast<unsigned char*>(salt.data()), salt.size());
    if (!system_random(bytes)) {
      answer_ = fatal("XX000", "could not generate random MD5 salt");
      co_return Verdict::kError;
    }
    // The secret to check against: the user's md5 hash, or one made from the plain password, or
    // (unknown user) a made-up one that no answer matches, so the work is the same.
    std::string md5;
    const bool known = entry_ != nullptr;
    if (known && entry_->kind == config::SecretKind::kMd5) {
      md5 = entry_->secret;
    } else if (known && entry_->kind == config::SecretKind::kPlain) {
      md5 = scram::md5_secret(user_, entry_->secret);
    } else {
      md5 = "md5" + scram::md5_hex(std::string(
                        scram::as_view(scram::hmac_sha256(process_secret(), "md5:" + user_))));
    }
    std::string out;
    put_auth(out, protocol::kAuthMd5Password, salt);
    const bool sent = co_await send(out);
    if (!sent) co_return Verdict::kClosed;
    std::optional<std::string> body = co_await read_answer(protocol::AuthExchange::kPassword);
    if (!body) co_return error_or_closed();
    protocol::PasswordMessage pw;
    if (!protocol::decode(*body, pw)) {
      answer_ = fatal(protocol::sqlstate::kProtocolViolation, "invalid password packet size");
      co_return Verdict::kError;
    }
    const bool match = check_md5_answer(md5, salt, pw.password);
    if (!match || !known) co_return failed(known);
    co_return Verdict::kOk;
  }

  Socket& client_;
  std::string& in_;
  std::string user_;
  std::shared_ptr<const config::Userlist> users_;
  const config::UserEntry* entry_ = nullptr;
  bool scram_ = true;
  bool closed_ = false;
  std::string answer_;
  std::string pending_;
};

// A failure after the client was verified: counted and logged; the client gets what it was due
// (SASLFinal) and then the FATAL.
std::string refusal(ServerState& state, std::string_view method, std::string_view pending,
                    const std::string& user, const std::string& database,
                    std::string_view log_message, const std::string& message,
                    std::string_view sqlstate, std::string_view detail, std::string_view hint) {
  state.metrics->client_auth(method, "error");
  log::warn(log_message, {{"user", user}, {"database", database}, {"error", message}});
  return std::string(pending) + fatal(sqlstate, message, detail, hint);
}

// A newer protocol minor or _pq_ options: answered here as the server would, since the client never
// talks to it directly (the primary gets a plain 3.0 startup packet).
asio::awaitable<bool> send_negotiation(Socket& client, const protocol::StartupMessage& startup) {
  std::vector<std::string_view> options;
  for (const auto& p : startup.protocol_options) options.push_back(p.first);
  std::string out;
  protocol::encode_negotiate_protocol_version(out, protocol::kProtocolVersion3, options);
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(out), kNoThrow);
  (void)n;
  co_return !ec;
}

std::string_view verdict_label(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kFailed:
      return "failed";
    case Verdict::kUnknownUser:
      return "unknown_user";
    default:
      return "error";
  }
}

}  // namespace

bool load_userlist(const config::Config& config, std::shared_ptr<const config::Userlist>* out,
                   std::vector<config::Error>* errors) {
  *out = nullptr;
  if (!config.auth.file_mode()) return true;
  config::UserlistLoadResult r = config::load_userlist_file(config.auth.file);
  if (!r.ok()) {
    *errors = std::move(r.errors);
    return false;
  }
  *out = std::make_shared<const config::Userlist>(std::move(*r.userlist));
  return true;
}

namespace {

// What login_primary() needs from the client's side of the login.
struct LoginContext {
  Worker& worker;
  Socket& client;
  Socket& backend;
  const protocol::StartupMessage& startup;
  const config::Config& cfg;
  const std::string& user;
  const std::string& database;
  const std::string& method;
  const std::string& pending;      // SASLFinal still to send, or ""
  const config::UserEntry* entry;  // the client's userlist entry
};

// After the client was verified: pgtandem's own login to the primary as the client's user, then the
// primary's greeting to the client.
asio::awaitable<FileLoginResult> login_primary(const LoginContext& ctx, size_t target_index,
                                               const std::function<void()>& on_ready) {
  ServerState& state = ctx.worker.state();
  const config::Config& cfg = ctx.cfg;
  const std::string& user = ctx.user;
  const std::string& database = ctx.database;
  const std::string& method = ctx.method;
  const protocol::StartupMessage& startup = ctx.startup;
  Socket& client = ctx.client;
  Socket& backend = ctx.backend;
  Worker& worker = ctx.worker;
  FileLoginResult result;
  result.target = target_index;
  std::string out;
  // pgtandem's own password for the primary: pgpass first; a plain password from the userlist is
  // the user's password too. A verifier or an md5 hash cannot be turned back into one.
  const config::Target& target_cfg = *cfg.find_target(state.targets[result.target].name);
  std::optional<std::string> password;
  if (state.mirror.pgpass) {
    if (const config::PgpassEntry* e =
            state.mirror.pgpass->lookup(pgpass_host(target_cfg), target_cfg.port, database, user)) {
      password = e->password;
    }
  }
  if (!password && ctx.entry != nullptr && ctx.entry->kind == config::SecretKind::kPlain) {
    password = ctx.entry->secret;
  }
  const std::string& target_name = state.targets[result.target].name;
  if (!password) {
    const std::string file =
        cfg.mirror.credentials_file.empty() ? "(none configured)" : cfg.mirror.credentials_file;
    std::string msg = refusal(
        state, method, ctx.pending, user, database, "file-mode login: no password for the primary",
        "pgtandem has no password to log in to target \"" + target_name + "\" as user \"" + user +
            "\"",
        "28P01",
        "pgtandem authenticated the client, but its credentials file " + file +
            " ([mirror] credentials_file) has no entry for " + pgpass_host(target_cfg) + ":" +
            std::to_string(target_cfg.port) + ":" + database + ":" + user + ".",
        "Add the user's password to pgtandem's credentials file.");
    co_await asio::async_write(client, asio::buffer(msg), kNoThrow);
    co_return result;
  }

  const TargetEndpoint& target = state.targets[result.target];
  backend = Socket(worker.io());
  auto cec = co_await connect_target(
      backend, target, std::chrono::milliseconds(state.config->limits.connect_timeout_ms));
  if (cec) {
    state.metrics->upstream_connect_failed(result.target);
    std::string msg =
        refusal(state, method, ctx.pending, user, database, "target unavailable",
                "pgtandem: target \"" + target.name + "\" (" + target.description +
                    ") is unavailable: " + cec.message(),
                "08006", "The proxy could not connect to the primary database server.", {});
    co_await asio::async_write(client, asio::buffer(msg), kNoThrow);
    co_return result;
  }

  LoginParams params;
  params.user = user;
  params.database = database;
  params.application_name.clear();  // only the client's own, if it sent one
  for (const auto& [k, v] : startup.params) {
    if (k == "user" || k == "database") continue;
    params.extra.emplace_back(k, v);
  }
  params.password = std::move(password);
  params.timeout = std::chrono::milliseconds(state.config->limits.startup_timeout_ms);
  LoginResult login = co_await login_backend(backend, std::move(params));
  if (!login.ok) {
    std::string msg;
    if (login.error == LoginError::kServer &&
        (login.sqlstate == "28P01" || login.sqlstate == "28000")) {
      msg = refusal(state, method, ctx.pending, user, database,
                    "file-mode login: the primary refused pgtandem's credentials",
                    "pgtandem could not log in to target \"" + target_name + "\" as user \"" +
                        user + "\": " + login.message,
                    login.sqlstate,
                    "The client was authenticated by pgtandem; the target "
                    "refused the password in "
                    "pgtandem's credentials file.",
                    {});
    } else if (login.error == LoginError::kServer) {
      // The server's own refusal (no such database, too many connections...): as it said it.
      state.metrics->client_auth(method, "error");
      msg = ctx.pending + fatal(login.sqlstate, login.message);
    } else {
      msg = refusal(state, method, ctx.pending, user, database,
                    "file-mode login to the primary failed",
                    "pgtandem: login to target \"" + target_name + "\" failed: " + login.message,
                    login.sqlstate.empty() ? "08006" : login.sqlstate, {}, {});
    }
    co_await asio::async_write(client, asio::buffer(msg), kNoThrow);
    co_return result;
  }

  // Why AuthenticationOk only now: until the primary accepted pgtandem's login the client must not
  // believe it is in; a failure above reaches it as a FATAL instead, as from a server.
  out = ctx.pending;
  put_auth(out, protocol::kAuthOk);
  for (const auto& [name, value] : login.parameters) {
    protocol::encode(out, protocol::ParameterStatus{name, value});
  }
  if (login.key.present) {
    protocol::encode(out, protocol::BackendKeyData{login.key.process_id, login.key.secret_key});
  }
  protocol::encode(out, protocol::ReadyForQuery{login.transaction_status});
  state.metrics->client_auth(method, "ok");
  if (on_ready) on_ready();
  auto [wec, wn] = co_await asio::async_write(client, asio::buffer(out), kNoThrow);
  (void)wn;
  if (wec) co_return result;
  result.ok = true;
  result.have_key = login.key.present;
  result.process_id = login.key.process_id;
  result.secret_key = login.key.secret_key;
  result.leftover = std::move(login.leftover);
  co_return result;
}

}  // namespace

asio::awaitable<FileLoginResult> file_login(Worker& worker, Socket& client, Socket& backend,
                                            std::string& in, std::string_view startup_packet,
                                            const std::function<void()>& on_ready) {
  ServerState& state = worker.state();
  FileLoginResult result;
  protocol::StartupMessage startup;
  if (protocol::parse_startup_message(startup_packet, startup) != protocol::StartupError::kNone) {
    co_return result;  // cannot happen: the caller validated it
  }
  auto snap = state.snapshot.load(std::memory_order_acquire);
  const config::Config& cfg = snap ? *snap->config : *state.config;
  result.target = snap ? snap->primary : state.primary;
  const std::string user(startup.user());
  const std::string database(startup.database());

  if (startup.needs_negotiation()) {
    const bool sent = co_await send_negotiation(client, startup);
    if (!sent) co_return result;
  }

  Exchange exchange(client, in, user, cfg.auth.method, state.auth.userlist.load());
  const std::string method(exchange.method());
  Verdict verdict = co_await exchange.run();
  if (verdict != Verdict::kOk) {
    if (verdict != Verdict::kClosed) {
      state.metrics->client_auth(method, verdict_label(verdict));
      log::info("client authentication failed",
                {{"user", user}, {"method", method}, {"outcome", verdict_label(verdict)}});
      if (!exchange.answer().empty()) {
        co_await asio::async_write(client, asio::buffer(exchange.answer()), kNoThrow);
      }
    }
    co_return result;
  }

  const LoginContext ctx{worker, client,   backend, startup,           cfg,
                         user,   database, method,  exchange.pending(), exchange.entry()};
  co_return co_await login_primary(ctx, result.target, on_ready);
}

}  // namespace pgtandem::proxy
