// The bits of a double that a float keeps: sign, exponent and the top 23 of the 52 stored mantissa bits.
// Clearing the others truncates a double toward zero to float precision, which for values in float's
// normal range is the float nearest to it on the side of zero (exactly representable as a float).
#pragma once

#include <cstdint>

namespace batchnorm::vec {

constexpr uint64_t kFloatPrecisionBits = ~((uint64_t{1} << 29) - 1);

}  // namespace batchnorm::vec
