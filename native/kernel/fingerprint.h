// A content fingerprint of a block of memory (compiled once, without ISA flags): what a module takes of
// its input at forward and checks again before backward reads it (lib/ checkInputUnchanged).
#pragma once

#include <cstddef>
#include <cstdint>

namespace batchnorm {

// A 64-bit hash of `bytes` bytes at `data`: equal contents give equal hashes; any change of a value or
// of its position changes it but with probability 2^-64. Not cryptographic (the threat is a mistake,
// not an adversary).
uint64_t fingerprint(const void* data, size_t bytes);

}  // namespace batchnorm
