// oneDNN's batch normalization timed on the bench's rows, for bench/onednn.mjs (not part of the package;
// built only there, against a system oneDNN 2.x: Debian's libdnnl-dev). One case per line on stdin,
// "N C H W format op budgetMs" (format nchw or nhwc; op eval, train or backward); one line out per case,
// the median milliseconds of a call. Threads: OMP_NUM_THREADS (Debian's oneDNN runs on OpenMP).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;

// The bench's inputs (bench/timing.mjs randomArray): a linear congruential generator in [-1, 1).
void fillRandom(memory& m, uint32_t seed, float add) {
  float* data = static_cast<float*>(m.get_data_handle());
  const size_t length = m.get_desc().get_size() / sizeof(float);
  uint32_t state = seed;
  for (size_t i = 0; i < length; ++i) {
    state = state * 1664525u + 1013904223u;
    data[i] = static_cast<float>(state / 2147483648.0 - 1.0) + add;
  }
}

template <typename Call>
double medianMs(Call&& call, double budgetMs) {
  using Clock = std::chrono::steady_clock;
  const auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const Clock::time_point warm = Clock::now();
  do call(); while (ms(Clock::now() - warm) < std::min(100.0, budgetMs / 4));
  std::vector<double> samples;
  const Clock::time_point start = Clock::now();
  while (samples.size() < 5 || (ms(Clock::now() - start) < budgetMs && samples.size() < 2000)) {
    const Clock::time_point t = Clock::now();
    call();
    samples.push_back(ms(Clock::now() - t));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

double timeCase(const dnnl::engine& engine, dnnl::stream& stream, memory::dims dims, bool nhwc, const std::string& op,
                double budgetMs) {
  using namespace dnnl;
  const memory::desc data(dims, memory::data_type::f32, nhwc ? memory::format_tag::nhwc : memory::format_tag::nchw);
  const memory::desc channel({dims[1]}, memory::data_type::f32, memory::format_tag::a);
  memory src(data, engine), dst(data, engine), diffDst(data, engine), diffSrc(data, engine);
  memory mean(channel, engine), variance(channel, engine), scale(channel, engine), shift(channel, engine);
  memory diffScale(channel, engine), diffShift(channel, engine);
  fillRandom(src, 1, 0);
  fillRandom(diffDst, 2, 0);
  fillRandom(scale, 3, 1.5f);
  fillRandom(shift, 4, 0);
  const float eps = 1e-5f;
  const normalization_flags affine = normalization_flags::use_scale | normalization_flags::use_shift;
  const batch_normalization_forward::primitive_desc training(
      batch_normalization_forward::desc(prop_kind::forward_training, data, eps, affine), engine);
  std::unordered_map<int, memory> trainingArgs{{DNNL_ARG_SRC, src},         {DNNL_ARG_DST, dst},
                                               {DNNL_ARG_MEAN, mean},       {DNNL_ARG_VARIANCE, variance},
                                               {DNNL_ARG_SCALE, scale},     {DNNL_ARG_SHIFT, shift}};
  batch_normalization_forward trainingForward(training);
  trainingForward.execute(stream, trainingArgs);
  stream.wait();
  if (op == "train") {
    return medianMs([&] { trainingForward.execute(stream, trainingArgs); stream.wait(); }, budgetMs);
  }
  if (op == "eval") {
    const batch_normalization_forward::primitive_desc inference(
        batch_normalization_forward::desc(prop_kind::forward_inference, data, eps,
                                          affine | normalization_flags::use_global_stats),
        engine);
    batch_normalization_forward evalForward(inference);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},     {DNNL_ARG_DST, dst},     {DNNL_ARG_MEAN, mean},
                                         {DNNL_ARG_VARIANCE, variance}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}};
    return medianMs([&] { evalForward.execute(stream, args); stream.wait(); }, budgetMs);
  }
  // oneDNN 2.6's backward with use_shift also takes the shift, although dx does not depend on it.
  const batch_normalization_backward::primitive_desc gradients(
      batch_normalization_backward::desc(prop_kind::backward, data, data, eps, affine), engine, training);
  batch_normalization_backward backward(gradients);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},           {DNNL_ARG_MEAN, mean},
                                       {DNNL_ARG_VARIANCE, variance}, {DNNL_ARG_DIFF_DST, diffDst},
                                       {DNNL_ARG_SCALE, scale},       {DNNL_ARG_SHIFT, shift},
                                       {DNNL_ARG_DIFF_SRC, diffSrc},
                                       {DNNL_ARG_DIFF_SCALE, diffScale}, {DNNL_ARG_DIFF_SHIFT, diffShift}};
  return medianMs([&] { backward.execute(stream, args); stream.wait(); }, budgetMs);
}

}  // namespace

int main() {
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream fields(line);
    memory::dim n, c, h, w;
    std::string format, op;
    double budgetMs;
    if (!(fields >> n >> c >> h >> w >> format >> op >> budgetMs)) continue;
    std::printf("%.6f\n", timeCase(engine, stream, {n, c, h, w}, format == "nhwc", op, budgetMs));
    std::fflush(stdout);
  }
  return 0;
}
