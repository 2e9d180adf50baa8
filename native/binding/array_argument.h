// The typed-array arguments of a native call, as the async machinery (async_call.h) and the overlap
// check see them.
#pragma once

#include <napi.h>

#include <array>
#include <cstddef>

#include "binding/arguments.h"

namespace batchnorm::binding {

// A typed-array argument of a call: its view, its name in messages, whether the call writes it, its
// position among the JavaScript arguments, and whether the call writes every element without reading
// any (a staged copy of it needs no copy in).
struct ArrayArgument {
  FloatView* view;
  const char* name;
  bool written;
  size_t argument;
  bool overwritten;
};

// Arrays written by a call must not share memory with any other argument (lib/ reports this with a
// friendlier message); `output` may be exactly `input` (in place).
template <size_t N>
void requireNoHarmfulOverlap(Napi::Env env, const std::array<ArrayArgument, N>& arrays, const FloatView* inPlaceOutput,
                             const FloatView* inPlaceInput) {
  for (size_t i = 0; i < N; ++i) {
    for (size_t j = i + 1; j < N; ++j) {
      const ArrayArgument& a = arrays[i];
      const ArrayArgument& b = arrays[j];
      // Inline, and the named check (which builds the message) only for a pair that overlaps: backward
      // compares 45 pairs per call.
      if ((!a.written && !b.written) || !overlaps(*a.view, *b.view)) continue;
      const bool inPlacePair = (a.view == inPlaceOutput && b.view == inPlaceInput) ||
                               (a.view == inPlaceInput && b.view == inPlaceOutput);
      if (inPlacePair) {
        requireDisjointOrSame(env, *a.view, a.name, *b.view, b.name);
      } else {
        requireDisjoint(env, *a.view, a.name, *b.view, b.name);
      }
    }
  }
}

}  // namespace batchnorm::binding
