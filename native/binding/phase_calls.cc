// SyncBatchNorm's native calls as the binding prepares them (phase_calls.h): the split phases, each
// checked then run like calls.cc's kernel calls, and the steps by blocks over a worker group's shared
// memory, which run only on the calling thread.
#include "binding/phase_calls.h"

#include <cmath>

#include "kernel/split_phases.h"

namespace batchnorm::binding {
namespace {

// The tensor's dtype and geometry, and its element and channel counts.
struct Shape {
  DType dtype;
  Geometry geometry;
  size_t elements;
  size_t channels;
};

Shape requireShape(const Napi::CallbackInfo& info, size_t tensorIndex, const char* tensorName, size_t geometryIndex) {
  Shape shape{requireFloatDType(info[tensorIndex], tensorName), requireGeometry(info, geometryIndex), 0, 0};
  shape.elements = static_cast<size_t>(shape.geometry.elements());
  shape.channels = static_cast<size_t>(shape.geometry.channels);
  return shape;
}

FloatView requireChannelDoubles(const Napi::CallbackInfo& info, size_t index, const char* name, size_t channels) {
  return requireFloatArray(info[index], name, DType::Float64, channels);
}

}  // namespace

std::array<ArrayArgument, 3> ShardStatisticsCall::arrays() {
  using A = ShardStatisticsArgument;
  return {{{&input, "input", false, A::input, false}, {&mean, "mean", true, A::mean, true}, {&m2, "m2", true, A::m2, true}}};
}

void ShardStatisticsCall::run() {
  if (dtype == DType::Float32) {
    shardStatistics(geometry, input.as<float>(), mean.as<double>(), m2.as<double>());
  } else {
    shardStatistics(geometry, input.as<double>(), mean.as<double>(), m2.as<double>());
  }
}

ShardStatisticsCall parseShardStatistics(const Napi::CallbackInfo& info) {
  using A = ShardStatisticsArgument;
  ShardStatisticsCall call;
  const Shape shape = requireShape(info, A::input, "input", A::batch);
  call.dtype = shape.dtype;
  call.geometry = shape.geometry;
  call.input = requireFloatArray(info[A::input], "input", shape.dtype, shape.elements);
  call.mean = requireChannelDoubles(info, A::mean, "mean", shape.channels);
  call.m2 = requireChannelDoubles(info, A::m2, "m2", shape.channels);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

std::array<ArrayArgument, 6> NormalizeWithCall::arrays() {
  using A = NormalizeWithArgument;
  return {{{&input, "input", false, A::input, false},
           {&output, "output", true, A::output, true},
           {&mean, "mean", false, A::mean, false},
           {&invstd, "invstd", false, A::invstd, false},
           {&weight, "weight", false, A::weight, false},
           {&bias, "bias", false, A::bias, false}}};
}

void NormalizeWithCall::run() {
  if (dtype == DType::Float32) {
    normalizeWith(geometry, input.as<float>(), output.as<float>(), mean.as<double>(), invstd.as<double>(),
                  weight.as<float>(), bias.as<float>());
  } else {
    normalizeWith(geometry, input.as<double>(), output.as<double>(), mean.as<double>(), invstd.as<double>(),
                  weight.as<double>(), bias.as<double>());
  }
}

NormalizeWithCall parseNormalizeWith(const Napi::CallbackInfo& info) {
  using A = NormalizeWithArgument;
  NormalizeWithCall call;
  const Shape shape = requireShape(info, A::input, "input", A::batch);
  call.dtype = shape.dtype;
  call.geometry = shape.geometry;
  call.input = requireFloatArray(info[A::input], "input", shape.dtype, shape.elements);
  call.output = requireFloatArray(info[A::output], "output", shape.dtype, shape.elements);
  call.mean = requireChannelDoubles(info, A::mean, "mean", shape.channels);
  call.invstd = requireChannelDoubles(info, A::invstd, "invstd", shape.channels);
  call.weight = optionalFloatArray(info[A::weight], "weight", shape.dtype, shape.channels);
  call.bias = optionalFloatArray(info[A::bias], "bias", shape.dtype, shape.channels);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), &call.output, &call.input);
  return call;
}

std::array<ArrayArgument, 5> ShardGradientSumsCall::arrays() {
  using A = ShardGradientSumsArgument;
  return {{{&gradOutput, "gradOutput", false, A::gradOutput, false},
           {&input, "input", false, A::input, false},
           {&mean, "mean", false, A::mean, false},
           {&sumDy, "sumDy", true, A::sumDy, true},
           {&dotp, "dotp", true, A::dotp, true}}};
}

void ShardGradientSumsCall::run() {
  if (dtype == DType::Float32) {
    shardGradientSums(geometry, input.as<float>(), gradOutput.as<float>(), mean.as<double>(), sumDy.as<double>(),
                      dotp.as<double>());
  } else {
    shardGradientSums(geometry, input.as<double>(), gradOutput.as<double>(), mean.as<double>(), sumDy.as<double>(),
                      dotp.as<double>());
  }
}

ShardGradientSumsCall parseShardGradientSums(const Napi::CallbackInfo& info) {
  using A = ShardGradientSumsArgument;
  ShardGradientSumsCall call;
  const Shape shape = requireShape(info, A::input, "input", A::batch);
  call.dtype = shape.dtype;
  call.geometry = shape.geometry;
  call.gradOutput = requireFloatArray(info[A::gradOutput], "gradOutput", shape.dtype, shape.elements);
  call.input = requireFloatArray(info[A::input], "input", shape.dtype, shape.elements);
  call.mean = requireChannelDoubles(info, A::mean, "mean", shape.channels);
  call.sumDy = requireChannelDoubles(info, A::sumDy, "sumDy", shape.channels);
  call.dotp = requireChannelDoubles(info, A::dotp, "dotp", shape.channels);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

std::array<ArrayArgument, 8> GradInputWithCall::arrays() {
  using A = GradInputWithArgument;
  return {{{&gradOutput, "gradOutput", false, A::gradOutput, false},
           {&input, "input", false, A::input, false},
           {&gradInput, "gradInput", true, A::gradInput, true},
           {&mean, "mean", false, A::mean, false},
           {&invstd, "invstd", false, A::invstd, false},
           {&weight, "weight", false, A::weight, false},
           {&sumDy, "sumDy", false, A::sumDy, false},
           {&dotp, "dotp", false, A::dotp, false}}};
}

void GradInputWithCall::run() {
  if (dtype == DType::Float32) {
    gradInputWith(geometry, input.as<float>(), gradOutput.as<float>(), gradInput.as<float>(), mean.as<double>(),
                  invstd.as<double>(), weight.as<float>(), sumDy.as<double>(), dotp.as<double>(), total);
  } else {
    gradInputWith(geometry, input.as<double>(), gradOutput.as<double>(), gradInput.as<double>(), mean.as<double>(),
                  invstd.as<double>(), weight.as<double>(), sumDy.as<double>(), dotp.as<double>(), total);
  }
}

// One round of a worker group's memory (lib/worker-group.ts BlockRound) and the block size, at list A's
// positions (the steps by blocks share these arguments and their names).
template <typename A>
BlockRound parseBlockRound(const Napi::CallbackInfo& info, const Geometry& geometry) {
  const Napi::Env env = info.Env();
  BlockRound round;
  const double channelBytes = requireNumber(info[A::channelBytes], "channelBytes");
  if (!(channelBytes >= 0 && channelBytes <= 9007199254740991.0)) {
    throw Napi::RangeError::New(env, "channelBytes must be a non-negative safe integer");
  }
  round.blockChannels = channelsPerBlock(geometry, static_cast<int64_t>(channelBytes));

  WorkerGroupMemory& memory = round.memory;
  const double size = requireNumber(info[A::size], "size");
  const double rank = requireNumber(info[A::rank], "rank");
  const double slotLength = requireNumber(info[A::slotLength], "slotLength");
  const double progressWord = requireNumber(info[A::progressWord], "progressWord");
  if (!(size >= 1 && size <= 65536 && size == static_cast<int>(size))) {
    throw Napi::RangeError::New(env, "size must be an integer from 1 to 65536");
  }
  if (!(rank >= 0 && rank < size && rank == static_cast<int>(rank))) {
    throw Napi::RangeError::New(env, "rank must be an integer from 0 to size - 1");
  }
  if (!(slotLength >= 2.0 * static_cast<double>(geometry.channels) && slotLength <= 4294967295.0 &&
        slotLength == static_cast<double>(static_cast<uint32_t>(slotLength)))) {
    throw Napi::RangeError::New(env, "slotLength must be an integer of at least 2 * channels");
  }
  memory.size = static_cast<int>(size);
  memory.rank = static_cast<int>(rank);
  memory.slotLength = static_cast<size_t>(slotLength);
  memory.channels = geometry.channels;
  round.exchange = requireFloatArray(info[A::exchange], "exchange", DType::Float64, memory.slotLength * memory.size);
  memory.slots = round.exchange.as<double>();

  napi_typedarray_type type;
  size_t words = 0;
  void* control = nullptr;
  if (napi_get_typedarray_info(env, info[A::control], &type, &words, &control, nullptr, nullptr) != napi_ok ||
      type != napi_int32_array) {
    throw Napi::TypeError::New(env, "control must be an Int32Array");
  }
  if (!(progressWord >= 1 && progressWord + size <= static_cast<double>(words) &&
        progressWord == static_cast<double>(static_cast<uint32_t>(progressWord)))) {
    throw Napi::RangeError::New(env, "progressWord must leave size words of control after it");
  }
  memory.control = static_cast<int32_t*>(control);
  memory.progressWord = static_cast<size_t>(progressWord);
  memory.timeoutMs = requireNumber(info[A::timeoutMs], "timeoutMs");
  if (!(memory.timeoutMs > 0)) throw Napi::RangeError::New(env, "timeoutMs must be positive (Infinity: no time-out)");
  return round;
}

// gradInputWith's arguments at their positions in list A: gradInputWith's own, or gradInputByBlocks',
// which begins with them under the same names.
template <typename A>
GradInputWithCall parseGradInputArguments(const Napi::CallbackInfo& info) {
  GradInputWithCall call;
  const Shape shape = requireShape(info, A::input, "input", A::batch);
  call.dtype = shape.dtype;
  call.geometry = shape.geometry;
  call.gradOutput = requireFloatArray(info[A::gradOutput], "gradOutput", shape.dtype, shape.elements);
  call.input = requireFloatArray(info[A::input], "input", shape.dtype, shape.elements);
  call.gradInput = requireFloatArray(info[A::gradInput], "gradInput", shape.dtype, shape.elements);
  call.mean = requireChannelDoubles(info, A::mean, "mean", shape.channels);
  call.invstd = requireChannelDoubles(info, A::invstd, "invstd", shape.channels);
  call.weight = optionalFloatArray(info[A::weight], "weight", shape.dtype, shape.channels);
  call.sumDy = requireChannelDoubles(info, A::sumDy, "sumDy", shape.channels);
  call.dotp = requireChannelDoubles(info, A::dotp, "dotp", shape.channels);
  call.total = requireNumber(info[A::total], "total");
  if (!(call.total >= 1)) throw Napi::RangeError::New(info.Env(), "total must be at least 1");
  return call;
}

GradInputWithCall parseGradInputWith(const Napi::CallbackInfo& info) {
  GradInputWithCall call = parseGradInputArguments<GradInputWithArgument>(info);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

std::array<ArrayArgument, 9> GradInputByBlocksCall::arrays() {
  using A = GradInputByBlocksArgument;
  return {{{&pass.gradOutput, "gradOutput", false, A::gradOutput, false},
           {&pass.input, "input", false, A::input, false},
           {&pass.gradInput, "gradInput", true, A::gradInput, true},
           {&pass.mean, "mean", false, A::mean, false},
           {&pass.invstd, "invstd", false, A::invstd, false},
           {&pass.weight, "weight", false, A::weight, false},
           {&pass.sumDy, "sumDy", true, A::sumDy, true},
           {&pass.dotp, "dotp", true, A::dotp, true},
           {&round.exchange, "exchange", true, A::exchange, false}}};
}

ExchangeOutcome GradInputByBlocksCall::run() {
  WorkerGroupExchange exchangeOverGroup(round.memory);
  const GradInputWithCall& p = pass;
  if (p.dtype == DType::Float32) {
    gradInputByBlocks(p.geometry, round.blockChannels, p.input.as<float>(), p.gradOutput.as<float>(), p.gradInput.as<float>(),
                      p.mean.as<double>(), p.invstd.as<double>(), p.weight.as<float>(), p.total, p.sumDy.as<double>(),
                      p.dotp.as<double>(), exchangeOverGroup);
  } else {
    gradInputByBlocks(p.geometry, round.blockChannels, p.input.as<double>(), p.gradOutput.as<double>(),
                      p.gradInput.as<double>(), p.mean.as<double>(), p.invstd.as<double>(), p.weight.as<double>(),
                      p.total, p.sumDy.as<double>(), p.dotp.as<double>(), exchangeOverGroup);
  }
  return exchangeOverGroup.outcome();
}

GradInputByBlocksCall parseGradInputByBlocks(const Napi::CallbackInfo& info) {
  GradInputByBlocksCall call;
  call.pass = parseGradInputArguments<GradInputByBlocksArgument>(info);
  call.round = parseBlockRound<GradInputByBlocksArgument>(info, call.pass.geometry);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), nullptr, nullptr);
  return call;
}

std::array<ArrayArgument, 9> NormalizeByBlocksCall::arrays() {
  using A = NormalizeByBlocksArgument;
  return {{{&input, "input", false, A::input, false},
           {&output, "output", true, A::output, true},
           {&weight, "weight", false, A::weight, false},
           {&bias, "bias", false, A::bias, false},
           {&counts, "counts", false, A::counts, false},
           {&mean, "mean", true, A::mean, true},
           {&m2, "m2", true, A::m2, true},
           {&invstd, "invstd", true, A::invstd, true},
           {&round.exchange, "exchange", true, A::exchange, false}}};
}

ExchangeOutcome NormalizeByBlocksCall::run() {
  WorkerGroupExchange exchange(round.memory);
  if (dtype == DType::Float32) {
    normalizeByBlocks(geometry, round.blockChannels, input.as<float>(), output.as<float>(), weight.as<float>(),
                      bias.as<float>(), eps, counts.as<double>(), mean.as<double>(), m2.as<double>(),
                      invstd.as<double>(), exchange);
  } else {
    normalizeByBlocks(geometry, round.blockChannels, input.as<double>(), output.as<double>(), weight.as<double>(),
                      bias.as<double>(), eps, counts.as<double>(), mean.as<double>(), m2.as<double>(),
                      invstd.as<double>(), exchange);
  }
  return exchange.outcome();
}

NormalizeByBlocksCall parseNormalizeByBlocks(const Napi::CallbackInfo& info) {
  using A = NormalizeByBlocksArgument;
  NormalizeByBlocksCall call;
  const Shape shape = requireShape(info, A::input, "input", A::batch);
  call.dtype = shape.dtype;
  call.geometry = shape.geometry;
  call.input = requireFloatArray(info[A::input], "input", shape.dtype, shape.elements);
  call.output = requireFloatArray(info[A::output], "output", shape.dtype, shape.elements);
  call.weight = optionalFloatArray(info[A::weight], "weight", shape.dtype, shape.channels);
  call.bias = optionalFloatArray(info[A::bias], "bias", shape.dtype, shape.channels);
  call.eps = requireNumber(info[A::eps], "eps");
  if (!(call.eps >= 0)) throw Napi::RangeError::New(info.Env(), "eps must be non-negative");
  call.round = parseBlockRound<A>(info, call.geometry);
  call.counts = requireFloatArray(info[A::counts], "counts", DType::Float64, static_cast<size_t>(call.round.memory.size));
  double total = 0;
  for (size_t r = 0; r < call.counts.length; ++r) {
    const double count = call.counts.as<double>()[r];
    if (!(count >= 0 && count == std::floor(count))) throw Napi::RangeError::New(info.Env(), "counts must be non-negative integers");
    total += count;
  }
  if (!(total >= 1)) throw Napi::RangeError::New(info.Env(), "counts must add up to at least 1");
  call.mean = requireChannelDoubles(info, A::mean, "mean", shape.channels);
  call.m2 = requireChannelDoubles(info, A::m2, "m2", shape.channels);
  call.invstd = requireChannelDoubles(info, A::invstd, "invstd", shape.channels);
  requireNoHarmfulOverlap(info.Env(), call.arrays(), &call.output, &call.input);
  return call;
}

}  // namespace batchnorm::binding
