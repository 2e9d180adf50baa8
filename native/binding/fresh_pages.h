// Advice to the operating system for the memory of an output the package has just allocated and a
// kernel is about to write whole (lib/tensor.ts, newOutputLike).
#pragma once

#include <cstddef>

namespace batchnorm::binding {

// Asks Linux to back the 2 MB-aligned pages inside [data, data + bytes) with transparent huge pages when
// that memory is fresh (its first such page not yet resident), so that the kernel's first write faults
// once per 2 MB rather than once per 4 KB. Returns whether the advice was given: false on other systems,
// for memory already in use (the C allocator reused it: no faults to spare) and for spans without a
// whole aligned 2 MB page. The values written are unchanged either way.
bool adviseHugePages(void* data, size_t bytes) noexcept;

}  // namespace batchnorm::binding
