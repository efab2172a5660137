#include "policy/migrate/schema.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

namespace pgtandem::policy::migrate {

const Column* Table::column(const std::string& n) const {
  for (const auto& c : columns)
    if (c.name == n) return &c;
  return nullptr;
}

const Table* Schema::table(const std::string& qualified) const {
  for (const auto& t : tables)
    if (t.qualified() == qualified) return &t;
  return nullptr;
}

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

}  // namespace

KeyChoice choose_key(const Table& table) {
  if (!table.primary_key.empty()) return {table.primary_key, "primary key (" + join(table.primary_key) + ")"};
  for (const auto& uk : table.unique_keys) {
    bool all_not_null = !uk.empty();
    for (const auto& c : uk) {
      const Column* col = table.column(c);
      if (col == nullptr || !col->not_null) all_not_null = false;
    }
    if (all_not_null) return {uk, "unique index (" + join(uk) + ") on NOT NULL columns"};
  }
  return {{}, "none"};
}

std::vector<std::string> compare_schemas(const Schema& o, const Schema& n,
                                         const std::vector<std::string>& allowed_casts) {
  std::vector<std::string> diffs;
  for (const auto& ot : o.tables) {
    const Table* nt = n.table(ot.qualified());
    if (nt == nullptr) {
      diffs.push_back("table " + ot.qualified() + " exists on old, not on new");
      continue;
    }
    const std::string prefix = "table " + ot.qualified() + ": ";
    for (const auto& oc : ot.columns) {
      const Column* nc = nt->column(oc.name);
      if (nc == nullptr) {
        diffs.push_back(prefix + "column " + oc.name + " (" + oc.type + ") missing on new");
        continue;
      }
      if (nc->type != oc.type) {
        const std::string cast = oc.type + "->" + nc->type;
        if (std::find(allowed_casts.begin(), allowed_casts.end(), cast) == allowed_casts.end())
          diffs.push_back(prefix + "column " + oc.name + " is " + oc.type + " on old, " + nc->type +
                          " on new");
      }
      if (nc->not_null != oc.not_null)
        diffs.push_back(prefix + "column " + oc.name + " is " +
                        (oc.not_null ? "NOT NULL" : "nullable") + " on old, " +
                        (nc->not_null ? "NOT NULL" : "nullable") + " on new");
    }
    for (const auto& nc : nt->columns) {
      if (ot.column(nc.name) == nullptr && nc.not_null)
        diffs.push_back(prefix + "column " + nc.name + " (" + nc.type +
                        ", NOT NULL) exists only on new: copied rows would not fill it");
      else if (ot.column(nc.name) == nullptr)
        diffs.push_back(prefix + "column " + nc.name + " (" + nc.type + ") exists only on new");
    }
    const KeyChoice ok = choose_key(ot);
    const KeyChoice nk = choose_key(*nt);
    if (ok.columns != nk.columns)
      diffs.push_back(prefix + "key is " + ok.source + " on old, " + nk.source + " on new");
  }
  for (const auto& nt : n.tables)
    if (o.table(nt.qualified()) == nullptr)
      diffs.push_back("table " + nt.qualified() + " exists on new, not on old");
  std::set<std::string> old_seqs, new_seqs;
  for (const auto& s : o.sequences) old_seqs.insert(s.qualified());
  for (const auto& s : n.sequences) new_seqs.insert(s.qualified());
  for (const auto& s : old_seqs)
    if (!new_seqs.count(s)) diffs.push_back("sequence " + s + " exists on old, not on new");
  for (const auto& s : new_seqs)
    if (!old_seqs.count(s)) diffs.push_back("sequence " + s + " exists on new, not on old");
  std::map<std::string, std::string> old_ext(o.extensions.begin(), o.extensions.end());
  std::map<std::string, std::string> new_ext(n.extensions.begin(), n.extensions.end());
  for (const auto& [name, version] : old_ext) {
    auto it = new_ext.find(name);
    if (it == new_ext.end())
      diffs.push_back("extension " + name + " " + version + " installed on old, not on new");
    else if (it->second != version)
      diffs.push_back("extension " + name + " is version " + version + " on old, " + it->second +
                      " on new");
  }
  for (const auto& [name, version] : new_ext)
    if (!old_ext.count(name))
      diffs.push_back("extension " + name + " " + version + " installed on new, not on old");
  return diffs;
}

std::vector<const Table*> copy_order(const std::vector<const Table*>& tables) {
  std::vector<const Table*> sorted = tables;
  std::sort(sorted.begin(), sorted.end(),
            [](const Table* a, const Table* b) { return a->qualified() < b->qualified(); });
  std::map<std::string, const Table*> by_name;
  for (const Table* t : sorted) by_name[t->qualified()] = t;
  std::set<std::string> placed, visiting;
  std::vector<const Table*> out;
  std::function<void(const Table*)> visit = [&](const Table* t) {
    const std::string q = t->qualified();
    if (placed.count(q) || visiting.count(q)) return;  // a cycle is broken here
    visiting.insert(q);
    std::vector<std::string> refs = t->references;
    std::sort(refs.begin(), refs.end());
    for (const auto& r : refs) {
      auto it = by_name.find(r);
      if (it != by_name.end() && r != q) visit(it->second);
    }
    visiting.erase(q);
    placed.insert(q);
    out.push_back(t);
  };
  for (const Table* t : sorted) visit(t);
  return out;
}

std::vector<std::string> canonical_columns(const Table& table) {
  std::vector<std::string> names;
  names.reserve(table.columns.size());
  for (const auto& c : table.columns) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace pgtandem::policy::migrate
