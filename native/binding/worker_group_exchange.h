// The exchange of SyncBatchNorm's steps by blocks (kernel/split_phases.h) over a worker group's shared
// memory, laid out by lib/worker-group.ts: one round of the group's exchange in which each rank
// publishes its partials block by block and spins until every peer has published the same block. Only
// ranks that have all arrived at the same step enter it (an asynchronous exchange comes first), so the
// waits are the ranks' imbalance within a block, not a late peer; the group's broken word (a peer's
// worker exited, or another rank's time-out) and this rank's own time-out end them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernel/split_phases.h"

namespace batchnorm::binding {

// The group's shared memory as one round of a step by blocks sees it.
struct WorkerGroupMemory {
  int32_t* control = nullptr;  // control[0]: the broken word, 0 while every peer is alive
  size_t progressWord = 0;     // control[progressWord + r]: blocks rank r has published so far (wraps)
  double* slots = nullptr;     // this round's buffer: rank r's partials at slots + r * slotLength
  size_t slotLength = 0;       // at least 2 * channels: channel c's first partial at c, its second at channels + c
  int rank = 0;
  int size = 1;
  int64_t channels = 0;
  double timeoutMs = 0;  // infinite: wait as long as the peers take
};

enum class ExchangeOutcome { Done = 0, GroupBroken = 1, TimedOut = 2 };

class WorkerGroupExchange final : public BlockExchange {
 public:
  explicit WorkerGroupExchange(const WorkerGroupMemory& memory);
  int ranks() const override { return memory_.size; }
  void publish(ChannelRange block, const double* first, const double* second) override;
  bool waitForBlock() override;
  const double* first(int rank) const override { return slot(rank); }
  const double* second(int rank) const override { return slot(rank) + memory_.channels; }
  ExchangeOutcome outcome() const { return outcome_; }

 private:
  double* slot(int rank) const { return memory_.slots + static_cast<size_t>(rank) * memory_.slotLength; }

  WorkerGroupMemory memory_;
  int32_t published_;  // this rank's progress word, as last stored
  int32_t awaited_;    // the progress every rank had reached at the last block waited for
  ExchangeOutcome outcome_ = ExchangeOutcome::Done;
};

}  // namespace batchnorm::binding
