// libFuzzer target: statement_shape (policy/sql/statement_shape.h), the key of the classification
// cache. For any text: no crash, the fast walk gives what the bytewise one gives, a shape is never
// longer than its text, and, the claim the cache
// rests on, a text with its numbers replaced that keeps the shape is classified exactly as the
// text is. (A shape need not be its own shape: "1e3.5" is two numbers to the server, "0.0" one.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "policy/sql/classifier.h"
#include "policy/sql/statement_shape.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/support/sql_numbers.h"

using namespace pgtandem;
using test::with_numbers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // the parser's time, not the shape's, would bound the run
  const std::string_view sql(reinterpret_cast<const char*>(data), size);
  std::string shape;
  std::string bytewise;
  const bool shaped = policy::statement_shape(sql, true, &shape);
  // The fast walk and the bytewise one agree, shape and refusal.
  FUZZ_CHECK(shaped == policy::detail::statement_shape_bytewise(sql, true, &bytewise));
  if (!shaped) return 0;
  FUZZ_CHECK(shape == bytewise);
  FUZZ_CHECK(shape.size() <= sql.size());
  const policy::ClassifierOptions opts;
  const policy::Classification c = policy::classify(sql, opts);
  for (std::string_view number : {"7", "0.5", "1e3"}) {
    const std::string other = with_numbers(sql, number);
    std::string other_shape;
    if (other == sql || !policy::statement_shape(other, true, &other_shape)) continue;
    if (other_shape != shape) continue;
    FUZZ_CHECK(policy::classify(other, opts) == c);
  }
  return 0;
}
