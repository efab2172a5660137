#include "policy/migrate/run_board.h"

#include <cstdio>

namespace pgtandem::policy::migrate {

namespace {

constexpr const char* kCommands[] = {"backfill", "verify", "repair"};

// The gauges per command (names spelled out: tests/deploy/check_deploy.py looks for them here).
struct Gauge {
  const char* names[3];  // backfill, verify, repair
  const char* field;     // the document's field, or a computed one
  const char* help;
};
constexpr Gauge kGauges[] = {
    {{"pgtandem_backfill_rows", "pgtandem_verify_rows", "pgtandem_repair_rows"}, "rows",
     "Rows handled by the latest run, as the command reported it"},
    {{"pgtandem_backfill_chunks", "pgtandem_verify_chunks", "pgtandem_repair_chunks"}, "chunks",
     "Chunks handled by the latest run"},
    {{"pgtandem_backfill_bytes", "pgtandem_verify_bytes", "pgtandem_repair_bytes"}, "bytes",
     "Bytes copied by the latest run (COPY text)"},
    {{"pgtandem_backfill_differences", "pgtandem_verify_differences", "pgtandem_repair_differences"},
     "differences", "Differing rows found by the latest run"},
    {{"pgtandem_backfill_repaired", "pgtandem_verify_repaired", "pgtandem_repair_repaired"}, "repaired",
     "Rows repaired by the latest run"},
    {{"pgtandem_backfill_barriers_by_grace", "pgtandem_verify_barriers_by_grace",
      "pgtandem_repair_barriers_by_grace"},
     "barriers_by_grace",
     "Chunks whose mirror barrier waited out the commit grace (a request still in flight): exact only if "
     "its answer came within the grace (the rest ended by the answer drain)"},
    {{"pgtandem_backfill_running", "pgtandem_verify_running", "pgtandem_repair_running"}, "running",
     "1 while a run reports progress (0: none, finished, or silent for 30 s)"},
    {{"pgtandem_backfill_last_run_timestamp_seconds", "pgtandem_verify_last_run_timestamp_seconds",
      "pgtandem_repair_last_run_timestamp_seconds"},
     "last_finished", "End of the last finished run (unix time; 0: none yet)"},
    {{"pgtandem_backfill_last_run_exit_code", "pgtandem_verify_last_run_exit_code",
      "pgtandem_repair_last_run_exit_code"},
     "last_exit", "Exit code of the last finished run (0 ok; verify 1: differences; -1: none yet)"},
    {{"pgtandem_backfill_last_run_duration_seconds", "pgtandem_verify_last_run_duration_seconds",
      "pgtandem_repair_last_run_duration_seconds"},
     "last_seconds", "Duration of the last finished run"},
};

int64_t int_of(const Json& doc, std::string_view key) {
  const Json* v = doc.get(key);
  return v && (v->type() == Json::Type::kInt || v->type() == Json::Type::kDouble) ? v->as_int() : 0;
}

double double_of(const Json& doc, std::string_view key) {
  const Json* v = doc.get(key);
  return v && (v->type() == Json::Type::kInt || v->type() == Json::Type::kDouble) ? v->as_double() : 0;
}

std::string string_of(const Json& doc, std::string_view key) {
  const Json* v = doc.get(key);
  return v && v->type() == Json::Type::kString ? v->as_string() : std::string();
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A label value in Prometheus text: backslash, quote and newline escaped.
std::string label_value(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

bool same_table(std::string_view reported, std::string_view asked) {
  if (reported == asked) return true;
  // A bare name matches "schema.name".
  if (asked.find('.') == std::string_view::npos) {
    const size_t dot = reported.rfind('.');
    return dot != std::string_view::npos && reported.substr(dot + 1) == asked;
  }
  return false;
}

}  // namespace

bool RunBoard::update(std::string_view body, int64_t now_unix, std::string* error) {
  std::string why;
  auto doc = Json::parse(body, &why);
  if (!doc || doc->type() != Json::Type::kObject) {
    *error = "not a JSON object" + (why.empty() ? std::string() : ": " + why);
    return false;
  }
  const std::string command = string_of(*doc, "command");
  bool known = false;
  for (const char* c : kCommands) known = known || command == c;
  if (!known) {
    *error = "\"command\" must be backfill, verify or repair";
    return false;
  }
  const std::string state = string_of(*doc, "state");
  if (state != "running" && state != "done" && state != "failed") {
    *error = "\"state\" must be running, done or failed";
    return false;
  }
  if (doc->get("tables") && doc->get("tables")->type() == Json::Type::kArray) {
    // Bound what one document may make the board keep (and export).
    Json trimmed = Json::array();
    for (const auto& t : doc->get("tables")->items()) {
      if (trimmed.items().size() >= kMaxTables) break;
      if (t.type() == Json::Type::kObject) trimmed.push(t);
    }
    doc->set("tables", std::move(trimmed));
  }
  Entry& e = entries_[command];
  e.doc = std::move(*doc);
  e.received_at = now_unix;
  if (state != "running") {
    int64_t finished = int_of(e.doc, "finished_at");
    if (finished == 0) finished = now_unix;
    e.last = LastResult{finished, int_of(e.doc, "exit_code"), double_of(e.doc, "seconds")};
  }
  return true;
}

const RunBoard::Entry* RunBoard::entry(std::string_view command) const {
  auto it = entries_.find(command);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string RunBoard::state_of(const Entry& e, int64_t now_unix) const {
  const std::string s = string_of(e.doc, "state");
  if (s == "running" && now_unix - e.received_at > kStaleSeconds) return "stopped";
  return s;
}

std::string RunBoard::status_json(int64_t now_unix) const {
  Json out = Json::object();
  for (const char* c : kCommands) {
    const Entry* e = entry(c);
    if (!e) {
      out.set(c, Json::null());
      continue;
    }
    Json doc = e->doc;
    doc.set("state", Json::string(state_of(*e, now_unix)));
    doc.set("received_at", Json::integer(e->received_at));
    if (e->last) {
      doc.set("last_result", Json::object()
                                 .set("finished_at", Json::integer(e->last->finished_at))
                                 .set("exit_code", Json::integer(e->last->exit_code))
                                 .set("seconds", Json::number(e->last->seconds)));
    } else {
      doc.set("last_result", Json::null());
    }
    out.set(c, std::move(doc));
  }
  return out.dump();
}

std::string RunBoard::prometheus(int64_t now_unix) const {
  std::string out;
  auto gauge = [&](const std::string& name, const char* help, const std::string& value) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + value + "\n";
  };
  for (size_t i = 0; i < 3; ++i) {
    const Entry* e = entry(kCommands[i]);
    const Json empty = Json::object();
    const Json& d = e ? e->doc : empty;
    for (const auto& g : kGauges) {
      std::string value;
      const std::string field = g.field;
      if (field == "running") {
        value = e && state_of(*e, now_unix) == "running" ? "1" : "0";
      } else if (field == "last_finished") {
        value = std::to_string(e && e->last ? e->last->finished_at : 0);
      } else if (field == "last_exit") {
        value = std::to_string(e && e->last ? e->last->exit_code : -1);
      } else if (field == "last_seconds") {
        value = number(e && e->last ? e->last->seconds : 0);
      } else {
        value = std::to_string(int_of(d, field));
      }
      gauge(g.names[i], g.help, value);
    }
  }
  const Entry* b = entry("backfill");
  out += "# HELP pgtandem_backfill_table_rows Rows copied per table by the latest backfill\n"
         "# TYPE pgtandem_backfill_table_rows gauge\n";
  std::string done = "# HELP pgtandem_backfill_table_done 1 when the latest backfill finished the table\n"
                     "# TYPE pgtandem_backfill_table_done gauge\n";
  if (b && b->doc.get("tables")) {
    for (const auto& t : b->doc.get("tables")->items()) {
      const std::string label = "{table=\"" + label_value(string_of(t, "table")) + "\"}";
      out += "pgtandem_backfill_table_rows" + label + " " + std::to_string(int_of(t, "rows")) + "\n";
      const Json* d = t.get("done");
      done += "pgtandem_backfill_table_done" + label + " " + (d && d->as_bool() ? "1" : "0") + "\n";
    }
  }
  return out + done;
}

std::optional<RunBoard::LastResult> RunBoard::last_result(std::string_view command) const {
  const Entry* e = entry(command);
  if (e == nullptr) return std::nullopt;
  return e->last;
}

bool RunBoard::backfill_pending(std::string_view table) const {
  const Entry* b = entry("backfill");
  if (!b) return false;
  if (string_of(b->doc, "state") == "done" && int_of(b->doc, "exit_code") == 0) return false;
  const Json* tables = b->doc.get("tables");
  if (!tables || tables->items().empty()) return true;  // planning: nothing copied yet
  for (const auto& t : tables->items()) {
    const Json* d = t.get("done");
    const bool table_done = d && d->as_bool();
    if (table.empty()) {
      if (!table_done) return true;
      continue;
    }
    if (same_table(string_of(t, "table"), table) && !table_done) return true;
  }
  // A table not listed: pending if the list was cut (more than kMaxTables) and some are not done.
  if (!table.empty() && int_of(b->doc, "tables_total") > static_cast<int64_t>(tables->items().size()))
    return int_of(b->doc, "tables_done") < int_of(b->doc, "tables_total");
  // Every table done, or a table this backfill does not copy: not the backfill's doing.
  return false;
}

bool RunBoard::backfill_pending_any(const std::vector<std::string>& tables) const {
  if (tables.empty()) return backfill_pending();
  for (const auto& t : tables)
    if (backfill_pending(t)) return true;
  return false;
}

}  // namespace pgtandem::policy::migrate
