#include "kernel/fingerprint.h"

#include <atomic>
#include <cstring>

#include "kernel/thread_pool.h"

namespace batchnorm {
namespace {

constexpr uint64_t kIndexStep = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t kMultiplier = 0xbf58476d1ce4e5b9ULL;

// A word's term: the word with its index folded in, multiplied and folded again (not linear in the
// word, so a value moved to another index changes the sum). One multiply a word keeps the pass near
// memory speed.
inline uint64_t term(uint64_t word, uint64_t index) {
  const uint64_t z = (word ^ (index * kIndexStep)) * kMultiplier;
  return z ^ (z >> 29);
}

inline uint64_t wordAt(const unsigned char* at) {
  uint64_t value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

// The finalizer of SplitMix64: every bit of the sum reaches every bit of the result.
inline uint64_t finish(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Context {
  const unsigned char* data;
  std::atomic<uint64_t> sum{0};
};

}  // namespace

uint64_t fingerprint(const void* data, size_t bytes) {
  // The terms are summed modulo 2^64, so any split over the kernel threads gives the same bits.
  Context context;
  context.data = static_cast<const unsigned char*>(data);
  const auto words = static_cast<int64_t>(bytes / 8);
  parallelFor(
      words, 1 << 16,
      [](void* raw, int64_t begin, int64_t end) {
        auto* ctx = static_cast<Context*>(raw);
        uint64_t a = 0, b = 0;
        int64_t i = begin;
        for (; i + 2 <= end; i += 2) {
          a += term(wordAt(ctx->data + 8 * i), static_cast<uint64_t>(i));
          b += term(wordAt(ctx->data + 8 * (i + 1)), static_cast<uint64_t>(i + 1));
        }
        if (i < end) a += term(wordAt(ctx->data + 8 * i), static_cast<uint64_t>(i));
        ctx->sum.fetch_add(a + b, std::memory_order_relaxed);
      },
      &context);
  uint64_t tail = 0;
  std::memcpy(&tail, context.data + 8 * static_cast<size_t>(words), bytes % 8);
  return finish(context.sum.load() + term(tail, static_cast<uint64_t>(words)) + bytes);
}

}  // namespace batchnorm
