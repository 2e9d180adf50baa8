// A native test driver of the C++ core, for platforms where no Node.js can run here (the musl prebuilds,
// built with zig, run natively and under qemu-aarch64): the dispatched kernels against the scalar
// oracle on geometries that take every traversal, and bitwise identity across thread counts.
//   core_check            exits 0 when every comparison holds; prints the kernel path it ran
// BATCHNORM_CPU_CAPABILITY=default|avx2|avx512 forces a lower path, as for the addon.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "kernel/batch_norm.h"
#include "kernel/cache_sizes.h"
#include "kernel/dispatch.h"
#include "kernel/hook_check.h"
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

// ---------------------------------------------------------------------------------------------------
// The storage trait and the hooks (kernel/hook_check.h): every kernel-table entry called directly, on the
// plain float tables and on the check tables, over geometries that take every walk.

using batchnorm::BackwardChannels;
using batchnorm::ChannelAffine;
using batchnorm::ChannelRange;
using batchnorm::EvalChannels;
using batchnorm::ForwardChannels;
using batchnorm::GradientAffine;
using batchnorm::KernelTable;

// Every output of the table entries, as float arrays (a StoredFloat array is one).
struct TableOutputs {
  std::vector<float> output, saveMean, saveInvstd, runningMean, runningVar, evalOutput, gradInput, gradWeight,
      gradBias, evalGradInput, evalGradWeight, evalGradBias, splitOutput, splitGradInput;
  std::vector<double> splitSumDy, splitDotp;
  bool split = false;
};

template <typename T>
T* as(std::vector<float>& values) {
  return reinterpret_cast<T*>(values.data());
}
template <typename T>
const T* as(const std::vector<float>& values) {
  return reinterpret_cast<const T*>(values.data());
}

// `negatedSums`: the split grad_input's coefficients as a table whose mask negates dy finds them.
// `largeWeight`: channel 0's weight is 1e35, so its scale leaves the range the float passes take
// (float_passes.h inFloatRange) and the call or its first block takes the double walks.
template <typename T>
TableOutputs runTable(const KernelTable<T>& table, const Geometry& g, uint32_t seed, bool negatedSums,
                      bool largeWeight) {
  const size_t n = static_cast<size_t>(g.elements()), c = static_cast<size_t>(g.channels);
  const std::vector<float> input = randomValues<float>(n, seed, 2, seed % 2 ? 100 : 0.5);
  const std::vector<float> gradOutput = randomValues<float>(n, seed + 1, 1, 0.1);
  std::vector<float> weight = randomValues<float>(c, seed + 2, 0.5, 1);
  const std::vector<float> bias = randomValues<float>(c, seed + 3, 1, 0);
  if (largeWeight) weight[0] = 1e35f;
  TableOutputs out;
  for (std::vector<float>* v : {&out.output, &out.evalOutput, &out.gradInput, &out.evalGradInput, &out.splitOutput,
                                &out.splitGradInput}) {
    v->assign(n, 0);
  }
  for (std::vector<float>* v : {&out.saveMean, &out.saveInvstd, &out.runningMean, &out.gradWeight, &out.gradBias,
                                &out.evalGradWeight, &out.evalGradBias}) {
    v->assign(c, 0);
  }
  out.runningVar.assign(c, 1);
  const double count = static_cast<double>(g.perChannel());

  ForwardChannels<T> forward;
  forward.weight = as<T>(weight);
  forward.bias = as<T>(bias);
  forward.runningMean = as<T>(out.runningMean);
  forward.runningVar = as<T>(out.runningVar);
  forward.saveMean = as<T>(out.saveMean);
  forward.saveInvstd = as<T>(out.saveInvstd);
  forward.count = count;
  table.trainingForward(g, as<T>(input), as<T>(out.output), forward);

  EvalChannels<T> eval;
  eval.runningMean = as<T>(out.runningMean);
  eval.runningVar = as<T>(out.runningVar);
  eval.weight = as<T>(weight);
  eval.bias = as<T>(bias);
  eval.eps = 1e-5;
  table.evalForward(g, as<T>(input), as<T>(out.evalOutput), eval);

  std::vector<double> center(c), invstd(c), runningCenter(c), runningInvstd(c);
  for (size_t k = 0; k < c; ++k) {
    center[k] = out.saveMean[k];
    invstd[k] = out.saveInvstd[k];
    runningCenter[k] = out.runningMean[k];
    runningInvstd[k] = 1 / std::sqrt(static_cast<double>(out.runningVar[k]) + 1e-5);
  }
  BackwardChannels<T> backward;
  backward.center = center.data();
  backward.invstd = invstd.data();
  backward.weight = as<T>(weight);
  backward.gradWeight = as<T>(out.gradWeight);
  backward.gradBias = as<T>(out.gradBias);
  backward.count = count;
  table.backward(g, as<T>(input), as<T>(gradOutput), as<T>(out.gradInput), backward);
  // Evaluation's backward: dx = dy * scale, a normalization of dy.
  backward.center = runningCenter.data();
  backward.invstd = runningInvstd.data();
  backward.gradWeight = as<T>(out.evalGradWeight);
  backward.gradBias = as<T>(out.evalGradBias);
  backward.readsInput = false;
  table.backward(g, as<T>(input), as<T>(gradOutput), as<T>(out.evalGradInput), backward);

  std::vector<ChannelAffine> affines(c);
  for (size_t k = 0; k < c; ++k) affines[k] = {center[k], invstd[k] * weight[k], bias[k]};
  table.splitAffine(g, ChannelRange::all(g), as<T>(input), as<T>(out.splitOutput), affines.data());
  out.splitSumDy.assign(c, 0);
  out.splitDotp.assign(c, 0);
  out.split = table.splitGradientSums(g, ChannelRange::all(g), as<T>(input), as<T>(gradOutput), center.data(),
                                      out.splitSumDy.data(), out.splitDotp.data());
  if (out.split) {
    const double sign = negatedSums ? -1 : 1;
    std::vector<GradientAffine> coefficients(c);
    for (size_t k = 0; k < c; ++k) {
      // The sums of the plain table, as finishGradients turns them into coefficients.
      const double sumDy = sign * out.splitSumDy[k], dotp = sign * out.splitDotp[k];
      coefficients[k] = {center[k], sign * sumDy / count, sign * dotp * invstd[k] * invstd[k] / count,
                         invstd[k] * weight[k]};
    }
    table.splitGradInput(g, ChannelRange::all(g), as<T>(input), as<T>(gradOutput), as<T>(out.splitGradInput),
                         coefficients.data());
  }
  return out;
}

void expectSameBits(const char* what, const Geometry& g, const std::vector<float>& a, const std::vector<float>& b) {
  ++comparisons;
  if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) {
    std::printf("FAIL storage trait: %s (%lld,%lld,%lld) differs from float's\n", what, (long long)g.batch,
                (long long)g.channels, (long long)g.spatial);
    ++failures;
  }
}

template <typename V>
void expectNegated(const char* what, const Geometry& g, const std::vector<V>& hooked, const std::vector<V>& plain) {
  ++comparisons;
  for (size_t i = 0; i < plain.size(); ++i) {
    if (!(hooked[i] == -plain[i])) {
      std::printf("FAIL hooks: %s (%lld,%lld,%lld) [%zu]: %.9g, expected %.9g\n", what, (long long)g.batch,
                  (long long)g.channels, (long long)g.spatial, i, static_cast<double>(hooked[i]),
                  -static_cast<double>(plain[i]));
      ++failures;
      return;
    }
  }
}

void checkHooks(const Geometry& g, uint32_t seed, bool largeWeight, std::set<std::string>& walks) {
  const TableOutputs plain = runTable(batchnorm::kernels<float>(), g, seed, false, largeWeight);
  const TableOutputs stored = runTable(batchnorm::hookCheckKernels().storedFloat, g, seed, false, largeWeight);
  const TableOutputs hooked = runTable(batchnorm::hookCheckKernels().negated, g, seed, true, largeWeight);
  const std::vector<float> TableOutputs::*const arrays[] = {
      &TableOutputs::output,         &TableOutputs::saveMean,       &TableOutputs::saveInvstd,
      &TableOutputs::runningMean,    &TableOutputs::runningVar,     &TableOutputs::evalOutput,
      &TableOutputs::gradInput,      &TableOutputs::gradWeight,     &TableOutputs::gradBias,
      &TableOutputs::evalGradInput,  &TableOutputs::evalGradWeight, &TableOutputs::evalGradBias,
      &TableOutputs::splitOutput,    &TableOutputs::splitGradInput};
  for (const auto array : arrays) expectSameBits("an output", g, stored.*array, plain.*array);
  // The epilogue negates the forward's outputs only; the mask negates every gradient.
  expectSameBits("saveMean", g, hooked.saveMean, plain.saveMean);
  expectSameBits("saveInvstd", g, hooked.saveInvstd, plain.saveInvstd);
  expectSameBits("runningVar", g, hooked.runningVar, plain.runningVar);
  expectNegated("output", g, hooked.output, plain.output);
  expectNegated("eval output", g, hooked.evalOutput, plain.evalOutput);
  expectNegated("split output", g, hooked.splitOutput, plain.splitOutput);
  expectNegated("gradInput", g, hooked.gradInput, plain.gradInput);
  expectNegated("gradWeight", g, hooked.gradWeight, plain.gradWeight);
  expectNegated("gradBias", g, hooked.gradBias, plain.gradBias);
  expectNegated("eval gradInput", g, hooked.evalGradInput, plain.evalGradInput);
  expectNegated("eval gradWeight", g, hooked.evalGradWeight, plain.evalGradWeight);
  if (plain.split) {
    expectNegated("split sumDy", g, hooked.splitSumDy, plain.splitSumDy);
    expectNegated("split dotp", g, hooked.splitDotp, plain.splitDotp);
    expectNegated("split gradInput", g, hooked.splitGradInput, plain.splitGradInput);
  }
  for (batchnorm::Phase phase : {batchnorm::Phase::TrainingForward, batchnorm::Phase::EvalForward,
                                 batchnorm::Phase::Backward}) {
    batchnorm::WalkPlan plan;
    batchnorm::kernels<float>().describe(g, phase, 1, plan);
    for (const char* walk : {plan.reduction, plan.elementwise, plan.reductionLast, plan.elementwiseLast}) {
      if (*walk != '\0') walks.insert(walk);
    }
    if (plan.streamed) walks.insert("(streamed stores)");
  }
}

// The geometries of main() plus three outgrowing the last-level cache, for the walks of large tensors:
// planar rows streamed, channels-last streamed rows, and single rows (more than one channel block).
template <size_t kCount>
void checkAllHooks(const Geometry (&geometries)[kCount], uint32_t seed) {
  const int64_t llcFloats = batchnorm::cacheSizes().lastLevelBytes / 4;
  std::vector<Geometry> all(std::begin(geometries), std::end(geometries));
  all.push_back({llcFloats / 4 / (8 * 1024) + 1, 8, 1024});
  all.push_back({llcFloats / 4 / 64 + 1, 64, 1});
  all.push_back({llcFloats / 2 / 1040 + 1, 1040, 1});
  std::set<std::string> walks;
  for (const Geometry& g : all) {
    checkHooks(g, ++seed, false, walks);
    checkHooks(g, ++seed, true, walks);
  }
  const bool inFloats = walks.count("flat-joined") > 0;
  std::vector<std::string> expected = {"planar-rows", "column-groups", "accumulator-rows", "row-groups",
                                       "(streamed stores)"};
  if (inFloats) {
    for (const char* walk : {"flat-joined", "streamed-rows", "single-rows"}) expected.push_back(walk);
  }
  std::string covered;
  for (const std::string& walk : walks) covered += " " + walk;
  std::printf("hook check walks (%s arithmetic):%s\n", inFloats ? "float" : "double", covered.c_str());
  for (const std::string& walk : expected) {
    ++comparisons;
    if (walks.count(walk) == 0) {
      std::printf("FAIL hook check: no geometry took %s\n", walk.c_str());
      ++failures;
    }
  }
}

// SyncBatchNorm's steps by blocks run the split entries over a part of the channels: every channel's
// results must have the bits of the call over all channels (here blocks of 1 and of 3 channels).
template <typename V>
bool sameBits(const std::vector<V>& a, const std::vector<V>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0;
}

template <typename T>
void checkChannelRanges(const Geometry& g, uint32_t seed) {
  if (g.spatial < batchnorm::kBlockMinSpatial) return;
  const KernelTable<T>& table = batchnorm::kernels<T>();
  const size_t n = static_cast<size_t>(g.elements()), c = static_cast<size_t>(g.channels);
  const std::vector<T> input = randomValues<T>(n, seed, 2, 0.5), gradOutput = randomValues<T>(n, seed + 1, 1, 0.1);
  struct Results {
    std::vector<double> mean, varSum, sumDy, dotp;
    std::vector<T> output, gradInput;
  };
  // The coefficients from the statistics of all channels, so both runs take the same ones.
  std::vector<double> mean(c), varSum(c);
  table.splitStatistics(g, ChannelRange::all(g), input.data(), mean.data(), varSum.data());
  std::vector<ChannelAffine> affines(c);
  std::vector<GradientAffine> gradients(c);
  for (size_t k = 0; k < c; ++k) {
    const double invstd = 1 / std::sqrt(varSum[k] / static_cast<double>(g.perChannel()) + 1e-5);
    affines[k] = {mean[k], invstd * 1.5, 0.25};
    gradients[k] = {mean[k], 0.01, invstd * invstd * 0.02, invstd * 1.5};
  }
  auto run = [&](int64_t width) {
    Results r{std::vector<double>(c), std::vector<double>(c), std::vector<double>(c), std::vector<double>(c),
              std::vector<T>(n), std::vector<T>(n)};
    for (int64_t c0 = 0; c0 < g.channels; c0 += width) {
      const ChannelRange range{c0, std::min(g.channels, c0 + width)};
      table.splitStatistics(g, range, input.data(), r.mean.data(), r.varSum.data());
      table.splitAffine(g, range, input.data(), r.output.data(), affines.data() + c0);
      table.splitGradientSums(g, range, input.data(), gradOutput.data(), mean.data(), r.sumDy.data(), r.dotp.data());
      table.splitGradInput(g, range, input.data(), gradOutput.data(), r.gradInput.data(), gradients.data() + c0);
    }
    return r;
  };
  const Results whole = run(g.channels);
  for (int64_t width : {1, 3}) {
    const Results blocks = run(width);
    ++comparisons;
    if (!sameBits(blocks.mean, whole.mean) || !sameBits(blocks.varSum, whole.varSum) ||
        !sameBits(blocks.sumDy, whole.sumDy) || !sameBits(blocks.dotp, whole.dotp) ||
        !sameBits(blocks.output, whole.output) || !sameBits(blocks.gradInput, whole.gradInput)) {
      std::printf("FAIL channel ranges: (%lld,%lld,%lld) in blocks of %lld differ from all channels at once\n",
                  (long long)g.batch, (long long)g.channels, (long long)g.spatial, (long long)width);
      ++failures;
    }
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
  for (int threads : {1, 2}) {
    const batchnorm::ScopedPool scope(pool, threads);
    for (const Geometry& g : geometries) {
      checkChannelRanges<float>(g, static_cast<uint32_t>(++index));
      checkChannelRanges<double>(g, static_cast<uint32_t>(++index));
    }
  }
  // On one thread, and on two: the store type and the split of the work depend on the thread count.
  for (int threads : {1, 2}) {
    const batchnorm::ScopedPool scope(pool, threads);
    checkAllHooks(geometries, static_cast<uint32_t>(++index));
  }
  batchnorm::releasePool(pool);
  std::printf("core_check (%s kernels): %d comparisons, %d failures\n", batchnorm::cpuCapability(), comparisons,
              failures);
  return failures == 0 ? 0 : 1;
}
