// Found by fuzz_config (tests/fuzz): toml++ 3.3.0's is_non_ascii_horizontal_whitespace() reaches
// TOML_UNREACHABLE (__builtin_unreachable) for U+FB26..U+FEFE where the parser looks for
// whitespace (before a key, after a value, after a line-ending backslash in a multi-line string):
// undefined behaviour in the header. The shared library pgtandem links answers with a parse error;
// these tests pin that a config holding such a character where TOML does not allow it is an error
// with a place, never a crash (a SIGHUP reload reads whatever the file holds), and that the same
// characters where TOML allows them (strings, comments) load.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_support.h"

namespace pgtandem::config {
namespace {

std::string utf8(char32_t c) {
  std::string s;
  s += static_cast<char>(0xE0 | (c >> 12));
  s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
  s += static_cast<char>(0x80 | (c & 0x3F));
  return s;
}

TEST(TomlUnicode, FuzzReproducerIsAnError) {
  const LoadResult r = load_string("\xef\xb3\xbfrg[tc%ts   #  ", "fuzz.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 1u);
}

TEST(TomlUnicode, PresentationFormsWhereWhitespaceMayBeAreErrors) {
  for (char32_t c = 0xFB26; c <= 0xFEFE; c += 7) {
    const std::string ch = utf8(c);
    for (const std::string& text :
         {ch + "workers = 1\n", "workers = 1" + ch + "\n", "workers =" + ch + "1\n",
          "[listen]" + ch + "\n", "x = \"\"\"a\\" + ch + "\nb\"\"\"\n"}) {
      const LoadResult r = load_string(std::string(testing::kTwoTargets) + text, "u.toml");
      EXPECT_FALSE(r.ok()) << "U+" << std::hex << static_cast<uint32_t>(c);
    }
  }
}

TEST(TomlUnicode, PresentationFormsInCommentsAndStringsLoad) {
  for (char32_t c : {char32_t{0xFB26}, char32_t{0xFCFF}, char32_t{0xFE0F}, char32_t{0xFEFE}}) {
    const std::string text = std::string(testing::kTwoTargets) + "# " + utf8(c) +
                             "\n[admin]\n# " + utf8(c) + " again\n";
    const LoadResult r = load_string(text, "u.toml");
    EXPECT_TRUE(r.ok()) << "U+" << std::hex << static_cast<uint32_t>(c) << ": "
                        << (r.errors.empty() ? "" : r.errors[0].to_string());
  }
}

}  // namespace
}  // namespace pgtandem::config
