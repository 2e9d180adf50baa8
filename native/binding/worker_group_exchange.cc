#include "binding/worker_group_exchange.h"

#include <atomic>
#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <emmintrin.h>  // _mm_pause: SSE2, in every x86-64 CPU
#endif

namespace batchnorm::binding {
namespace {

// The words are Int32Array elements that JavaScript's Atomics read and write; a lock-free
// std::atomic<int32_t> has the same size and representation, and sequentially consistent accesses on
// both sides order the plain stores of the sums before the word that publishes them.
static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t) && std::atomic<int32_t>::is_always_lock_free);

std::atomic<int32_t>& word(int32_t* control, size_t index) {
  return *reinterpret_cast<std::atomic<int32_t>*>(control + index);
}

void cpuRelax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Whether a progress word has reached `target`, across the wrap of a 32-bit count (peers are never more
// than a round apart).
bool reached(int32_t seen, int32_t target) {
  return static_cast<int32_t>(static_cast<uint32_t>(seen) - static_cast<uint32_t>(target)) >= 0;
}

// Spinning while the peers finish the same block (microseconds apart when each rank has a core) beats
// any sleep; past this the waiting rank yields its core, so more ranks than cores still progress.
constexpr auto kSpinFor = std::chrono::microseconds(200);
constexpr auto kYieldFor = std::chrono::milliseconds(2);
constexpr auto kSleep = std::chrono::microseconds(50);

}  // namespace

WorkerGroupExchange::WorkerGroupExchange(const WorkerGroupMemory& memory)
    : memory_(memory),
      published_(word(memory.control, memory.progressWord + static_cast<size_t>(memory.rank)).load()),
      awaited_(published_) {}

void WorkerGroupExchange::publish(ChannelRange block, const double* first, const double* second) {
  double* mine = slot(memory_.rank);
  for (int64_t c = block.begin; c < block.end; ++c) {
    mine[c] = first[c];
    mine[memory_.channels + c] = second[c];
  }
  published_ = static_cast<int32_t>(static_cast<uint32_t>(published_) + 1u);
  word(memory_.control, memory_.progressWord + static_cast<size_t>(memory_.rank)).store(published_);
}

bool WorkerGroupExchange::waitForBlock() {
  awaited_ = static_cast<int32_t>(static_cast<uint32_t>(awaited_) + 1u);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  std::atomic<int32_t>& broken = word(memory_.control, 0);
  for (int r = 0; r < memory_.size; ++r) {
    std::atomic<int32_t>& progress = word(memory_.control, memory_.progressWord + static_cast<size_t>(r));
    for (uint32_t spins = 0; !reached(progress.load(), awaited_); ++spins) {
      if ((spins & 255u) != 255u) {
        cpuRelax();
        continue;
      }
      // A block already published counts even if the group broke since (as the JavaScript exchange).
      if (broken.load() != 0) {
        outcome_ = ExchangeOutcome::GroupBroken;
        return false;
      }
      const auto waited = Clock::now() - start;
      if (waited >= std::chrono::duration<double, std::milli>(memory_.timeoutMs)) {
        int32_t whole = 0;
        broken.compare_exchange_strong(whole, -1);  // lib/worker-group.ts: -1 is a time-out
        outcome_ = ExchangeOutcome::TimedOut;
        return false;
      }
      if (waited >= kYieldFor) {
        std::this_thread::sleep_for(kSleep);
      } else if (waited >= kSpinFor) {
        std::this_thread::yield();
      }
    }
  }
  return true;
}

}  // namespace batchnorm::binding
