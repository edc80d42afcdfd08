// Portable C++ kernels: 64-bit words and a SWAR popcount, no intrinsics. Built for every
// target; the fallback when no SIMD path is available or XNOR_KERAS_NATIVE_ISA=portable.
#include <cstdint>
#include <cstring>

#include "isa.h"
#include "kernels.h"
#include "scratch.h"

#define XK_TARGET
#define XK_ISA_NAME "portable"

namespace xk {
namespace portable {

constexpr int kMicroRows = 2;
constexpr int kAWordsPerK = 1;
constexpr int kBWordsPerK = 16;  // one word per channel, channels in order

inline int Popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
}

// Word k of a filter row as 64 bits: 32-bit words 2k and 2k+1 (zero past the end).
inline uint64_t RowWord64(const uint32_t* row, int k32, int k) {
  if (row == nullptr) return 0;
  const uint64_t lo = row[2 * k];
  const uint64_t hi = 2 * k + 1 < k32 ? row[2 * k + 1] : 0;
  return lo | hi << 32;
}

inline void PackPanel(const uint32_t* const* rows, int k32, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) {
    for (int c = 0; c < 16; ++c) out[k * 16 + c] = RowWord64(rows[c], k32, k);
  }
}

inline void PackARow(const uint64_t* raw, int k64, uint64_t* out) {
  std::memcpy(out, raw, sizeof(uint64_t) * k64);
}

inline void MicroKernel(const uint64_t* const* a, const uint64_t* b, int k64,
                        int32_t (*acc)[16]) {
  for (int r = 0; r < kMicroRows; ++r) {
    for (int c = 0; c < 16; ++c) acc[r][c] = 0;
  }
  for (int k = 0; k < k64; ++k) {
    const uint64_t* bk = b + k * 16;
    for (int r = 0; r < kMicroRows; ++r) {
      const uint64_t av = a[r][k];
      for (int c = 0; c < 16; ++c) acc[r][c] += Popcount64(av ^ bk[c]);
    }
  }
}

}  // namespace portable
}  // namespace xk

#define XK_NS portable
#include "kernels_impl.inc"

namespace xk {

const internal::IsaOps& internal::PortableOps() { return portable::Ops(); }

}  // namespace xk
