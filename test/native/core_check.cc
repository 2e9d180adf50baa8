// A native test driver of the C++ core, for platforms where no Node.js can run here (the musl prebuilds,
// built with zig, run natively and under qemu-aarch64): the dispatched kernels against the scalar
// oracle on geometries that take every traversal, and bitwise identity across thread counts.
//   core_check            exits 0 when every comparison holds; prints the kernel path it ran
// BATCHNORM_CPU_CAPABILITY=default|avx2|avx512 forces a lower path, as for the addon.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernel/batch_norm.h"
#include "kernel/dispatch.h"
#include "kernel/thread_pool.h"

namespace {

using batchnorm::Geometry;

int failures = 0;
int comparisons = 0;

struct Random {
  uint32_t state;
  double next() {
    state = state * 1664525u + 1013904223u;
    return state / 2147483648.0 - 1;  // [-1, 1)
  }
};

template <typename T>
std::vector<T> randomValues(size_t length, uint32_t seed, double scale, double offset) {
  Random random{seed};
  std::vector<T> values(length);
  for (T& value : values) value = static_cast<T>(random.next() * scale + offset);
  return values;
}

// Within the accuracy the parity suite asserts: float32 1e-5 and float64 1e-10 of the values' scale.
template <typename T>
void expectClose(const char* what, const Geometry& g, const std::vector<T>& actual, const std::vector<T>& expected) {
  const double tolerance = sizeof(T) == 4 ? 1e-5 : 1e-10;
  double scale = 1;
  for (T value : expected) scale = std::fmax(scale, std::fabs(static_cast<double>(value)));
  for (size_t i = 0; i < actual.size(); ++i) {
    ++comparisons;
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (!(std::fabs(a - e) <= tolerance * scale)) {
      std::printf("FAIL %s (%lld,%lld,%lld) float%d [%zu]: %.9g, oracle %.9g\n", what, (long long)g.batch,
                  (long long)g.channels, (long long)g.spatial, int(sizeof(T) * 8), i, a, e);
      ++failures;
      return;
    }
  }
}

template <typename T>
void expectIdentical(const char* what, const Geometry& g, int threads, const std::vector<T>& a, const std::vector<T>& b) {
  ++comparisons;
  if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) != 0) {
    std::printf("FAIL %s (%lld,%lld,%lld) float%d: %d threads differ from 1 thread\n", what, (long long)g.batch,
                (long long)g.channels, (long long)g.spatial, int(sizeof(T) * 8), threads);
    ++failures;
  }
}

// Every output of one training forward, one eval forward and one backward.
template <typename T>
struct Outputs {
  std::vector<T> output, saveMean, saveInvstd, runningMean, runningVar, evalOutput, gradInput, gradWeight, gradBias;
};

template <typename T>
Outputs<T> run(const Geometry& g, bool useReference, uint32_t seed) {
  const size_t n = static_cast<size_t>(g.elements()), c = static_cast<size_t>(g.channels);
  // An offset mean (|mean| >> std) in some channels is where float32 loses digits first.
  const std::vector<T> input = randomValues<T>(n, seed, 2, seed % 2 ? 100 : 0.5);
  const std::vector<T> gradOutput = randomValues<T>(n, seed + 1, 1, 0.1);
  const std::vector<T> weight = randomValues<T>(c, seed + 2, 0.5, 1), bias = randomValues<T>(c, seed + 3, 1, 0);
  Outputs<T> out;
  out.output.assign(n, 0);
  out.evalOutput.assign(n, 0);
  out.gradInput.assign(n, 0);
  out.saveMean.assign(c, 0);
  out.saveInvstd.assign(c, 0);
  out.gradWeight.assign(c, 0);
  out.gradBias.assign(c, 0);
  out.runningMean.assign(c, 0);
  out.runningVar.assign(c, 1);

  batchnorm::ForwardArgs<T> forward;
  forward.input = input.data();
  forward.output = out.output.data();
  forward.weight = weight.data();
  forward.bias = bias.data();
  forward.runningMean = out.runningMean.data();
  forward.runningVar = out.runningVar.data();
  forward.saveMean = out.saveMean.data();
  forward.saveInvstd = out.saveInvstd.data();
  forward.training = true;
  forward.useReference = useReference;
  batchnorm::batchNormForward(g, forward);

  forward.training = false;
  forward.output = out.evalOutput.data();
  batchnorm::batchNormForward(g, forward);

  batchnorm::BackwardArgs<T> backward;
  backward.gradOutput = gradOutput.data();
  backward.input = input.data();
  backward.weight = weight.data();
  backward.saveMean = out.saveMean.data();
  backward.saveInvstd = out.saveInvstd.data();
  backward.gradInput = out.gradInput.data();
  backward.gradWeight = out.gradWeight.data();
  backward.gradBias = out.gradBias.data();
  backward.training = true;
  backward.useReference = useReference;
  batchnorm::batchNormBackward(g, backward);
  return out;
}

template <typename T>
void check(const Geometry& g, uint32_t seed) {
  const Outputs<T> oracle = run<T>(g, true, seed);
  const Outputs<T> kernels = run<T>(g, false, seed);
  expectClose("output", g, kernels.output, oracle.output);
  expectClose("saveMean", g, kernels.saveMean, oracle.saveMean);
  expectClose("saveInvstd", g, kernels.saveInvstd, oracle.saveInvstd);
  expectClose("runningMean", g, kernels.runningMean, oracle.runningMean);
  expectClose("runningVar", g, kernels.runningVar, oracle.runningVar);
  expectClose("eval output", g, kernels.evalOutput, oracle.evalOutput);
  expectClose("gradInput", g, kernels.gradInput, oracle.gradInput);
  expectClose("gradWeight", g, kernels.gradWeight, oracle.gradWeight);
  expectClose("gradBias", g, kernels.gradBias, oracle.gradBias);
}

template <typename T>
void checkThreads(batchnorm::ThreadPool* pool, const Geometry& g, uint32_t seed) {
  const Outputs<T> one = [&] {
    const batchnorm::ScopedPool scope(pool, 1);
    return run<T>(g, false, seed);
  }();
  for (int threads : {2, 3, 4}) {
    const batchnorm::ScopedPool scope(pool, threads);
    const Outputs<T> many = run<T>(g, false, seed);
    expectIdentical("output", g, threads, many.output, one.output);
    expectIdentical("saveMean", g, threads, many.saveMean, one.saveMean);
    expectIdentical("gradInput", g, threads, many.gradInput, one.gradInput);
    expectIdentical("gradWeight", g, threads, many.gradWeight, one.gradWeight);
  }
}

}  // namespace

int main() {
  // Planar rows (spatial >= 64), interleaved blocks of every width (spatial 1 to 49, channels-last
  // like), tails of every vector width, tensors large enough to tile, split and stream.
  const Geometry geometries[] = {
      {2, 4, 1},    {3, 5, 7},     {8, 32, 49},  {4, 16, 64},  {2, 3, 100},    {128, 64, 1},  {5, 17, 9},
      {33, 130, 1}, {7, 9, 257},   {64, 256, 1}, {16, 8, 196}, {4096, 40, 1},  {3, 1, 31},    {1, 3, 17},
      {256, 96, 4}, {2, 300, 15},  {9, 1030, 1}, {6, 2, 4097}, {512, 128, 3},  {48, 64, 196},
  };
  int index = 0;
  for (const Geometry& g : geometries) {
    check<float>(g, static_cast<uint32_t>(++index));
    check<double>(g, static_cast<uint32_t>(++index));
  }
  batchnorm::ThreadPool* pool = batchnorm::acquirePool();
  for (const Geometry& g : geometries) {
    checkThreads<float>(pool, g, static_cast<uint32_t>(++index));
    checkThreads<double>(pool, g, static_cast<uint32_t>(++index));
  }
  batchnorm::releasePool(pool);
  std::printf("core_check (%s kernels): %d comparisons, %d failures\n", batchnorm::cpuCapability(), comparisons,
              failures);
  return failures == 0 ? 0 : 1;
}
