#include "policy/session/request_tracker.h"

#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

using protocol::Header;

void RequestTracker::begin_scan(const char* base, bool routing) {
  base_ = base;
  routing_ = routing;
  messages_ = 0;
  terminate_ = false;
  in_request_ = false;
  divert_ = false;
  divert_begin_ = 0;
}

void RequestTracker::end_scan() {
  // What is left of an extended-protocol batch went to the primary already (it is kept whole in
  // the buffer only while it is incomplete, and then not forwarded yet).
  batch_started_earlier_ = in_request_ && !divert_;
}

void RequestTracker::count_request() {
  if (outstanding_++ == 0) host_->on_first_outstanding();
}

void RequestTracker::begin(std::string_view body) {
  if (in_request_) return;
  in_request_ = true;
  request_begin_ = static_cast<size_t>(body.data() - protocol::kHeaderSize - base_);
  routable_ = !batch_started_earlier_;
  batch_started_earlier_ = false;
  parsed_unnamed_ = false;
  shadow_cursor_ = false;
  sql_ = {};
  routed_statement_.clear();
  host_->on_request_begin();
}

// The request just ended (its last message's body is `last`): stop here if its statement may
// leave the primary; else it may be shadowed.
bool RequestTracker::end_request(std::string_view last) {
  in_request_ = false;
  if (!routing_ || host_->pinned()) return true;
  // A cursor is no routable read, but a sampled one is counted as a skipped shadow read.
  const bool cursor = !routable_ && shadow_cursor_;
  if (!routable_ && !cursor) return true;
  const bool to_secondary = host_->route_to_secondary(sql_);
  if (cursor) {
    host_->kept_on_primary({}, sql_, true);
    return true;
  }
  if (!to_secondary) {
    const char* request_end = last.data() + last.size();
    host_->kept_on_primary(
        std::string_view(base_ + request_begin_,
                         static_cast<size_t>(request_end - base_) - request_begin_),
        sql_, false);
    return true;
  }
  divert_ = true;
  divert_begin_ = request_begin_;
  return false;
}

// A statement of a request that is still routable: it stays routable if the host says so.
void RequestTracker::classify(std::string_view sql) {
  const StatementVerdict v = host_->classify(sql);
  shadow_cursor_ = v.shadow_cursor;
  routable_ = v.routable;
}

void RequestTracker::on_query(std::string_view body) {
  const std::string_view q = body.substr(0, body.empty() ? 0 : body.size() - 1);
  if (host_->log_statements()) host_->log_statement(q);
  if (!routing_) return;
  sql_ = q;
  if (routable_) classify(q);
}

void RequestTracker::on_parse(std::string_view body) {
  if (host_->log_statements()) {
    protocol::Parse p;
    if (protocol::decode(body, p)) host_->log_statement(p.query);
  }
  if (!routing_) return;
  protocol::Parse p;
  if (!protocol::decode(body, p) || !p.name.empty()) {
    // A named statement must exist on the primary: its Parse never leaves it. Its copy on the
    // secondary, if any, is stale now.
    routable_ = false;
    if (!p.query.empty()) shadow_cursor_ = host_->classify(p.query).shadow_cursor;  // pinning
    if (!p.name.empty()) host_->statement_redefined(p.name);
    return;
  }
  parsed_unnamed_ = true;
  if (sql_.empty()) sql_ = p.query;
  if (routable_) classify(p.query);
}

void RequestTracker::on_bind(std::string_view body) {
  if (!routing_ || !routable_) return;
  std::string_view portal, statement;
  if (!protocol::decode_bind_names(body, &portal, &statement) || !portal.empty()) {
    routable_ = false;
  } else if (statement.empty()) {
    routable_ = parsed_unnamed_;  // the unnamed statement lives where its Parse went
  } else {
    std::string_view text;
    routable_ = host_->prepared_read(statement, sql_.empty() ? &text : nullptr) &&
                (routed_statement_.empty() || routed_statement_ == statement);
    if (routable_) {
      routed_statement_.assign(statement);
      if (sql_.empty()) sql_ = text;
    }
  }
}

void RequestTracker::on_describe(std::string_view body) {
  if (!routing_ || !routable_) return;
  protocol::Describe d;
  if (!protocol::decode(body, d)) {
    routable_ = false;
  } else if (d.target == protocol::kTargetStatement && !d.name.empty()) {
    routable_ = host_->prepared_read(d.name, nullptr) &&
                (routed_statement_.empty() || routed_statement_ == d.name);
    if (routable_) routed_statement_.assign(d.name);
  } else if (d.target == protocol::kTargetPortal && !d.name.empty()) {
    routable_ = false;  // a named portal lives where its Bind ran
  }
}

bool RequestTracker::on_message(const Header& h, std::string_view body) {
  ++messages_;
  host_->on_frontend(h, std::string_view(body.data() - protocol::kHeaderSize,
                                         body.size() + protocol::kHeaderSize));
  begin(body);
  switch (h.type) {
    case protocol::frontend::kQuery:
      count_request();
      on_query(body);
      if (routing_) return end_request(body);
      in_request_ = false;
      return true;
    case protocol::frontend::kSync:
      count_request();
      if (routing_) return end_request(body);
      in_request_ = false;
      return true;
    case protocol::frontend::kFunctionCall:
      count_request();
      in_request_ = false;
      return true;
    case protocol::frontend::kTerminate:
      terminate_ = true;
      return false;
    case protocol::frontend::kParse:
      on_parse(body);
      return true;
    case protocol::frontend::kBind:
      on_bind(body);
      return true;
    case protocol::frontend::kDescribe:
      on_describe(body);
      return true;
    case protocol::frontend::kExecute:
      return true;
    default:
      // Close, Flush, COPY data: not part of a routable read.
      if (routing_) routable_ = false;
      return true;
  }
}

bool RequestTracker::on_stream_start(const Header& h) {
  ++messages_;
  switch (h.type) {
    case protocol::frontend::kQuery:
    case protocol::frontend::kSync:
    case protocol::frontend::kFunctionCall:
      count_request();
      in_request_ = false;
      return true;
    default:
      // A streamed message is forwarded in pieces: its request cannot be routed.
      if (!in_request_) {
        in_request_ = true;
        batch_started_earlier_ = false;
      }
      routable_ = false;
      return true;
  }
}

}  // namespace pgtandem::policy
