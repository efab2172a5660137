// Stable 64-bit hash primitives shared by routing decisions, shadow sampling and result digests.
// Stable means across platforms, runs and replicas (never std::hash): a routing decision made on
// one pgtandem replica must be the one every other replica makes.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgtandem::policy::hash {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ull;

// FNV-1a, continuing from `h` (kFnvOffset to start).
inline uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= kFnvPrime;
  }
  return h;
}
inline uint64_t fnv1a(std::string_view s) { return fnv1a(kFnvOffset, s); }

// MurmurHash3's finalizer (a bijection): FNV-1a alone mixes its last bytes poorly into the high
// bits, and keys such as session ids differ only in their last digits.
inline uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace pgtandem::policy::hash
