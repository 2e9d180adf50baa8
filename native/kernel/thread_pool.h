// A persistent pool of worker threads for the kernels (compiled once, without ISA flags).
//
// parallelFor takes a plain function pointer and context rather than std::function: a template
// instantiated inside an ISA-specific translation unit could otherwise become the copy the linker keeps
// for every caller. Work is split into contiguous ranges; callers make results independent of the split
// (each reduction runs whole inside one range, in a fixed order), so any thread count gives identical bits.
#pragma once

#include <cstdint>

namespace batchnorm {

using ParallelBody = void (*)(void* context, int64_t begin, int64_t end);

// Runs body over [0, count) in at most getNumThreads() contiguous ranges of at least `grain` items;
// the calling thread takes the first range. A call made while the pool is busy (another JS thread)
// runs serially on its own thread.
void parallelFor(int64_t count, int64_t grain, ParallelBody body, void* context);

// Threads used by parallelFor, including the calling thread (1 = no workers). Clamped to [1, 256].
void setNumThreads(int threads);
int getNumThreads();

}  // namespace batchnorm
