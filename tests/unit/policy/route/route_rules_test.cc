#include "policy/route/route_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace pgtandem::policy {
namespace {

using Tags = std::vector<std::pair<std::string, std::string>>;
using Tables = std::vector<std::string>;

// ---- helpers ----

config::Route target_route(std::string target) {
  config::Route r;
  r.target = std::move(target);
  return r;
}

config::Route percent_route(double percent, std::string hash_key = "session") {
  config::Route r;
  r.percent = percent;
  r.hash_key = std::move(hash_key);
  return r;
}

config::Config make_config(std::vector<config::Route> routes, std::string seed = "pgtandem") {
  config::Config c;
  c.routing.hash_seed = std::move(seed);
  c.routes = std::move(routes);
  for (size_t i = 0; i < c.routes.size(); ++i) {
    if (c.routes[i].name.empty()) c.routes[i].name = "route-" + std::to_string(i + 1);
  }
  return c;
}

SessionInfo session(std::string user = "app", std::string database = "db",
                    std::string application_name = "psql", std::string client = "10.1.2.3",
                    uint64_t key = 1) {
  SessionInfo s;
  s.user = std::move(user);
  s.database = std::move(database);
  s.application_name = std::move(application_name);
  if (!client.empty()) s.client = IpAddress::parse(client);
  s.client_address = std::move(client);
  s.session_key = key;
  return s;
}

RouteDecision decide(const RuleSet& set, const SessionInfo& s, std::string_view sql = "SELECT 1") {
  RuleSet::SessionRoutes routes = set.for_session(s);
  StatementInfo st(sql);
  return routes.decide(st);
}

// Which rule matched (-1: none).
int matched(const RuleSet& set, const SessionInfo& s, std::string_view sql = "SELECT 1") {
  return decide(set, s, sql).rule;
}

// ---- IpAddress ----

TEST(RouteIpAddress, ParsesV4AsV4Mapped) {
  const std::optional<IpAddress> a = IpAddress::parse("10.1.2.3");
  ASSERT_TRUE(a);
  const uint8_t expected[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  EXPECT_TRUE(std::equal(std::begin(a->bytes), std::end(a->bytes), std::begin(expected)));
  EXPECT_EQ(*a, IpAddress::from_v4(0x0a010203));
  EXPECT_EQ(*a, *IpAddress::parse("::ffff:10.1.2.3"));
  EXPECT_EQ(*a, IpAddress::from_v6(expected));
}

TEST(RouteIpAddress, ParsesV6) {
  const std::optional<IpAddress> a = IpAddress::parse("::1");
  ASSERT_TRUE(a);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(a->bytes[i], 0);
  EXPECT_EQ(a->bytes[15], 1);
  const std::optional<IpAddress> b = IpAddress::parse("2001:db8::ff00:42:8329");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->bytes[0], 0x20);
  EXPECT_EQ(b->bytes[1], 0x01);
  EXPECT_EQ(b->bytes[2], 0x0d);
  EXPECT_EQ(b->bytes[3], 0xb8);
  EXPECT_EQ(b->bytes[15], 0x29);
}

TEST(RouteIpAddress, RejectsGarbage) {
  for (std::string_view bad : {"", "1.2.3", "1.2.3.256", "10.0.0.0/8", "::g", "1::2::3",
                               "localhost", " 10.1.2.3", "10.1.2.3 "}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
  EXPECT_FALSE(IpAddress::parse(std::string(200, '1')));
  EXPECT_FALSE(IpAddress::parse(std::string_view("1.2.3.4\0", 8)));
}

// ---- sqlcommenter tags ----

TEST(SqlTags, TrailingComment) {
  EXPECT_EQ(parse_sql_tags("SELECT * FROM t /* tenant='42',route='canary' */"),
            (Tags{{"tenant", "42"}, {"route", "canary"}}));
  EXPECT_EQ(parse_sql_tags("SELECT * FROM t;/*tenant='42'*/"), (Tags{{"tenant", "42"}}));
  // Spaces around separators are tolerated; keys are kept as written.
  EXPECT_EQ(parse_sql_tags("SELECT 1 /*  Tenant = '42' ,  route='x'  */"),
            (Tags{{"Tenant", "42"}, {"route", "x"}}));
}

TEST(SqlTags, LeadingAndInnerComments) {
  EXPECT_EQ(parse_sql_tags("/* tenant='1' */ SELECT 1"), (Tags{{"tenant", "1"}}));
  EXPECT_EQ(parse_sql_tags("SELECT /* tenant='1' */ 1 FROM t"), (Tags{{"tenant", "1"}}));
}

TEST(SqlTags, DashDashComment) {
  EXPECT_EQ(parse_sql_tags("SELECT 1 -- tenant='7'"), (Tags{{"tenant", "7"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 -- tenant='7',app='x'  \r\n"),
            (Tags{{"tenant", "7"}, {"app", "x"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 --tenant='7'\nFROM t"), (Tags{{"tenant", "7"}}));
}

TEST(SqlTags, UrlDecoded) {
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* name='O%27Brien',path='%2Fa%2fb',sp='a%20b' */"),
            (Tags{{"name", "O'Brien"}, {"path", "/a/b"}, {"sp", "a b"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* db%20driver='x' */"), (Tags{{"db driver", "x"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* plus='a+b' */"), (Tags{{"plus", "a+b"}}));
  // A broken escape makes the comment malformed.
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* a='%zz' */").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* a='50%' */").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* a='%4' */").empty());
}

TEST(SqlTags, EscapedQuote) {
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* name='O\\'Brien' */"), (Tags{{"name", "O'Brien"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* a='x\\\\',b='y' */"), (Tags{{"a", "x\\"}, {"b", "y"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* a='it,s=\"fine\"' */"), (Tags{{"a", "it,s=\"fine\""}}));
}

TEST(SqlTags, MultipleCommentsInOrder) {
  EXPECT_EQ(parse_sql_tags("/* a='1' */ SELECT 1 /* b='2' */ -- c='3'"),
            (Tags{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
  // A malformed or ordinary comment gives nothing; its neighbours still count.
  EXPECT_EQ(parse_sql_tags("/* report: revenue */ SELECT 1 /* b='2' */ /* c=3 */"),
            (Tags{{"b", "2"}}));
  // Duplicates are kept in order (rules use the first).
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* a='1' */ /* a='2' */"), (Tags{{"a", "1"}, {"a", "2"}}));
}

TEST(SqlTags, TagsInLiteralsDoNotCount) {
  EXPECT_TRUE(parse_sql_tags("SELECT '/* tenant=''1'' */'").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT '-- tenant=''1'''").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT E'\\' /* tenant=''1'' */'").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT $$ /* tenant='1' */ $$").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT $x$ -- tenant='1' $x$").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1 AS \"/* tenant='1' */\"").empty());
  // After the literal, a real comment counts.
  EXPECT_EQ(parse_sql_tags("SELECT '/* tenant=''1'' */' /* tenant='2' */"),
            (Tags{{"tenant", "2"}}));
  EXPECT_EQ(parse_sql_tags("SELECT 'it''s' -- tenant='3'"), (Tags{{"tenant", "3"}}));
}

TEST(SqlTags, NestedCommentsGiveNothing) {
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* /* tenant='1' */ */").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* tenant='1' /* x */ */").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /*/*tenant='1'*/*/").empty());
  // The nested comment hides the would-be tag from the tokenizer too: only the later one counts.
  EXPECT_EQ(parse_sql_tags("SELECT 1 /* a /* b */ c */ /* tenant='1' */"), (Tags{{"tenant", "1"}}));
}

TEST(SqlTags, MalformedGivesNothing) {
  for (std::string_view sql : {
           "SELECT 1 /* tenant=1 */",
           "SELECT 1 /* tenant='1 */",
           "SELECT 1 /* tenant='1' extra */",
           "SELECT 1 /* tenant='1',, b='2' */",
           "SELECT 1 /* tenant='1', */",
           "SELECT 1 /* ='1' */",
           "SELECT 1 /* tenant '1' */",
           "SELECT 1 /* tenant='1'route='2' */",
           "SELECT 1 /**/",
           "SELECT 1 /*   */",
           "SELECT 1 --",
           "SELECT 1 /* tenant='1\\' */",
       }) {
    EXPECT_TRUE(parse_sql_tags(sql).empty()) << sql;
  }
}

TEST(SqlTags, StatementsTheServerRejectsGiveNothing) {
  EXPECT_TRUE(parse_sql_tags("SELECT 1 /* tenant='1' */ /* unterminated").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 'unterminated /* tenant='1' */").empty());
  EXPECT_TRUE(parse_sql_tags(std::string_view("SELECT 1 /* tenant='1' */\0", 26)).empty());
}

TEST(SqlTags, Bounded) {
  std::string sql = "SELECT 1 /* ";
  for (int i = 0; i < 100; ++i)
    sql += (i ? "," : "") + std::string("k") + std::to_string(i) + "='v'";
  sql += " */ /* more='x' */";
  const Tags tags = parse_sql_tags(sql);
  ASSERT_EQ(tags.size(), 64u);
  EXPECT_EQ(tags.front().first, "k0");
  EXPECT_EQ(tags.back().first, "k63");
  EXPECT_TRUE(parse_sql_tags("").empty());
  EXPECT_TRUE(parse_sql_tags("SELECT 1").empty());
}

TEST(SqlTags, RandomInputNeverCrashes) {
  // Fixed seed: the same inputs on every run. Fragments, so that tag-like text is common.
  std::mt19937 rng(20261101);
  const std::string_view kFragments[] = {"/*",
                                         "*/",
                                         "--",
                                         "'",
                                         "''",
                                         "\"",
                                         "$$",
                                         "$a$",
                                         "\\",
                                         "%27",
                                         "%",
                                         "=",
                                         ",",
                                         " ",
                                         "\n",
                                         "a",
                                         "E'",
                                         "k='v'",
                                         "k='v',",
                                         "SELECT ",
                                         "/* k='v' */",
                                         "-- k='v'\n",
                                         std::string_view("\0", 1)};
  int with_tags = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string sql;
    for (uint32_t n = rng() % 12; n > 0; --n) sql += kFragments[rng() % std::size(kFragments)];
    const Tags tags = parse_sql_tags(sql);
    EXPECT_LE(tags.size(), 64u);
    if (sql.find("/*") == std::string::npos && sql.find("--") == std::string::npos) {
      EXPECT_TRUE(tags.empty()) << sql;
    }
    // The scanner accepted it: a real comment after it is always found, last.
    if (!tags.empty()) {
      ++with_tags;
      const Tags more = parse_sql_tags(sql + "\n/* zz='1' */");
      ASSERT_FALSE(more.empty()) << sql;
      EXPECT_EQ(more.back(), (std::pair<std::string, std::string>{"zz", "1"})) << sql;
    }
    if (i % 10 == 0) {
      (void)referenced_tables(sql);
      (void)statement_fingerprint(sql);
    }
  }
  EXPECT_GT(with_tags, 1000);
}

// ---- tables ----

TEST(RouteTables, SimpleAndJoins) {
  EXPECT_EQ(referenced_tables("SELECT * FROM accounts"), (Tables{"accounts"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c USING (id), d"),
            (Tables{"a", "b", "c", "d"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM a x, a y"), (Tables{"a"}));
}

TEST(RouteTables, SchemaQualifiedAndQuoted) {
  EXPECT_EQ(referenced_tables("SELECT * FROM public.accounts JOIN Sales.Orders o ON true"),
            (Tables{"public.accounts", "sales.orders"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM \"Sales\".\"Orders\", \"MiXed\", ACCOUNTS"),
            (Tables{"Sales.Orders", "MiXed", "accounts"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM db.s.t"), (Tables{"db.s.t"}));
}

TEST(RouteTables, CtesAndSubqueries) {
  EXPECT_EQ(referenced_tables("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent"),
            (Tables{"orders"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM a WHERE id IN (SELECT id FROM b WHERE EXISTS "
                              "(SELECT 1 FROM c)) AND x = (SELECT max(y) FROM d)"),
            (Tables{"a", "b", "c", "d"}));
  EXPECT_EQ(referenced_tables("SELECT * FROM (SELECT * FROM inner_t) sub"), (Tables{"inner_t"}));
  // A CTE hides only unqualified references, and only where it is in scope.
  EXPECT_EQ(referenced_tables("WITH accounts AS (SELECT * FROM accounts) "
                              "SELECT * FROM accounts, public.accounts"),
            (Tables{"accounts", "public.accounts"}));
  EXPECT_EQ(
      referenced_tables("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s JOIN t ON true"),
      (Tables{"t"}));
  EXPECT_EQ(referenced_tables("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
                              "WHERE n < 10) SELECT * FROM r"),
            (Tables{}));
  EXPECT_EQ(referenced_tables("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b"),
            (Tables{"b"}));
}

TEST(RouteTables, Writes) {
  EXPECT_EQ(referenced_tables("INSERT INTO t (a) SELECT a FROM s"), (Tables{"t", "s"}));
  EXPECT_EQ(referenced_tables("UPDATE t SET a = 1 FROM s WHERE t.id = s.id"), (Tables{"t", "s"}));
  EXPECT_EQ(referenced_tables("DELETE FROM public.t USING s WHERE t.id = s.id"),
            (Tables{"public.t", "s"}));
  // The target of a write is a table even when a CTE has its name.
  EXPECT_EQ(referenced_tables("WITH t AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM t"),
            (Tables{"t"}));
  EXPECT_EQ(referenced_tables("SELECT 1 FROM a; SELECT 2 FROM b"), (Tables{"a", "b"}));
}

TEST(RouteTables, SyntaxErrorIsEmpty) {
  EXPECT_TRUE(referenced_tables("SELEC * FROM accounts").empty());
  EXPECT_TRUE(referenced_tables("SELECT * FROM").empty());
  EXPECT_TRUE(referenced_tables(std::string_view("SELECT * FROM t\0", 16)).empty());
  EXPECT_TRUE(referenced_tables("").empty());
  EXPECT_TRUE(referenced_tables("SELECT 1").empty());
}

// ---- fingerprints ----

TEST(RouteFingerprint, SameQueryDifferentConstants) {
  const std::string a = statement_fingerprint("SELECT * FROM accounts WHERE id = 1");
  ASSERT_EQ(a.size(), 16u);
  EXPECT_TRUE(std::all_of(a.begin(), a.end(),
                          [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }));
  EXPECT_EQ(a, statement_fingerprint("select *  from accounts where id = 4242 /* x='1' */"));
  EXPECT_EQ(a, statement_fingerprint("SELECT * FROM accounts WHERE id = $1"));
  EXPECT_NE(a, statement_fingerprint("SELECT * FROM orders WHERE id = 1"));
  EXPECT_EQ(statement_fingerprint("SELEC 1"), "");
  EXPECT_EQ(statement_fingerprint(std::string_view("SELECT 1\0", 9)), "");
}

TEST(RouteFingerprint, NormalizeReplacesConstants) {
  EXPECT_EQ(normalize_statement("SELECT * FROM accounts WHERE id = 42 AND name = 'bob'"),
            "SELECT * FROM accounts WHERE id = $1 AND name = $2");
  EXPECT_EQ(normalize_statement("SELECT a FROM t WHERE b = $1"), "SELECT a FROM t WHERE b = $1");
  EXPECT_EQ(normalize_statement("SELEC 1"), "SELEC 1") << "unparsable: as it is";
  EXPECT_EQ(normalize_statement(std::string_view("SELECT 1\0x", 10)), "SELECT 1");
}

// ---- hashing ----

TEST(RouteHash, KnownValues) {
  // Computed once; a change here reshuffles every percentage rule on every deployed replica.
  EXPECT_EQ(hash_point("pgtandem", "1"), 3180u);
  EXPECT_EQ(hash_point("pgtandem", "12345"), 234u);
  EXPECT_EQ(hash_point("pgtandem", "alice"), 3880u);
  EXPECT_EQ(hash_point("pgtandem", ""), 8325u);
  EXPECT_EQ(hash_point("other-seed", "alice"), 5314u);
  EXPECT_EQ(hash_point("", ""), 7227u);
}

TEST(RouteHash, SeedAndKeyAreSeparated) {
  EXPECT_NE(hash_point("ab", "c"), hash_point("a", "bc"));
  EXPECT_NE(hash_point("pgtandem", "alice"), hash_point("pgtandem2", "alice"));
}

TEST(RouteHash, RangeAndSpread) {
  int buckets[10] = {};
  for (int i = 0; i < 100000; ++i) {
    const uint32_t p = hash_point("pgtandem", std::to_string(i));
    ASSERT_LT(p, 10000u);
    ++buckets[p / 1000];
  }
  for (int b : buckets) EXPECT_NEAR(b, 10000, 400);
}

// ---- percentages ----

TEST(RoutePercent, MonotoneAndProportional) {
  const double steps[] = {0, 0.5, 1, 5, 10, 12.5, 25, 50, 75, 99, 99.99, 100};
  constexpr int kKeys = 10000;
  std::vector<bool> previous(kKeys, false);
  for (double p : steps) {
    const auto set = RuleSet::compile(make_config({percent_route(p)}));
    int routed = 0;
    for (int k = 0; k < kKeys; ++k) {
      const SessionInfo s = session("app", "db", "psql", "10.1.2.3", static_cast<uint64_t>(k));
      const bool to_new = decide(*set, s).target == RouteTarget::kNew;
      // Raising the percentage only moves keys to `new`.
      if (previous[k]) {
        ASSERT_TRUE(to_new) << "key " << k << " left `new` at " << p << "%";
      }
      previous[k] = to_new;
      routed += to_new;
    }
    // Binomial: sigma <= 50 for 10000 keys; 4 sigma.
    EXPECT_NEAR(routed, p * kKeys / 100.0, 200) << p << "%";
    if (p == 0) {
      EXPECT_EQ(routed, 0);
    }
    if (p == 100) {
      EXPECT_EQ(routed, kKeys);
    }
  }
}

TEST(RoutePercent, ZeroSendsNothingHundredEverything) {
  const auto zero = RuleSet::compile(make_config({percent_route(0)}));
  const auto all = RuleSet::compile(make_config({percent_route(100)}));
  for (uint64_t k = 0; k < 2000; ++k) {
    const SessionInfo s = session("app", "db", "psql", "10.1.2.3", k * 7919);
    const RouteDecision z = decide(*zero, s);
    EXPECT_EQ(z.target, RouteTarget::kPrimary);
    EXPECT_EQ(z.rule, 0);  // it matched; its percentage kept the read on the primary
    EXPECT_EQ(decide(*all, s).target, RouteTarget::kNew);
  }
}

TEST(RoutePercent, ThresholdIsPercentTimesHundred) {
  // p = 12.34 sends exactly the points below 1234.
  const auto set = RuleSet::compile(make_config({percent_route(12.34)}));
  const auto tiny = RuleSet::compile(make_config({percent_route(0.07)}));
  for (uint64_t k = 0; k < 5000; ++k) {
    const SessionInfo s = session("app", "db", "psql", "", k);
    const uint32_t point = hash_point("pgtandem", std::to_string(k));
    EXPECT_EQ(decide(*set, s).target == RouteTarget::kNew, point < 1234) << k;
    EXPECT_EQ(decide(*tiny, s).target == RouteTarget::kNew, point < 7) << k;
  }
}

std::vector<RouteTarget> decisions(const RuleSet& set, int sessions) {
  std::vector<RouteTarget> out;
  for (int k = 0; k < sessions; ++k) {
    const SessionInfo s =
        session("user" + std::to_string(k % 13), "db", "app" + std::to_string(k % 7),
                "10.0." + std::to_string(k % 5) + "." + std::to_string(k % 250),
                static_cast<uint64_t>(k) * 2654435761u);
    out.push_back(
        decide(set, s, "SELECT * FROM t /* tenant='" + std::to_string(k % 97) + "' */").target);
  }
  return out;
}

TEST(RoutePercent, ReplicasAgree) {
  for (std::string key : {"session", "user", "application_name", "client_address", "tag:tenant"}) {
    const config::Config c = make_config({percent_route(30, key)}, "replica-seed");
    const auto a = RuleSet::compile(c);
    const auto b = RuleSet::compile(make_config({percent_route(30, key)}, "replica-seed"));
    const std::vector<RouteTarget> da = decisions(*a, 3000);
    EXPECT_EQ(da, decisions(*b, 3000)) << key;
    const long to_new = std::count(da.begin(), da.end(), RouteTarget::kNew);
    EXPECT_GT(to_new, 0) << key;
    EXPECT_LT(to_new, 3000) << key;
  }
}

TEST(RoutePercent, UnrelatedRuleChangesMoveNothing) {
  config::Route canary = percent_route(30);
  canary.name = "canary";
  const auto before = RuleSet::compile(make_config({canary}));
  const std::vector<RouteTarget> reference = decisions(*before, 3000);

  // Another user's rule added in front, and the canary renamed: nobody moves.
  config::Route other = target_route("new");
  other.match.users = {"someone-else"};
  config::Route renamed = canary;
  renamed.name = "canary-renamed";
  renamed.shadow_sample_rate = 0.5;
  const auto after = RuleSet::compile(make_config({other, renamed}));
  EXPECT_EQ(decisions(*after, 3000), reference);

  // A changed seed reshuffles.
  const auto reseeded = RuleSet::compile(make_config({canary}, "another-seed"));
  EXPECT_NE(decisions(*reseeded, 3000), reference);
}

TEST(RoutePercent, HashKeys) {
  const std::string seed = "pgtandem";
  auto expect_key = [&](const std::string& hash_key, const SessionInfo& s, std::string_view sql,
                        const std::string& key) {
    // 50%: whether `new` or not is exactly the hash of the expected key.
    const auto set = RuleSet::compile(make_config({percent_route(50, hash_key)}, seed));
    const bool expected = hash_point(seed, key) < 5000;
    EXPECT_EQ(decide(*set, s, sql).target == RouteTarget::kNew, expected)
        << hash_key << " key=" << key;
  };
  for (int i = 0; i < 200; ++i) {
    const std::string n = std::to_string(i);
    const SessionInfo s = session("u" + n, "db", "app" + n, "192.168.0." + std::to_string(i % 250),
                                  1000000 + static_cast<uint64_t>(i));
    const std::string tagged = "SELECT 1 /* tenant='t" + n + "' */";
    expect_key("session", s, "SELECT 1", std::to_string(s.session_key));
    expect_key("user", s, "SELECT 1", s.user);
    expect_key("application_name", s, "SELECT 1", s.application_name);
    expect_key("client_address", s, "SELECT 1", s.client_address);
    expect_key("tag:tenant", s, tagged, "t" + n);
    // No such tag: the session key.
    expect_key("tag:tenant", s, "SELECT 1 /* other='x' */", std::to_string(s.session_key));
    expect_key("tag:missing", s, tagged, std::to_string(s.session_key));
  }
}

TEST(RoutePercent, SameKeySameDecisionAcrossSessions) {
  const auto by_user = RuleSet::compile(make_config({percent_route(50, "user")}));
  const auto by_tag = RuleSet::compile(make_config({percent_route(50, "tag:tenant")}));
  for (int u = 0; u < 50; ++u) {
    const std::string user = "user" + std::to_string(u);
    const std::string sql = "SELECT 1 /* tenant='" + std::to_string(u) + "' */";
    const RouteTarget first_user = decide(*by_user, session(user, "db", "a", "", 1)).target;
    const RouteTarget first_tag = decide(*by_tag, session("x", "db", "a", "", 1), sql).target;
    for (uint64_t k = 2; k < 20; ++k) {
      EXPECT_EQ(decide(*by_user, session(user, "db", "a", "", k)).target, first_user);
      EXPECT_EQ(decide(*by_tag, session("y", "db", "b", "", k), sql).target, first_tag);
    }
  }
}

// ---- match keys ----

TEST(RouteMatchKeys, Users) {
  config::Route r = target_route("new");
  r.match.users = {"alice", "bob"};
  const auto set = RuleSet::compile(make_config({r}));
  EXPECT_EQ(matched(*set, session("alice")), 0);
  EXPECT_EQ(matched(*set, session("bob")), 0);
  EXPECT_EQ(matched(*set, session("Alice")), -1);  // role names are case-sensitive as sent
  EXPECT_EQ(matched(*set, session("carol")), -1);
  EXPECT_EQ(decide(*set, session("alice")).target, RouteTarget::kNew);
  EXPECT_EQ(decide(*set, session("carol")).target, RouteTarget::kPrimary);
}

TEST(RouteMatchKeys, Databases) {
  config::Route r = target_route("new");
  r.match.databases = {"reports"};
  const auto set = RuleSet::compile(make_config({r}));
  EXPECT_EQ(matched(*set, session("app", "reports")), 0);
  EXPECT_EQ(matched(*set, session("app", "billing")), -1);
}

TEST(RouteMatchKeys, ApplicationNames) {
  config::Route r = target_route("new");
  r.match.application_names = {"dashboard", ""};
  const auto set = RuleSet::compile(make_config({r}));
  EXPECT_EQ(matched(*set, session("app", "db", "dashboard")), 0);
  EXPECT_EQ(matched(*set, session("app", "db", "")), 0);
  EXPECT_EQ(matched(*set, session("app", "db", "psql")), -1);
}

TEST(RouteMatchKeys, ClientCidrV4) {
  config::Route r = target_route("new");
  r.match.client_cidrs = {"10.0.0.0/8", "192.168.1.7"};
  const auto set = RuleSet::compile(make_config({r}));
  EXPECT_EQ(matched(*set, session("a", "d", "p", "10.255.0.1")), 0);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "192.168.1.7")), 0);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "192.168.1.8")), -1);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "11.0.0.1")), -1);
  // A v4 client seen on a dual-stack socket as v4-mapped v6 is the same client.
  EXPECT_EQ(matched(*set, session("a", "d", "p", "::ffff:10.9.9.9")), 0);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "::1")), -1);
  // Unix-socket clients have no address: a rule on addresses does not apply.
  EXPECT_EQ(matched(*set, session("a", "d", "p", "")), -1);
}

TEST(RouteMatchKeys, ClientCidrV6AndMapped) {
  config::Route r = target_route("new");
  r.match.client_cidrs = {"2001:db8::/32", "::1/128"};
  config::Route mapped = target_route("old");
  mapped.match.client_cidrs = {"::ffff:172.16.0.0/108"};  // = 172.16.0.0/12
  const auto set = RuleSet::compile(make_config({r, mapped}));
  EXPECT_EQ(matched(*set, session("a", "d", "p", "2001:db8:1::5")), 0);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "2001:db9::5")), -1);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "::1")), 0);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "::2")), -1);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "172.31.255.255")), 1);
  EXPECT_EQ(matched(*set, session("a", "d", "p", "172.32.0.0")), -1);
  EXPECT_EQ(decide(*set, session("a", "d", "p", "172.16.0.1")).target, RouteTarget::kOld);
}

TEST(RouteMatchKeys, CidrEdges) {
  config::Route all_v4 = target_route("new");
  all_v4.match.client_cidrs = {"0.0.0.0/0"};
  config::Route all = target_route("old");
  all.match.client_cidrs = {"::/0"};
  config::Route odd = target_route("new");
  odd.match.client_cidrs = {"10.1.2.3/8"};  // host bits set: the network is 10.0.0.0/8
  const auto v4 = RuleSet::compile(make_config({all_v4}));
  const auto any = RuleSet::compile(make_config({all}));
  const auto host_bits = RuleSet::compile(make_config({odd}));
  EXPECT_EQ(matched(*v4, session("a", "d", "p", "1.2.3.4")), 0);
  EXPECT_EQ(matched(*v4, session("a", "d", "p", "2001:db8::1")), -1);
  EXPECT_EQ(matched(*any, session("a", "d", "p", "2001:db8::1")), 0);
  EXPECT_EQ(matched(*any, session("a", "d", "p", "1.2.3.4")), 0);
  EXPECT_EQ(matched(*host_bits, session("a", "d", "p", "10.200.0.1")), 0);
}

TEST(RouteMatchKeys, Tables) {
  config::Route r = target_route("new");
  r.match.tables = {"Accounts", "sales.orders", "\"MiXed\""};
  const auto set = RuleSet::compile(make_config({r}));
  const SessionInfo s = session();
  EXPECT_EQ(matched(*set, s, "SELECT * FROM accounts"), 0);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM ACCOUNTS a JOIN x ON true"), 0);
  // A bare name matches the table in any schema.
  EXPECT_EQ(matched(*set, s, "SELECT * FROM public.accounts"), 0);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM Sales.Orders"), 0);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM orders"), -1);  // qualified rule, unqualified query
  EXPECT_EQ(matched(*set, s, "SELECT * FROM other.orders"), -1);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM \"MiXed\""), 0);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM mixed"), -1);
  EXPECT_EQ(matched(*set, s, "SELECT * FROM \"Accounts\""), -1);  // quoted keeps its case
  EXPECT_EQ(matched(*set, s, "SELECT * FROM my_accounts"), -1);
  EXPECT_EQ(matched(*set, s, "WITH accounts AS (SELECT 1) SELECT * FROM accounts"), -1);
  EXPECT_EQ(matched(*set, s, "SELEC * FROM accounts"), -1);
}

TEST(RouteMatchKeys, Fingerprints) {
  config::Route r = target_route("new");
  r.match.fingerprints = {statement_fingerprint("SELECT * FROM t WHERE id = 1")};
  std::string upper = r.match.fingerprints[0];
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  config::Route upper_rule = target_route("old");
  upper_rule.match.fingerprints = {upper};
  const auto set = RuleSet::compile(make_config({r}));
  const auto set_upper = RuleSet::compile(make_config({upper_rule}));
  EXPECT_EQ(matched(*set, session(), "select * from t where id = 99"), 0);
  EXPECT_EQ(matched(*set_upper, session(), "select * from t where id = 99"), 0);
  EXPECT_EQ(matched(*set, session(), "SELECT * FROM t WHERE id = 1 AND x = 2"), -1);
  EXPECT_EQ(matched(*set, session(), "SELEC garbage"), -1);
}

TEST(RouteMatchKeys, Tags) {
  config::Route r = target_route("new");
  r.match.tags = {{"tenant", {"42", "43"}}, {"route", {"canary"}}};
  config::Route presence = target_route("old");
  presence.match.tags = {{"debug", {}}};
  const auto set = RuleSet::compile(make_config({r, presence}));
  const SessionInfo s = session();
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* tenant='42',route='canary' */"), 0);
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* route='canary' */ -- tenant='43'"), 0);
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* tenant='44',route='canary' */"), -1);
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* tenant='42' */"), -1);  // every key must be there
  EXPECT_EQ(matched(*set, s, "SELECT '/* tenant=''42'',route=''canary'' */'"), -1);
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* debug='anything' */"), 1);
  EXPECT_EQ(matched(*set, s, "SELECT 1"), -1);
  // The first occurrence of a key decides.
  EXPECT_EQ(matched(*set, s, "SELECT 1 /* tenant='1' */ /* tenant='42',route='canary' */"), -1);
}

TEST(RouteMatchKeys, Combined) {
  config::Route r = target_route("new");
  r.match.users = {"alice", "bob"};
  r.match.databases = {"db"};
  r.match.application_names = {"web"};
  r.match.client_cidrs = {"10.0.0.0/8"};
  r.match.tables = {"accounts"};
  r.match.tags = {{"tenant", {"1"}}};
  const auto set = RuleSet::compile(make_config({r}));
  const std::string sql = "SELECT * FROM accounts /* tenant='1' */";
  EXPECT_EQ(matched(*set, session("alice", "db", "web", "10.1.1.1"), sql), 0);
  EXPECT_EQ(matched(*set, session("bob", "db", "web", "10.1.1.1"), sql), 0);
  EXPECT_EQ(matched(*set, session("carol", "db", "web", "10.1.1.1"), sql), -1);
  EXPECT_EQ(matched(*set, session("alice", "db2", "web", "10.1.1.1"), sql), -1);
  EXPECT_EQ(matched(*set, session("alice", "db", "cli", "10.1.1.1"), sql), -1);
  EXPECT_EQ(matched(*set, session("alice", "db", "web", "11.1.1.1"), sql), -1);
  EXPECT_EQ(matched(*set, session("alice", "db", "web", "10.1.1.1"), "SELECT * FROM accounts"), -1);
  EXPECT_EQ(
      matched(*set, session("alice", "db", "web", "10.1.1.1"), "SELECT * FROM t /* tenant='1' */"),
      -1);
}

TEST(RouteRules, FirstMatchWins) {
  config::Route tagged = target_route("primary");
  tagged.match.tags = {{"route", {"primary"}}};
  config::Route accounts = target_route("old");
  accounts.match.tables = {"accounts"};
  config::Route alice = target_route("new");
  alice.match.users = {"alice"};
  alice.shadow_sample_rate = 0.25;
  config::Route rest = percent_route(100);
  const auto set = RuleSet::compile(make_config({tagged, accounts, alice, rest}));
  const SessionInfo a = session("alice");
  const SessionInfo b = session("bob");

  RouteDecision d = decide(*set, a, "SELECT * FROM accounts /* route='primary' */");
  EXPECT_EQ(d.rule, 0);
  EXPECT_EQ(d.target, RouteTarget::kPrimary);
  d = decide(*set, a, "SELECT * FROM accounts");
  EXPECT_EQ(d.rule, 1);
  EXPECT_EQ(d.target, RouteTarget::kOld);
  d = decide(*set, a, "SELECT * FROM orders");
  EXPECT_EQ(d.rule, 2);
  EXPECT_EQ(d.target, RouteTarget::kNew);
  ASSERT_TRUE(d.shadow_sample_rate);
  EXPECT_EQ(*d.shadow_sample_rate, 0.25);
  d = decide(*set, b, "SELECT * FROM orders");
  EXPECT_EQ(d.rule, 3);
  EXPECT_EQ(d.target, RouteTarget::kNew);
  EXPECT_FALSE(d.shadow_sample_rate);

  EXPECT_EQ(set->size(), 4u);
  EXPECT_EQ(set->rule_name(2), "route-3");
}

TEST(RouteRules, NamesAndEmptySet) {
  config::Config c = make_config({target_route("new"), target_route("old")});
  c.routes[0].name = "canary";
  c.routes[1].name.clear();
  const auto set = RuleSet::compile(c);
  EXPECT_EQ(set->rule_name(0), "canary");
  EXPECT_EQ(set->rule_name(1), "route-2");
  const auto none = RuleSet::compile(make_config({}));
  EXPECT_TRUE(none->empty());
  const RouteDecision d = decide(*none, session());
  EXPECT_EQ(d.rule, -1);
  EXPECT_EQ(d.target, RouteTarget::kPrimary);
  EXPECT_FALSE(d.shadow_sample_rate);
}

TEST(RouteRules, OddInputNeverCrashes) {
  config::Route a = target_route("sideways");  // unknown target: the primary
  a.match.client_cidrs = {"not-an-address", "10.0.0.0/99", "10.0.0.0/", "/8", "::1/129", ""};
  a.match.tables = {"", "\"", "\"\"", "a..b", ".", "a.", "\"unterminated", "a b"};
  config::Route b = percent_route(std::numeric_limits<double>::quiet_NaN(), "no-such-key");
  config::Route c = percent_route(-5, "tag:");
  config::Route d = percent_route(1e300);
  config::Route e;  // no action at all
  const auto set = RuleSet::compile(make_config({a, b, c, d, e}));
  const SessionInfo s = session();
  // a's CIDRs are all invalid: it never matches; b's NaN sends nothing.
  RouteDecision dec = decide(*set, s, "SELECT * FROM \"\"\"\"");
  EXPECT_EQ(dec.rule, 1);
  EXPECT_EQ(dec.target, RouteTarget::kPrimary);
  const auto only_c = RuleSet::compile(make_config({c}));
  EXPECT_EQ(decide(*only_c, s).target, RouteTarget::kPrimary);
  const auto only_d = RuleSet::compile(make_config({d}));
  EXPECT_EQ(decide(*only_d, s).target, RouteTarget::kNew);
  const auto only_e = RuleSet::compile(make_config({e}));
  EXPECT_EQ(decide(*only_e, s).rule, 0);
  EXPECT_EQ(decide(*only_e, s).target, RouteTarget::kPrimary);
  config::Route f = target_route("new");
  f.match.tables = {"\"unterminated"};
  const auto only_f = RuleSet::compile(make_config({f}));
  EXPECT_EQ(matched(*only_f, s, "SELECT * FROM \"unterminated\""), -1);
}

// ---- per-session precomputation ----

TEST(RouteSession, NoRules) {
  const auto set = RuleSet::compile(make_config({}));
  const SessionInfo s = session();
  const RuleSet::SessionRoutes routes = set->for_session(s);
  EXPECT_FALSE(routes.depends_on_statement());
  EXPECT_FALSE(routes.routes_anything());
  EXPECT_EQ(routes.fixed().rule, -1);
  EXPECT_EQ(routes.fixed().target, RouteTarget::kPrimary);
}

TEST(RouteSession, SessionOnlyRulesAreFixed) {
  config::Route other = target_route("new");
  other.match.users = {"bob"};
  other.match.tables = {"t"};  // never a candidate for alice: does not make her dependent
  config::Route alice = target_route("new");
  alice.match.users = {"alice"};
  alice.shadow_sample_rate = 0.1;
  config::Route after = target_route("old");
  after.match.tables = {"t"};  // unreachable behind alice's rule
  const auto set = RuleSet::compile(make_config({other, alice, after}));
  const SessionInfo a = session("alice");
  const RuleSet::SessionRoutes routes = set->for_session(a);
  EXPECT_FALSE(routes.depends_on_statement());
  EXPECT_TRUE(routes.routes_anything());
  EXPECT_EQ(routes.fixed().rule, 1);
  EXPECT_EQ(routes.fixed().target, RouteTarget::kNew);
  ASSERT_TRUE(routes.fixed().shadow_sample_rate);
  EXPECT_EQ(*routes.fixed().shadow_sample_rate, 0.1);
  StatementInfo st("SELECT * FROM t /* whatever='1' */");
  const RouteDecision d = routes.decide(st);
  EXPECT_EQ(d.rule, 1);
  EXPECT_EQ(d.target, RouteTarget::kNew);

  // Carol matches none of the session conditions but the last rule's tables.
  const SessionInfo c = session("carol");
  const RuleSet::SessionRoutes carol = set->for_session(c);
  EXPECT_TRUE(carol.depends_on_statement());
  EXPECT_TRUE(carol.routes_anything());
}

TEST(RouteSession, StatementConditionsMakeItDependent) {
  config::Route tables = target_route("new");
  tables.match.tables = {"t"};
  config::Route fingerprints = target_route("new");
  fingerprints.match.fingerprints = {"0123456789abcdef"};
  config::Route tags = target_route("new");
  tags.match.tags = {{"tenant", {"1"}}};
  config::Route tag_key = percent_route(50, "tag:tenant");
  const SessionInfo s = session();
  for (const config::Route& r : {tables, fingerprints, tags, tag_key}) {
    const auto set = RuleSet::compile(make_config({r, target_route("old")}));
    EXPECT_TRUE(set->for_session(s).depends_on_statement());
    // Behind a rule that always matches, it is never reached.
    const auto shadowed = RuleSet::compile(make_config({target_route("primary"), r}));
    const RuleSet::SessionRoutes routes = shadowed->for_session(s);
    EXPECT_FALSE(routes.depends_on_statement());
    EXPECT_FALSE(routes.routes_anything());
    EXPECT_EQ(routes.fixed().rule, 0);
  }
}

TEST(RouteSession, RoutesAnything) {
  const SessionInfo s = session();
  auto routes_anything = [&](std::vector<config::Route> rules) {
    return RuleSet::compile(make_config(std::move(rules)))->for_session(s).routes_anything();
  };
  EXPECT_TRUE(routes_anything({target_route("new")}));
  EXPECT_TRUE(routes_anything({target_route("old")}));
  EXPECT_FALSE(routes_anything({target_route("primary")}));
  EXPECT_FALSE(routes_anything({percent_route(0)}));
  EXPECT_TRUE(routes_anything({percent_route(100)}));
  EXPECT_TRUE(routes_anything({percent_route(0.01, "tag:tenant")}));
  EXPECT_FALSE(routes_anything({percent_route(0, "tag:tenant")}));
  config::Route tables = target_route("new");
  tables.match.tables = {"t"};
  EXPECT_TRUE(routes_anything({tables, target_route("primary")}));
  config::Route bob = target_route("new");
  bob.match.users = {"bob"};
  EXPECT_FALSE(routes_anything({bob, target_route("primary")}));

  // A session-keyed percentage is decided per session: a session it leaves on the primary
  // routes nothing, and its decision is fixed.
  const auto half = RuleSet::compile(make_config({percent_route(50)}));
  int fixed_new = 0;
  for (uint64_t k = 0; k < 200; ++k) {
    const SessionInfo sk = session("app", "db", "psql", "10.1.2.3", k);
    const RuleSet::SessionRoutes r = half->for_session(sk);
    EXPECT_FALSE(r.depends_on_statement());
    EXPECT_EQ(r.routes_anything(), r.fixed().target == RouteTarget::kNew);
    EXPECT_EQ(r.fixed().rule, 0);
    fixed_new += r.fixed().target == RouteTarget::kNew;
  }
  EXPECT_GT(fixed_new, 50);
  EXPECT_LT(fixed_new, 150);
}

TEST(RouteSession, DecideMatchesFixedForEveryStatement) {
  config::Route canary = percent_route(40, "user");
  const auto set = RuleSet::compile(make_config({canary}));
  for (int u = 0; u < 50; ++u) {
    const SessionInfo s = session("user" + std::to_string(u));
    const RuleSet::SessionRoutes routes = set->for_session(s);
    ASSERT_FALSE(routes.depends_on_statement());
    for (std::string_view sql : {"SELECT 1", "garbage", "SELECT 1 /* tenant='1' */"}) {
      StatementInfo st(sql);
      const RouteDecision d = routes.decide(st);
      EXPECT_EQ(d.target, routes.fixed().target);
      EXPECT_EQ(d.rule, routes.fixed().rule);
    }
  }
}

TEST(RouteSession, StatementInfoIsLazyAndStable) {
  StatementInfo st("SELECT * FROM a JOIN b ON true /* tenant='1' */");
  EXPECT_EQ(st.sql(), "SELECT * FROM a JOIN b ON true /* tenant='1' */");
  const auto* tags = &st.tags();
  EXPECT_EQ(*tags, (Tags{{"tenant", "1"}}));
  EXPECT_EQ(&st.tags(), tags);
  EXPECT_EQ(st.tables(), (Tables{"a", "b"}));
  EXPECT_EQ(st.fingerprint().size(), 16u);
  EXPECT_EQ(st.fingerprint(), statement_fingerprint(st.sql()));
}

TEST(RouteTarget, RoutesToSecondary) {
  EXPECT_FALSE(routes_to_secondary(RouteTarget::kPrimary, true));
  EXPECT_FALSE(routes_to_secondary(RouteTarget::kPrimary, false));
  EXPECT_TRUE(routes_to_secondary(RouteTarget::kNew, true));
  EXPECT_FALSE(routes_to_secondary(RouteTarget::kNew, false));
  EXPECT_FALSE(routes_to_secondary(RouteTarget::kOld, true));
  EXPECT_TRUE(routes_to_secondary(RouteTarget::kOld, false));
}

}  // namespace
}  // namespace pgtandem::policy
