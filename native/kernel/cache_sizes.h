// The data caches the planner sizes its blocks and its streaming decisions by, read once at load.
#pragma once

#include <cstdint>

namespace batchnorm {

struct CacheSizes {
  int64_t l2Bytes = 0;         // a core's own L2
  int64_t lastLevelBytes = 0;  // the last-level cache shared by a core's complex (not the whole socket)
  const char* source = "";     // where the sizes came from: "sysfs", "sysctl", "cpuid" or "fallback"
};

// Linux sysfs or macOS sysctl first (the system's view, right under virtualization where it is
// exposed), then CPUID's deterministic cache leaves (Intel leaf 4, AMD 0x8000001D), else the fallback of
// the machine the thresholds were measured on (Zen 4: 1 MB L2, 32 MB L3 per core complex).
const CacheSizes& cacheSizes();

}  // namespace batchnorm
