#include "policy/migrate/marks.h"

#include <algorithm>

namespace pgtandem::policy::migrate {

namespace {

std::string str(const Json& j, std::string_view key) {
  const Json* v = j.get(key);
  return v != nullptr && v->type() == Json::Type::kString ? v->as_string() : std::string();
}

bool seen(const AdminMarks& at_start, const MarkView& m) {
  const std::string id = m.id();
  return std::any_of(at_start.marks.begin(), at_start.marks.end(),
                     [&](const MarkView& s) { return s.id() == id; });
}

}  // namespace

bool parse_status_marks(std::string_view status_json, AdminMarks* out, std::string* error) {
  out->read = false;
  out->stopped = false;
  out->marks.clear();
  auto j = Json::parse(status_json, error);
  const Json* mirror = j ? j->get("mirror") : nullptr;
  if (mirror == nullptr || mirror->type() != Json::Type::kObject) {
    if (error && j) *error = "/status has no mirror object";
    return false;
  }
  if (const Json* s = mirror->get("stopped")) out->stopped = s->type() == Json::Type::kBool && s->as_bool();
  if (const Json* marks = mirror->get("needs_repair"); marks && marks->type() == Json::Type::kArray) {
    for (const auto& m : marks->items())
      out->marks.push_back({str(m, "kind"), str(m, "target"), str(m, "from"), str(m, "to")});
  }
  out->read = true;
  return true;
}

ClearPlan plan_clear(const AdminMarks& at_start, const AdminMarks& now) {
  ClearPlan plan;
  if (now.marks.empty()) return plan;
  size_t crash = 0, crash_ok = 0, other_ok = 0;
  std::vector<std::string> crash_ids, all_ids;
  for (const auto& m : now.marks) {
    std::string why;
    if (!at_start.read) {
      why = "its marks could not be read when the verify started";
    } else if (!seen(at_start, m)) {
      why = "the mark appeared after the verify started";
    } else if (m.kind == "crash_window") {
      // ended before the process that recorded it started, hence before the verify
    } else if (m.kind == "journal_full") {
      if (at_start.stopped || now.stopped)
        why = "mirroring is stopped by the journal limit in that pgtandem (restart it, then verify again)";
    } else if (m.kind == "apply_timeout") {
      // The hung backend may still commit its units after the verify: only an operator who knows
      // that backend is gone can clear it.
      why = "units a hung backend may still commit: clear it by hand (POST /mirror/needs-repair/clear) "
            "once that backend is gone, then verify again";
    } else {
      why = "a mark of a kind this version does not know";
    }
    if (m.kind == "crash_window") ++crash;
    if (why.empty()) {
      (m.kind == "crash_window" ? crash_ok : other_ok)++;
      all_ids.push_back(m.id());
      if (m.kind == "crash_window") crash_ids.push_back(m.id());
    } else {
      plan.kept.push_back(m.kind + " on " + m.target + " from " + m.from + ": " + why);
    }
  }
  if (plan.kept.empty()) {
    plan.path = other_ok > 0 ? "/mirror/needs-repair/clear" : "/mirror/crash-window/clear";
    plan.expected = now.marks.size();
    plan.ids = std::move(all_ids);
  } else if (crash > 0 && crash_ok == crash) {
    // Every crash window may go but something else must stay: clear only that kind.
    plan.path = "/mirror/crash-window/clear";
    plan.expected = crash;
    plan.ids = std::move(crash_ids);
  }
  return plan;
}

Json encode_admin_marks(const std::vector<AdminMarks>& all) {
  Json out = Json::array();
  for (const auto& a : all) {
    Json o = Json::object();
    o.set("admin", Json::string(a.admin));
    o.set("read", Json::boolean(a.read));
    o.set("stopped", Json::boolean(a.stopped));
    Json marks = Json::array();
    for (const auto& m : a.marks) {
      Json mo = Json::object();
      mo.set("kind", Json::string(m.kind));
      mo.set("target", Json::string(m.target));
      mo.set("from", Json::string(m.from));
      mo.set("to", Json::string(m.to));
      marks.push(std::move(mo));
    }
    o.set("marks", std::move(marks));
    out.push(std::move(o));
  }
  return out;
}

std::vector<AdminMarks> decode_admin_marks(const Json* j) {
  std::vector<AdminMarks> out;
  if (j == nullptr || j->type() != Json::Type::kArray) return out;
  for (const auto& a : j->items()) {
    AdminMarks am;
    am.admin = str(a, "admin");
    if (const Json* v = a.get("read")) am.read = v->as_bool();
    if (const Json* v = a.get("stopped")) am.stopped = v->as_bool();
    if (const Json* marks = a.get("marks"); marks && marks->type() == Json::Type::kArray)
      for (const auto& m : marks->items())
        am.marks.push_back({str(m, "kind"), str(m, "target"), str(m, "from"), str(m, "to")});
    out.push_back(std::move(am));
  }
  return out;
}

}  // namespace pgtandem::policy::migrate
