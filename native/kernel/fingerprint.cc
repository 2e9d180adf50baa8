#include "kernel/fingerprint.h"

#include <cstring>

namespace batchnorm {
namespace {

// A bijective mix of one word (the finalizer of SplitMix64): every input bit reaches every output bit.
inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t word(const unsigned char* at) {
  uint64_t value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

}  // namespace

uint64_t fingerprint(const void* data, size_t bytes) {
  // Each word mixed with its index, then summed in four independent chains (instruction-level
  // parallelism; the sum does not depend on the order): a value moved to another index changes the hash.
  constexpr uint64_t kIndexStep = 0x9e3779b97f4a7c15ULL;
  const auto* at = static_cast<const unsigned char*>(data);
  const size_t words = bytes / 8;
  uint64_t sums[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= words; i += 4) {
    for (size_t lane = 0; lane < 4; ++lane) sums[lane] += mix(word(at + 8 * (i + lane)) ^ ((i + lane) * kIndexStep));
  }
  for (; i < words; ++i) sums[0] += mix(word(at + 8 * i) ^ (i * kIndexStep));
  uint64_t tail = 0;
  std::memcpy(&tail, at + 8 * words, bytes % 8);
  return mix(sums[0] + sums[1] + sums[2] + sums[3] + mix(tail ^ (words * kIndexStep)) + bytes);
}

}  // namespace batchnorm
