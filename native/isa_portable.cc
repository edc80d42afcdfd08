// Portable C++ kernels: 64-bit words and a SWAR popcount, no intrinsics. Built for every
// target; the fallback when no SIMD path is available or XNOR_KERAS_NATIVE_ISA=portable.
#include <cstdint>
#include <cstring>

#include "isa.h"
#include "kernels.h"
#include "scratch.h"

#define XK_TARGET
#define XK_PLAIN_LAYOUT 1  // PackPanelInOrder panels, CopyARow rows
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
