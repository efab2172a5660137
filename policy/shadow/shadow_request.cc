#include "policy/shadow/shadow_request.h"

#include <string>
#include <utility>
#include <vector>

#include "protocol/framing.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

bool shadow_request(std::string_view request, const ParseLookup &lookup, std::string *out) {
  out->clear();
  out->reserve(request.size() + 64);
  // What the unnamed statement holds in the copy so far: the name of the client's statement it
  // stands for ("" = the client's own unnamed statement, or nothing parsed yet).
  std::string unnamed_holds;
  bool unnamed_set = false;
  // Named statements parsed earlier in this same batch: name -> the Parse body.
  std::vector<std::pair<std::string, std::string>> in_batch;
  auto load = [&](std::string_view name) -> bool {
    if (unnamed_set && unnamed_holds == name) return true;
    std::string_view body;
    for (auto it = in_batch.rbegin(); it != in_batch.rend(); ++it) {
      if (it->first == name) {
        body = it->second;
        break;
      }
    }
    std::string from_lookup;
    if (body.empty()) {
      const std::string *msg = lookup ? lookup(name) : nullptr;
      if (msg == nullptr || msg->size() < protocol::kHeaderSize ||
          (*msg)[0] != protocol::frontend::kParse) {
        return false;
      }
      body = std::string_view(*msg).substr(protocol::kHeaderSize);
    }
    protocol::Parse parse;
    if (!protocol::decode(body, parse)) return false;
    parse.name = {};
    protocol::encode(*out, parse);
    unnamed_holds.assign(name);
    unnamed_set = true;
    return true;
  };

  size_t pos = 0;
  while (pos < request.size()) {
    if (request.size() - pos < protocol::kHeaderSize) return false;
    const char type = request[pos];
    const uint32_t len = protocol::read_u32(request.data() + pos + 1);
    if (len < 4 || len > request.size() - pos - 1) return false;
    const std::string_view msg = request.substr(pos, len + 1);
    const std::string_view body = msg.substr(protocol::kHeaderSize);
    pos += len + 1;
    switch (type) {
      case protocol::frontend::kParse: {
        protocol::Parse parse;
        if (!protocol::decode(body, parse)) return false;
        if (parse.name.empty()) {
          out->append(msg);
          unnamed_holds.clear();
          unnamed_set = true;
        } else {
          in_batch.emplace_back(std::string(parse.name), std::string(body));
          parse.name = {};
          protocol::encode(*out, parse);
          unnamed_holds = in_batch.back().first;
          unnamed_set = true;
        }
        break;
      }
      case protocol::frontend::kBind: {
        std::string_view portal, statement;
        if (!protocol::decode_bind_names(body, &portal, &statement)) return false;
        if (statement.empty()) {
          out->append(msg);
          break;
        }
        if (!load(statement)) return false;
        const size_t begin = protocol::begin_message(*out, type);
        out->append(portal);
        *out += '\0';
        *out += '\0';  // the unnamed statement
        out->append(body.substr(portal.size() + statement.size() + 2));
        protocol::end_message(*out, begin);
        break;
      }
      case protocol::frontend::kDescribe: {
        protocol::Describe d;
        if (!protocol::decode(body, d)) return false;
        if (d.target == protocol::kTargetStatement && !d.name.empty()) {
          if (!load(d.name)) return false;
          protocol::encode(*out, protocol::Describe{protocol::kTargetStatement, {}});
        } else {
          out->append(msg);
        }
        break;
      }
      case protocol::frontend::kClose:
        break;  // the copy deallocates nothing of the session's
      default:
        out->append(msg);
        break;
    }
  }
  return true;
}

}  // namespace pgtandem::policy
