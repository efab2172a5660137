// The lexer path of statement classification. One pass over the tokens of each statement collects
// what could change the answer (suspicious keywords, function calls, DEFAULT, temporary objects);
// the first keywords then decide. Every doubt goes to the parser: the lexer may call a read a write
// or ask the parser, never call a write a read.
// Size: ~840 lines, kept whole on purpose: the lexer path is one decision procedure (token pass,
// then the first keywords decide), and its doubts-go-to-the-parser rule is only checkable when
// read in one piece. The parser path, functions and cache already live in their own files.
#include "policy/sql/classifier.h"

#include <algorithm>
#include <array>
#include <optional>

#include "policy/sql/classifier_internal.h"
#include "policy/sql/classifier_parser.h"
#include "policy/sql/lexer.h"

namespace pgtandem::policy {
namespace {

using internal::Facts;
using internal::FunctionEffect;
using internal::single;

enum class Command : uint8_t {
  kNone,
  kSelect,  // SELECT, VALUES, TABLE, WITH
  kInsert,
  kUpdate,
  kDelete,
  kMerge,
  kOtherWrite,  // TRUNCATE, DROP, GRANT, VACUUM, NOTIFY ...
  kCreate,      // CREATE, ALTER: may create temporary objects or hold expressions
  kDoOrCall,
  kCopy,
  kBegin,
  kCommit,    // COMMIT, END
  kRollback,  // ROLLBACK, ABORT
  kSavepoint,
  kRelease,
  kPrepare,
  kSet,
  kReset,
  kShow,
  kDiscard,
  kExecute,
  kDeallocate,
  kListen,
  kUnlisten,
  kLoad,
  kExplain,
  kCursor,  // FETCH, MOVE, CLOSE
  kDeclare,
};

enum WordFlag : uint16_t {
  kNotCall = 1 << 0,      // reserved or column-name keyword: "word(" is never a function call
  kSuspicious = 1 << 1,   // INSERT UPDATE DELETE MERGE INTO SHARE: a read may hide a write
  kTimeValue = 1 << 2,    // CURRENT_DATE, CURRENT_TIME[STAMP], LOCALTIME[STAMP]
  kNoCallAfter = 1 << 3,  // AS INTO WITH RECURSIVE: a name right after it is not a call
  kSubquery = 1 << 4,     // "(" followed by SELECT VALUES TABLE WITH is a subquery, not arguments
  kDefault = 1 << 5,
  kAnalyze = 1 << 6,
  kTemp = 1 << 7,  // TEMP, TEMPORARY
  kOverriding = 1 << 8,
};

struct WordInfo {
  uint16_t flags = 0;
  Command command = Command::kNone;
};

using WordMap = StaticStringMap<WordInfo, 512>;
using W = WordMap::Entry;
constexpr uint16_t R = kNotCall;  // PostgreSQL 15 reserved and column-name keywords

// clang-format off
constexpr auto kWordEntries = std::to_array<W>({
    // Statement starts (some are also reserved words).
    {"select", {R | kSubquery, Command::kSelect}}, {"values", {R | kSubquery, Command::kSelect}},
    {"table", {R | kSubquery, Command::kSelect}},
    {"with", {R | kSubquery | kNoCallAfter, Command::kSelect}},
    {"insert", {kSuspicious, Command::kInsert}}, {"update", {kSuspicious, Command::kUpdate}},
    {"delete", {kSuspicious, Command::kDelete}}, {"merge", {kSuspicious, Command::kMerge}},
    {"truncate", {0, Command::kOtherWrite}}, {"drop", {0, Command::kOtherWrite}},
    {"grant", {R, Command::kOtherWrite}}, {"revoke", {0, Command::kOtherWrite}},
    {"comment", {0, Command::kOtherWrite}}, {"vacuum", {0, Command::kOtherWrite}},
    {"analyze", {R | kAnalyze, Command::kOtherWrite}},
    {"analyse", {R | kAnalyze, Command::kOtherWrite}}, {"cluster", {0, Command::kOtherWrite}},
    {"reindex", {0, Command::kOtherWrite}}, {"refresh", {0, Command::kOtherWrite}},
    {"lock", {0, Command::kOtherWrite}}, {"security", {0, Command::kOtherWrite}},
    {"import", {0, Command::kOtherWrite}}, {"reassign", {0, Command::kOtherWrite}},
    {"checkpoint", {0, Command::kOtherWrite}}, {"notify", {0, Command::kOtherWrite}},
    {"create", {R, Command::kCreate}}, {"alter", {0, Command::kCreate}},
    {"do", {R, Command::kDoOrCall}}, {"call", {0, Command::kDoOrCall}},
    {"copy", {0, Command::kCopy}}, {"begin", {0, Command::kBegin}},
    {"start", {0, Command::kBegin}}, {"commit", {0, Command::kCommit}},
    {"end", {R, Command::kCommit}}, {"rollback", {0, Command::kRollback}},
    {"abort", {0, Command::kRollback}}, {"savepoint", {0, Command::kSavepoint}},
    {"release", {0, Command::kRelease}}, {"prepare", {0, Command::kPrepare}},
    {"set", {0, Command::kSet}}, {"reset", {0, Command::kReset}}, {"show", {0, Command::kShow}},
    {"discard", {0, Command::kDiscard}}, {"execute", {0, Command::kExecute}},
    {"deallocate", {0, Command::kDeallocate}}, {"listen", {0, Command::kListen}},
    {"unlisten", {0, Command::kUnlisten}}, {"load", {0, Command::kLoad}},
    {"explain", {0, Command::kExplain}}, {"fetch", {R, Command::kCursor}},
    {"move", {0, Command::kCursor}}, {"close", {0, Command::kCursor}},
    {"declare", {0, Command::kDeclare}},
    // Other words that matter.
    {"into", {R | kSuspicious | kNoCallAfter}}, {"share", {kSuspicious}},
    {"as", {R | kNoCallAfter}}, {"recursive", {kNoCallAfter}}, {"default", {R | kDefault}},
    {"temp", {kTemp}}, {"temporary", {kTemp}}, {"overriding", {kOverriding}},
    {"current_date", {R | kTimeValue}}, {"current_time", {R | kTimeValue}},
    {"current_timestamp", {R | kTimeValue}}, {"localtime", {R | kTimeValue}},
    {"localtimestamp", {R | kTimeValue}},
    // The rest of the reserved keywords.
    {"all", {R}}, {"and", {R}}, {"any", {R}}, {"array", {R}}, {"asc", {R}}, {"asymmetric", {R}},
    {"both", {R}}, {"case", {R}}, {"cast", {R}}, {"check", {R}}, {"collate", {R}},
    {"column", {R}}, {"constraint", {R}}, {"current_catalog", {R}}, {"current_role", {R}},
    {"current_user", {R}}, {"deferrable", {R}}, {"desc", {R}}, {"distinct", {R}},
    {"else", {R}}, {"except", {R}}, {"false", {R}}, {"for", {R}}, {"foreign", {R}},
    {"from", {R}}, {"group", {R}}, {"having", {R}}, {"in", {R}}, {"initially", {R}},
    {"intersect", {R}}, {"lateral", {R}}, {"leading", {R}}, {"limit", {R}}, {"not", {R}},
    {"null", {R}}, {"offset", {R}}, {"on", {R}}, {"only", {R}}, {"or", {R}}, {"order", {R}},
    {"placing", {R}}, {"primary", {R}}, {"references", {R}}, {"returning", {R}},
    {"session_user", {R}}, {"some", {R}}, {"symmetric", {R}}, {"then", {R}}, {"to", {R}},
    {"trailing", {R}}, {"true", {R}}, {"union", {R}}, {"unique", {R}}, {"user", {R}},
    {"using", {R}}, {"variadic", {R}}, {"when", {R}}, {"where", {R}}, {"window", {R}},
    // Column-name keywords: can name columns, never functions or types.
    {"between", {R}}, {"bigint", {R}}, {"bit", {R}}, {"boolean", {R}}, {"char", {R}},
    {"character", {R}}, {"coalesce", {R}}, {"dec", {R}}, {"decimal", {R}}, {"exists", {R}},
    {"extract", {R}}, {"float", {R}}, {"greatest", {R}}, {"grouping", {R}}, {"inout", {R}},
    {"int", {R}}, {"integer", {R}}, {"interval", {R}}, {"least", {R}}, {"national", {R}},
    {"nchar", {R}}, {"none", {R}}, {"normalize", {R}}, {"nullif", {R}}, {"numeric", {R}},
    {"out", {R}}, {"overlay", {R}}, {"position", {R}}, {"precision", {R}}, {"real", {R}},
    {"row", {R}}, {"setof", {R}}, {"smallint", {R}}, {"substring", {R}}, {"time", {R}},
    {"timestamp", {R}}, {"treat", {R}}, {"trim", {R}}, {"varchar", {R}},
    {"xmlattributes", {R}}, {"xmlconcat", {R}}, {"xmlelement", {R}}, {"xmlexists", {R}},
    {"xmlforest", {R}}, {"xmlnamespaces", {R}}, {"xmlparse", {R}}, {"xmlpi", {R}},
    {"xmlroot", {R}}, {"xmlserialize", {R}}, {"xmltable", {R}},
});
// clang-format on
constexpr WordMap kWords(kWordEntries);
constexpr const WordInfo* kInto = kWords.find("into");
constexpr const WordInfo* kAs = kWords.find("as");

const WordInfo* word_info(const Token& t) {
  return t.kind == TokenKind::kWord ? kWords.find_word(t.text) : nullptr;
}
bool has_flag(const WordInfo* info, uint16_t flag) {
  return info != nullptr && (info->flags & flag);
}
bool is_name_token(const Token& t) {
  return t.kind == TokenKind::kWord || t.kind == TokenKind::kQuotedIdentifier ||
         t.kind == TokenKind::kUnicodeIdentifier;
}
bool starts_with_pg_temp(const Token& t) {
  std::string_view s = t.text;
  if (t.kind == TokenKind::kQuotedIdentifier) {
    s = s.substr(1);
  } else if (t.kind != TokenKind::kWord) {
    return false;
  }
  if (s.size() < 7) return false;
  for (size_t i = 0; i < 7; ++i) {
    if (ascii_lower(s[i]) != "pg_temp"[i]) return false;
  }
  return true;
}

constexpr size_t kHead = 10;  // tokens kept for the per-command grammar checks

// A token without default initialisation: the scanner keeps a few per statement and must not pay
// for clearing them.
struct RawToken {
  const char* data;
  size_t size;
  TokenKind kind;

  static RawToken of(const Token& t) { return RawToken{t.text.data(), t.text.size(), t.kind}; }
  Token token() const { return Token{kind, std::string_view(data, size)}; }
};

// What one pass over a statement's tokens found.
struct Scan {
  size_t begin = 0;  // the statement's text, without the terminating ';'
  size_t end = 0;
  size_t count = 0;                  // tokens
  std::array<RawToken, kHead> head;  // only [0, limit()) is set
  Command command = Command::kNone;  // of the first token
  Facts facts;
  bool error = false;
  bool at_end = false;        // no ';' followed: the text is used up
  bool needs_parser = false;  // a call the lexer cannot vouch for, or a stray byte
  bool suspicious = false;    // a keyword that can turn a read into a write
  bool saw_call = false;
  bool saw_quoted = false;
  bool saw_temp = false;
  bool saw_analyze = false;
  bool saw_default = false;
  bool saw_overriding = false;
  bool merge_insert_without_columns = false;
  size_t prepare_body = std::string_view::npos;  // after PREPARE name [(types)] AS
  // INSERT INTO target [AS alias] (columns): the list, matched as it goes by against the columns
  // of the target that the catalog flags (column_defaults.h).
  bool insert_has_list = false;
  bool insert_list_closed = false;
  bool insert_list_unnamed = false;  // an entry the lexer cannot name (the parser can)
  const ColumnDefaults::Columns* insert_flagged = nullptr;
  uint64_t insert_listed = 0;  // bit k: flagged column k is listed

  size_t limit() const { return std::min(count, kHead); }
  Token tok(size_t i) const { return head[i].token(); }
  bool head_is(size_t i, std::string_view lower) const {
    return i < limit() && is_word(tok(i), lower);
  }
};

// The table a DML statement names in its head, from token `at`: name [. name [. name]] (the
// last is the table, the one before it the schema). False when the head does not hold it.
struct Target {
  size_t next = 0;   // the token after the name
  size_t parts = 0;  // 1 to 3
};

bool target_at(const Scan& s, size_t at, Target* out) {
  size_t i = at;
  if (s.head_is(i, "only")) ++i;  // UPDATE ONLY t, MERGE INTO ONLY t: a reserved word
  size_t parts = 0;
  for (;;) {
    if (i >= s.limit() || !is_name_token(s.tok(i))) return false;
    ++parts;
    ++i;
    if (parts == 3 || i >= s.limit() || s.head[i].kind != TokenKind::kDot) break;
    ++i;
  }
  out->next = i;
  out->parts = parts;
  return true;
}

// The flagged columns of the table `target` names, or nullptr (a name the lexer cannot spell
// counts as unknown: such a statement went to the parser already).
const ColumnDefaults::Columns* flagged_columns(const Scan& s, const Target& target,
                                               const ColumnDefaults& defaults) {
  const Token name = s.tok(target.next - 1);
  // A bare word keeps its size and folds its first byte: most tables are ruled out unbuilt.
  if (name.kind == TokenKind::kWord && name.text.size() <= kMaxIdentifierBytes &&
      !defaults.maybe(name.text.size(), ascii_lower(name.text[0]))) {
    return nullptr;
  }
  Identifier table;
  Identifier schema;
  schema.size = 0;
  if (!normalize_identifier(name, &table)) return nullptr;
  if (target.parts >= 2 && !normalize_identifier(s.tok(target.next - 3), &schema)) return nullptr;
  return defaults.find(schema.view(), table.view());
}

const ColumnDefaults* column_defaults_of(const ClassifierOptions& opts) {
  if (opts.catalog == nullptr || opts.catalog->column_defaults().empty()) return nullptr;
  return &opts.catalog->column_defaults();
}

class PieceScanner {
 public:
  PieceScanner(std::string_view sql, Lexer* lexer, const ClassifierOptions& opts)
      : sql_(sql), lexer_(lexer), opts_(opts), defaults_(column_defaults_of(opts)) {}

  Scan run();

 private:
  // A recent token and its keyword entry (looked up once).
  struct Seen {
    RawToken raw;
    const WordInfo* info;
    Token token() const { return raw.token(); }
  };
  const Seen& back(size_t i) const { return ring_[(ring_pos_ + 4 - 1 - i) % 4]; }
  void push(const Token& t, const WordInfo* info) {
    ring_[ring_pos_] = Seen{RawToken::of(t), info};
    ring_pos_ = (ring_pos_ + 1) % 4;
    ++ring_size_;
  }
  void on_left_paren(Scan* s);
  void resolve_call(Scan* s, FunctionEffect effect, bool unresolvable);
  void begin_insert_list(Scan* s);
  void insert_list(Scan* s, const Token& t, const WordInfo* info, int depth);
  size_t offset_of(const Token& t) const {
    return static_cast<size_t>(t.text.data() - sql_.data());
  }

  std::string_view sql_;
  Lexer* lexer_;
  const ClassifierOptions& opts_;
  std::array<Seen, 4> ring_;  // only the last ring_size_ entries are set
  size_t ring_pos_ = 0;
  size_t ring_size_ = 0;
  bool pending_call_ = false;
  bool pending_unresolvable_ = false;
  FunctionEffect pending_effect_ = FunctionEffect::kRead;
  const ColumnDefaults* defaults_;
  // Where an INSERT is relative to its column list; in_list_ while kFirst or kInside.
  enum class List : uint8_t { kBefore, kFirst, kInside, kAfter } list_ = List::kBefore;
  bool in_list_ = false;
  bool entry_start_ = false;
};

Scan PieceScanner::run() {
  Scan s;
  int depth = 0;
  bool leading_parens = true;
  for (;;) {
    const Token t = lexer_->next();
    if (t.kind == TokenKind::kEnd) {
      s.at_end = true;
      break;
    }
    if (t.kind == TokenKind::kError) {
      s.error = true;
      s.at_end = true;
      break;
    }
    if (t.kind == TokenKind::kSemicolon && depth == 0) break;
    const WordInfo* info = word_info(t);
    if (pending_call_) {
      // "f(SELECT ..." is not a call: a subquery needs its own parentheses as an argument.
      if (!has_flag(info, kSubquery)) resolve_call(&s, pending_effect_, pending_unresolvable_);
      pending_call_ = false;
    }
    if (s.count == 0) s.begin = offset_of(t);
    if (leading_parens && t.kind != TokenKind::kLeftParen) {
      // Only a query may open with parentheses: "((SELECT 1))".
      leading_parens = false;
      if (info != nullptr && (s.count == 0 || info->command == Command::kSelect)) {
        s.command = info->command;
      }
    }
    if (s.count < kHead) s.head[s.count] = RawToken::of(t);
    ++s.count;
    s.end = offset_of(t) + t.text.size();
    if (in_list_) insert_list(&s, t, info, depth);

    switch (t.kind) {
      case TokenKind::kWord:
        if (info != nullptr) {
          if (info->flags & kSuspicious) s.suspicious = true;
          if (info->flags & kTimeValue) s.facts.nondeterministic = true;
          if (info->flags & kDefault) s.saw_default = true;
          if (info->flags & kAnalyze) s.saw_analyze = true;
          if (info->flags & kTemp) s.saw_temp = true;
          if (info->flags & kOverriding) s.saw_overriding = true;
          if (s.command == Command::kPrepare && s.count >= 3 && depth == 0 &&
              s.prepare_body == std::string_view::npos && is_word(t, "as")) {
            s.prepare_body = s.end;
          }
        }
        if (t.text.size() >= 7 && (t.text[0] == 'p' || t.text[0] == 'P') &&
            starts_with_pg_temp(t)) {
          s.facts.pins_session = true;
        }
        break;
      case TokenKind::kQuotedIdentifier:
      case TokenKind::kUnicodeIdentifier:
        s.saw_quoted = true;
        if (names(t, "analyze")) s.saw_analyze = true;
        if (starts_with_pg_temp(t)) s.facts.pins_session = true;
        // U&"..." could spell anything (pg_temp, a keyword's twin): the tree has it decoded.
        if (t.kind == TokenKind::kUnicodeIdentifier) s.needs_parser = true;
        break;
      case TokenKind::kLeftParen:
        if (depth == 0 && s.command == Command::kInsert && list_ == List::kBefore) {
          begin_insert_list(&s);
        }
        ++depth;
        on_left_paren(&s);
        break;
      case TokenKind::kRightParen:
        depth = std::max(0, depth - 1);
        break;
      case TokenKind::kOther:
        s.needs_parser = true;
        break;
      default:
        break;
    }
    // MERGE ... THEN INSERT without a column list fills the other columns from defaults.
    if (s.command == Command::kMerge && ring_size_ > 0 && is_word(back(0).token(), "insert") &&
        t.kind != TokenKind::kLeftParen) {
      s.merge_insert_without_columns = true;
    }
    push(t, info);
  }
  if (pending_call_) resolve_call(&s, pending_effect_, pending_unresolvable_);
  return s;
}

// An INSERT's first "(" at depth 0 (in the head, not yet in the ring): its column list if it
// comes right after INSERT INTO target [AS alias].
void PieceScanner::begin_insert_list(Scan* s) {
  list_ = List::kAfter;
  // VALUES (, SELECT (: no list. A table cannot be named so without quotes.
  if (ring_size_ == 0 || has_flag(back(0).info, kSubquery)) return;
  // The recent tokens (keyword entries already looked up) show the common shapes; the head the
  // rest (a qualified name with an alias).
  size_t last = ring_size_ >= 3 && back(1).info == kAs ? 2 : 0;  // the target's last part
  size_t before = last + 1;
  while (before + 1 < std::min<size_t>(ring_size_, 4) && back(before).raw.kind == TokenKind::kDot &&
         is_name_token(back(before + 1).token())) {
    before += 2;
  }
  Target target;
  if (ring_size_ > before && before < 4 && back(before).info == kInto &&
      is_name_token(back(last).token()) && is_name_token(back(0).token())) {
    target.next = s->count - 1 - last;
    target.parts = (before - last + 1) / 2;
  } else {
    if (!s->head_is(1, "into") || !target_at(*s, 2, &target)) return;
    size_t i = target.next;
    if (s->head_is(i, "as")) i += 2;
    if (i + 1 != s->count) return;  // VALUES (, SELECT ... (: not right after the target
  }
  list_ = List::kFirst;
  in_list_ = true;
  if (defaults_ != nullptr) s->insert_flagged = flagged_columns(*s, target, *defaults_);
}

// A token after the "(" that begin_insert_list() took for a column list; `depth` is before `t`.
void PieceScanner::insert_list(Scan* s, const Token& t, const WordInfo* info, int depth) {
  if (list_ == List::kFirst) {
    // "(SELECT" or "((" opens a query instead.
    if (!is_name_token(t) || has_flag(info, kSubquery)) {
      list_ = List::kAfter;
      in_list_ = false;
      return;
    }
    s->insert_has_list = true;
    // Only a table with flagged columns needs the list read further.
    list_ = s->insert_flagged != nullptr ? List::kInside : List::kAfter;
    in_list_ = list_ == List::kInside;
    entry_start_ = true;
  } else if (depth == 1 && t.kind == TokenKind::kRightParen) {
    s->insert_list_closed = true;
    list_ = List::kAfter;
    in_list_ = false;
    return;
  } else if (depth == 1 && t.kind == TokenKind::kComma) {
    entry_start_ = true;
    return;
  }
  // A column, or a column's field or subscript (a.b, a[1]): the entry's first name counts.
  if (!entry_start_ || s->insert_flagged == nullptr) return;
  entry_start_ = false;
  const ColumnDefaults::Columns& flagged = *s->insert_flagged;
  int k = -1;
  if (t.kind == TokenKind::kWord && t.text.size() <= kMaxIdentifierBytes) {
    // A bare word folds to lowercase: compare without building the name.
    for (size_t i = 0; i < flagged.size() && k < 0; ++i) {
      const std::string_view name = flagged.name(i);
      if (name.size() != t.text.size()) continue;
      size_t j = 0;
      while (j < name.size() && ascii_lower(t.text[j]) == name[j]) ++j;
      if (j == name.size()) k = static_cast<int>(i);
    }
  } else {
    Identifier column;
    if (!normalize_identifier(t, &column)) {
      s->insert_list_unnamed = true;
      return;
    }
    k = flagged.index_of(column.view());
  }
  if (k >= 0 && k < 64) s->insert_listed |= uint64_t{1} << k;
}

// `(` just arrived (not yet in the ring): is the name before it a function being called?
void PieceScanner::on_left_paren(Scan* s) {
  if (ring_size_ == 0) return;
  // EXECUTE name (args), PREPARE name (types): a statement name, not a function.
  if ((s->command == Command::kExecute || s->command == Command::kPrepare) && s->count == 3) {
    return;
  }
  const Token name = back(0).token();
  if (!is_name_token(name) || has_flag(back(0).info, kNotCall)) return;
  size_t start = 0;  // ring index of the first token of the (qualified) name
  std::optional<Token> schema;
  if (ring_size_ >= 3 && back(1).raw.kind == TokenKind::kDot && is_name_token(back(2).token())) {
    schema = back(2).token();
    start = 2;
  }
  // A statement never starts with a call: VACUUM (, EXPLAIN (, COPY ( are commands.
  if (ring_size_ == start + 1) return;
  {
    const Token before = back(start + 1).token();
    // An operand cannot follow ")" directly, "::" and AS are followed by a type or an alias,
    // INTO by a table, WITH [RECURSIVE] by a CTE name.
    if (before.kind == TokenKind::kRightParen) return;
    if (before.kind == TokenKind::kPunctuation && before.text == "::") return;
    if (has_flag(back(start + 1).info, kNoCallAfter)) return;
    const bool dml = s->command == Command::kInsert || s->command == Command::kUpdate ||
                     s->command == Command::kMerge;
    // In DML only (where a miss costs a flag, not a write): UPDATE SET (a, b), ON CONFLICT (a),
    // MERGE ... INSERT (a, b).
    if (dml && !schema &&
        (is_word(name, "set") || is_word(name, "insert") ||
         (is_word(name, "conflict") && is_word(before, "on")))) {
      return;
    }
  }
  s->saw_call = true;
  pending_call_ = true;
  if (name.kind == TokenKind::kUnicodeIdentifier ||
      (schema && schema->kind == TokenKind::kUnicodeIdentifier)) {
    pending_unresolvable_ = true;
    return;
  }
  pending_unresolvable_ = false;
  Identifier fn;
  Identifier ns;
  normalize_identifier(name, &fn);
  if (schema) normalize_identifier(*schema, &ns);
  pending_effect_ = internal::function_effect(ns.view(), fn.view(), opts_);
}

void PieceScanner::resolve_call(Scan* s, FunctionEffect effect, bool unresolvable) {
  if (unresolvable) {
    s->needs_parser = true;
    s->facts.nondeterministic = true;
    return;
  }
  switch (effect) {
    case FunctionEffect::kRead:
    case FunctionEffect::kReadNondeterministic:
      s->facts.apply(effect);
      break;
    case FunctionEffect::kWrite:
    case FunctionEffect::kWriteNondeterministic:
    case FunctionEffect::kPrimaryOnly:
      // Certain for DML; for a read the parser confirms it is a call at all.
      s->facts.apply(effect);
      s->needs_parser = s->needs_parser || s->command == Command::kSelect;
      break;
    case FunctionEffect::kAdvisoryLock:
    case FunctionEffect::kSetConfig:
      s->needs_parser = true;  // set_config's is_local argument, pins: the tree says exactly
      break;
  }
}

Classification decide(const Scan& s, std::string_view sql, const Lexer& lexer,
                      const ClassifierOptions& opts);

Classification from_parser(const Scan& s, std::string_view sql, const Lexer& lexer,
                           const ClassifierOptions& opts) {
  if (!opts.standard_conforming_strings && lexer.saw_backslash_in_plain_string()) {
    // libpg_query scans '...' as if standard_conforming_strings were on: its statement
    // boundaries are not the server's, so its answer cannot be trusted.
    Classification c = single(StatementKind::kUnknown);
    c.used_parser = true;
    return c;
  }
  return classify_with_parser(sql.substr(s.begin, s.end - s.begin), opts);
}

Classification with_facts(StatementKind kind, const Facts& facts) {
  Classification c = single(kind);
  facts.flags_into(&c);
  return c;
}

Classification session(SessionOp op, StatementKind kind = StatementKind::kSessionState) {
  Classification c = single(kind);
  c.session = op;
  return c;
}

Classification txn(TxnControl t) {
  Classification c = single(StatementKind::kTransactionControl);
  c.txn = t;
  return c;
}

// "... AND CHAIN" but not "... AND NO CHAIN".
bool and_chain(const Scan& s) {
  for (size_t i = 1; i + 1 < s.limit(); ++i) {
    if (s.head_is(i, "and") && s.head_is(i + 1, "chain")) return true;
  }
  return false;
}

Classification decide_transaction(const Scan& s) {
  switch (s.command) {
    case Command::kBegin: {
      bool read_only = false;
      for (size_t i = 1; i + 1 < s.limit(); ++i) {
        if (s.head_is(i, "read")) read_only = s.head_is(i + 1, "only");
      }
      return txn(read_only ? TxnControl::kBeginReadOnly : TxnControl::kBegin);
    }
    case Command::kCommit:
      if (s.head_is(1, "prepared")) return txn(TxnControl::kCommitPrepared);
      return txn(and_chain(s) ? TxnControl::kCommitAndChain : TxnControl::kCommit);
    case Command::kRollback:
      if (s.head_is(1, "prepared")) return txn(TxnControl::kRollbackPrepared);
      for (size_t i = 1; i < s.limit(); ++i) {
        if (s.head_is(i, "to")) return txn(TxnControl::kRollbackTo);
      }
      return txn(and_chain(s) ? TxnControl::kRollbackAndChain : TxnControl::kRollback);
    case Command::kSavepoint:
      return txn(TxnControl::kSavepoint);
    default:  // kRelease
      return txn(TxnControl::kRelease);
  }
}

Classification decide_prepare(const Scan& s, std::string_view sql, const Lexer& lexer,
                              const ClassifierOptions& opts) {
  // PREPARE TRANSACTION 'gid' (a statement named "transaction" is followed by AS or "(").
  if (s.head_is(1, "transaction") && s.count == 3 && s.head[2].kind == TokenKind::kString) {
    return txn(TxnControl::kPrepareTransaction);
  }
  if (s.prepare_body == std::string_view::npos) return from_parser(s, sql, lexer, opts);
  const std::string_view body = sql.substr(s.prepare_body, s.end - s.prepare_body);
  Lexer body_lexer(body, opts.standard_conforming_strings);
  PieceScanner scanner(body, &body_lexer, opts);
  const Scan b = scanner.run();
  Classification inner;
  switch (b.command) {
    case Command::kSelect:
    case Command::kInsert:
    case Command::kUpdate:
    case Command::kDelete:
    case Command::kMerge:
      inner = decide(b, body, body_lexer, opts);
      break;
    default:
      return from_parser(s, sql, lexer, opts);
  }
  Classification c = inner;
  c.kind = StatementKind::kSessionState;
  c.session = SessionOp::kPrepare;
  c.prepared_kind = inner.kind;
  return c;
}

Classification decide_execute(const Scan& s, const ClassifierOptions& opts) {
  Classification c = single(StatementKind::kUnknown);
  Identifier name;
  if (s.count >= 2 && normalize_identifier(s.tok(1), &name) && opts.prepared != nullptr) {
    if (const Classification* known = opts.prepared->find(name.view())) c = *known;
  }
  // Arguments are evaluated: EXECUTE p(nextval('s')) writes whatever p does.
  if (s.facts.primary_only) {
    c.primary_only_mixed = internal::needs_mirror_besides_primary_only(c) || s.facts.write;
    c.primary_only = true;
  }
  if (s.facts.write || s.facts.primary_only) c.kind = std::max(c.kind, StatementKind::kWrite);
  c.nondeterministic = c.nondeterministic || s.facts.nondeterministic;
  c.session = SessionOp::kExecute;
  c.uses_session_prepared = true;
  c.statement_count = 1;
  c.multi_statement = false;
  return c;
}

Classification decide(const Scan& s, std::string_view sql, const Lexer& lexer,
                      const ClassifierOptions& opts) {
  if (s.error) return single(StatementKind::kUnknown);
  const Command command = s.command;
  const Facts& f = s.facts;
  switch (command) {
    case Command::kSelect:
      if (s.suspicious || s.needs_parser || f.write || f.primary_only ||
          f.session != SessionOp::kNone) {
        return from_parser(s, sql, lexer, opts);
      }
      return with_facts(StatementKind::kRead, f);
    case Command::kInsert:
    case Command::kUpdate:
    case Command::kDelete:
    case Command::kMerge: {
      if (s.needs_parser) return from_parser(s, sql, lexer, opts);
      Classification c = with_facts(StatementKind::kWrite, f);
      c.primary_only_mixed = c.primary_only;  // the statement writes by itself
      const ColumnDefaults* cd = column_defaults_of(opts);
      Target target;
      if (command == Command::kInsert) {
        c.may_use_defaults = s.saw_default || !s.insert_has_list;
        if (cd == nullptr) return c;
        const ColumnDefaults::Columns* flagged = s.insert_flagged;
        if (!s.insert_has_list) {
          // A statement whose target the head does not show is rare: let the tree find it.
          if (!s.head_is(1, "into") || !target_at(s, 2, &target)) {
            return from_parser(s, sql, lexer, opts);
          }
          flagged = flagged_columns(s, target, *cd);
        }
        if (flagged == nullptr) return c;
        // Which column a DEFAULT fills, or which values OVERRIDING USER VALUE ignores: the tree.
        if (s.saw_default || s.saw_overriding || s.insert_list_unnamed) {
          return from_parser(s, sql, lexer, opts);
        }
        // Without a column list the values fill the columns in table order, unknown here.
        const uint64_t all =
            flagged->size() >= 64 ? ~uint64_t{0} : (uint64_t{1} << flagged->size()) - 1;
        if (!s.insert_has_list || !s.insert_list_closed || flagged->size() > 64 ||
            s.insert_listed != all) {
          c.nondeterministic = true;
        }
      } else if (command != Command::kDelete) {
        c.may_use_defaults = s.saw_default || s.merge_insert_without_columns;
        // SET col = DEFAULT, or MERGE's INSERT: which columns the tree says.
        if (cd != nullptr && (command == Command::kMerge || s.saw_default)) {
          const size_t at = command == Command::kMerge ? 2 : 1;
          if (!target_at(s, at, &target) || flagged_columns(s, target, *cd) != nullptr) {
            return from_parser(s, sql, lexer, opts);
          }
        }
      }
      return c;
    }
    case Command::kOtherWrite:
      return single(StatementKind::kWrite);
    case Command::kCreate:
      // Temporary objects pin the session; expressions, quoted names: let the tree say.
      if (s.saw_call || s.saw_temp || s.saw_quoted || s.needs_parser || s.saw_default) {
        return from_parser(s, sql, lexer, opts);
      }
      return with_facts(StatementKind::kWrite, f);
    case Command::kDoOrCall: {
      Classification c = with_facts(StatementKind::kWrite, f);
      c.nondeterministic = true;  // a procedure body is opaque
      if (s.head_is(0, "do")) {
        // A DO body that names pg_terminate_backend() may well call it: keep it off the mirror.
        for (size_t i = 1; i < s.limit(); ++i) {
          const TokenKind k = s.head[i].kind;
          if ((k == TokenKind::kString || k == TokenKind::kDollarString) &&
              internal::mentions_primary_only(s.tok(i).text)) {
            c.primary_only = true;
          }
        }
      }
      c.primary_only_mixed = c.primary_only;  // what else the body or procedure does is unknown
      return c;
    }
    case Command::kBegin:
    case Command::kCommit:
    case Command::kRollback:
    case Command::kSavepoint:
    case Command::kRelease:
      if (s.count > kHead || s.needs_parser) return from_parser(s, sql, lexer, opts);
      return decide_transaction(s);
    case Command::kPrepare:
      return decide_prepare(s, sql, lexer, opts);
    case Command::kSet:
      if (s.head_is(1, "local") || s.head_is(1, "constraints")) {
        return session(SessionOp::kSetLocal);
      }
      if (s.head_is(1, "transaction")) return session(SessionOp::kSetTransaction);
      return session(SessionOp::kSet);
    case Command::kReset:
      return session(s.head_is(1, "all") && s.count == 2 ? SessionOp::kResetAll
                                                         : SessionOp::kReset);
    case Command::kShow:
      return session(SessionOp::kShow, StatementKind::kRead);
    case Command::kDiscard:
      if (s.count != 2) return from_parser(s, sql, lexer, opts);
      if (s.head_is(1, "all")) return session(SessionOp::kDiscardAll);
      if (s.head_is(1, "plans")) return session(SessionOp::kDiscardPlans);
      if (s.head_is(1, "sequences")) return session(SessionOp::kDiscardSequences);
      if (s.head_is(1, "temp") || s.head_is(1, "temporary")) {
        return session(SessionOp::kDiscardTemp);
      }
      return from_parser(s, sql, lexer, opts);
    case Command::kExecute:
      if (s.needs_parser) return from_parser(s, sql, lexer, opts);
      return decide_execute(s, opts);
    case Command::kDeallocate: {
      const size_t at = s.head_is(1, "prepare") ? 2 : 1;
      return session(s.head_is(at, "all") ? SessionOp::kDeallocateAll : SessionOp::kDeallocate);
    }
    case Command::kListen: {
      Classification c = session(SessionOp::kListen);
      c.pins_session = true;
      return c;
    }
    case Command::kUnlisten:
      return session(SessionOp::kUnlisten);
    case Command::kLoad:
      return session(SessionOp::kLoad);
    case Command::kExplain:
      // Without ANALYZE nothing is executed, whatever is explained.
      if (s.saw_analyze || s.needs_parser) return from_parser(s, sql, lexer, opts);
      return single(StatementKind::kRead);
    case Command::kCursor:
      return session(SessionOp::kCursor, StatementKind::kRead);
    case Command::kCopy:
    case Command::kDeclare:
    case Command::kNone:
      break;
  }
  return from_parser(s, sql, lexer, opts);
}

}  // namespace

Classification classify(std::string_view sql, const ClassifierOptions& opts) {
  Lexer lexer(sql, opts.standard_conforming_strings);
  Classification total;
  total.kind = StatementKind::kRead;  // an empty query reads nothing
  for (;;) {
    PieceScanner scanner(sql, &lexer, opts);
    const Scan s = scanner.run();
    if (s.count > 0 || s.error) internal::merge(&total, decide(s, sql, lexer, opts));
    if (s.at_end) break;
  }
  return total;
}

std::optional<std::string> prepared_statement_name(std::string_view sql,
                                                   bool standard_conforming_strings) {
  Lexer lexer(sql, standard_conforming_strings);
  std::array<Token, 3> t{};
  for (Token& token : t) token = lexer.next();
  size_t at = 0;
  if (is_word(t[0], "prepare")) {
    if (is_word(t[1], "transaction") && t[2].kind == TokenKind::kString) return std::nullopt;
    at = 1;
  } else if (is_word(t[0], "execute")) {
    at = 1;
  } else if (is_word(t[0], "deallocate")) {
    at = is_word(t[1], "prepare") ? 2 : 1;
    if (is_word(t[at], "all")) return std::nullopt;
  } else {
    return std::nullopt;
  }
  Identifier name;
  if (!normalize_identifier(t[at], &name)) return std::nullopt;
  return std::string(name.view());
}

}  // namespace pgtandem::policy
