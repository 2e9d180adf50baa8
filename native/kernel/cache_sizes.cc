#include "kernel/cache_sizes.h"

#include <cstdio>
#include <cstring>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "kernel/cpuid.h"

namespace batchnorm {
namespace {

constexpr int64_t kFallbackL2Bytes = int64_t{1} << 20;
constexpr int64_t kFallbackLastLevelBytes = int64_t{32} << 20;
// Sizes outside these bounds are taken as misreported (a hypervisor's made-up topology) and ignored.
constexpr int64_t kMinPlausibleBytes = int64_t{64} << 10;
constexpr int64_t kMaxPlausibleBytes = int64_t{512} << 20;

bool plausible(int64_t bytes) { return bytes >= kMinPlausibleBytes && bytes <= kMaxPlausibleBytes; }

// One data or unified cache as sysfs or CPUID describe it.
struct CacheLevel {
  int level = 0;
  int64_t bytes = 0;
};

// Keeps the L2 and the highest level seen.
void record(CacheSizes& sizes, int& lastLevel, const CacheLevel& cache) {
  if (!plausible(cache.bytes)) return;
  if (cache.level == 2) sizes.l2Bytes = cache.bytes;
  if (cache.level >= 2 && cache.level >= lastLevel) {
    lastLevel = cache.level;
    sizes.lastLevelBytes = cache.bytes;
  }
}

#if defined(__linux__)
bool readLine(const char* path, char* line, int size) {
  FILE* file = std::fopen(path, "r");
  if (file == nullptr) return false;
  const bool read = std::fgets(line, size, file) != nullptr;
  std::fclose(file);
  return read;
}

bool fromSysfs(CacheSizes& sizes) {
  int lastLevel = 0;
  for (int index = 0; index < 8; ++index) {
    char path[96], line[64];
    CacheLevel cache;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", index);
    if (!readLine(path, line, sizeof line)) break;
    if (std::strncmp(line, "Instruction", 11) == 0) continue;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
    if (!readLine(path, line, sizeof line) || std::sscanf(line, "%d", &cache.level) != 1) continue;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    long long kilobytes = 0;
    char unit = 'K';
    if (!readLine(path, line, sizeof line) || std::sscanf(line, "%lld%c", &kilobytes, &unit) < 1) continue;
    cache.bytes = static_cast<int64_t>(kilobytes) << (unit == 'M' ? 20 : 10);
    record(sizes, lastLevel, cache);
  }
  return sizes.l2Bytes > 0 && sizes.lastLevelBytes > 0;
}
#else
bool fromSysfs(CacheSizes&) { return false; }
#endif

#if defined(__APPLE__)
// macOS names its caches in sysctl (Apple silicon has no CPUID and no L3 entry; its L2 is then the last
// level). The values are 64-bit, read as 32-bit where a kernel reports them so.
bool fromSysctl(CacheSizes& sizes) {
  int lastLevel = 0;
  const char* const names[] = {"hw.l2cachesize", "hw.l3cachesize"};
  for (int index = 0; index < 2; ++index) {
    int64_t value = 0;
    size_t length = sizeof value;
    if (sysctlbyname(names[index], &value, &length, nullptr, 0) != 0) continue;
    CacheLevel cache;
    cache.level = index + 2;
    if (length == sizeof(int32_t)) {
      int32_t narrow = 0;
      std::memcpy(&narrow, &value, sizeof narrow);
      cache.bytes = narrow;
    } else {
      cache.bytes = value;
    }
    record(sizes, lastLevel, cache);
  }
  return sizes.l2Bytes > 0 && sizes.lastLevelBytes > 0;
}
#else
bool fromSysctl(CacheSizes&) { return false; }
#endif

#if defined(__x86_64__) || defined(_M_X64)
// The deterministic cache parameters leaf (Intel 4, AMD 0x8000001D share its layout): one subleaf per
// cache, size = ways x partitions x line size x sets.
bool fromCpuid(CacheSizes& sizes) {
  const CpuidRegisters vendor = cpuid(0, 0);
  const bool amd = vendor.ebx == 0x68747541;  // "Auth"enticAMD
  unsigned leaf = 4;
  if (amd) {
    if (cpuid(0x80000000, 0).eax < 0x8000001D) return false;
    leaf = 0x8000001D;
  } else if (vendor.eax < 4) {
    return false;
  }
  int lastLevel = 0;
  for (unsigned subleaf = 0; subleaf < 8; ++subleaf) {
    const CpuidRegisters r = cpuid(leaf, subleaf);
    const unsigned type = r.eax & 0x1F;
    if (type == 0) break;
    if (type == 2) continue;  // instruction cache
    CacheLevel cache;
    cache.level = static_cast<int>((r.eax >> 5) & 7);
    cache.bytes = static_cast<int64_t>((r.ebx >> 22) + 1) * (((r.ebx >> 12) & 0x3FF) + 1) * ((r.ebx & 0xFFF) + 1) *
                  (static_cast<int64_t>(r.ecx) + 1);
    record(sizes, lastLevel, cache);
  }
  return sizes.l2Bytes > 0 && sizes.lastLevelBytes > 0;
}
#else
bool fromCpuid(CacheSizes&) { return false; }
#endif

CacheSizes detect() {
  CacheSizes sizes;
  if (fromSysfs(sizes)) {
    sizes.source = "sysfs";
    return sizes;
  }
  sizes = CacheSizes{};
  if (fromSysctl(sizes)) {
    sizes.source = "sysctl";
    return sizes;
  }
  sizes = CacheSizes{};
  if (fromCpuid(sizes)) {
    sizes.source = "cpuid";
    return sizes;
  }
  return CacheSizes{kFallbackL2Bytes, kFallbackLastLevelBytes, "fallback"};
}

}  // namespace

const CacheSizes& cacheSizes() {
  static const CacheSizes sizes = detect();
  return sizes;
}

}  // namespace batchnorm
