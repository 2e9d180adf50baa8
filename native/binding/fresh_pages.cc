#include "binding/fresh_pages.h"

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace batchnorm::binding {

bool adviseHugePages(void* data, size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{1} << 21;
  const uintptr_t start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (start + bytes) & ~(kHugePage - 1);
  if (end <= begin) return false;
  // Memory the C allocator hands out again is resident already; advising it would cost the call a
  // system call that spares no fault (and splits the heap's mapping for nothing).
  unsigned char resident = 0;
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || mincore(reinterpret_cast<void*>(begin), static_cast<size_t>(page), &resident) != 0) return false;
  if ((resident & 1) != 0) return false;
  return madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) == 0;
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

}  // namespace batchnorm::binding
