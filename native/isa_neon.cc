// ARM64 NEON kernels (NEON is part of the aarch64 base ISA, so no run-time check).
//
// Binary GEMM micro-kernel: 2 output pixels x 16 output channels. Each 64-bit depth word
// of a pixel is duplicated into both lanes of a q register and XORed with the same word of
// 2 filters; `vcnt` counts bits per byte, byte counts accumulate with `vadd` for up to 31
// steps and are then widened and summed per 64-bit lane with `vpaddl`/`vpadal`.
#include "isa.h"
#include "kernels.h"
#include "scratch.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#define XK_TARGET
#define XK_PLAIN_LAYOUT 1  // PackPanelInOrder panels, CopyARow rows
#define XK_ISA_NAME "neon"

namespace xk {
namespace neon {

constexpr int kMicroRows = 2;
constexpr int kAWordsPerK = 1;
constexpr int kBWordsPerK = 16;  // one word per channel, channels in order

inline void MicroKernel(const uint64_t* const* a, const uint64_t* b, int k64,
                        int32_t (*acc)[16]) {
  uint64x2_t s[kMicroRows][8];
  for (int r = 0; r < kMicroRows; ++r) {
    for (int j = 0; j < 8; ++j) s[r][j] = vdupq_n_u64(0);
  }
  int k = 0;
  while (k < k64) {
    const int k_end = k64 - k > 31 ? k + 31 : k64;
    uint8x16_t c[kMicroRows][8];
    for (int r = 0; r < kMicroRows; ++r) {
      for (int j = 0; j < 8; ++j) c[r][j] = vdupq_n_u8(0);
    }
    for (; k < k_end; ++k) {
      const uint64_t* bk = b + k * 16;
      uint8x16_t bv[8];
      for (int j = 0; j < 8; ++j) bv[j] = vreinterpretq_u8_u64(vld1q_u64(bk + 2 * j));
      for (int r = 0; r < kMicroRows; ++r) {
        const uint8x16_t av = vreinterpretq_u8_u64(vdupq_n_u64(a[r][k]));
        for (int j = 0; j < 8; ++j) c[r][j] = vaddq_u8(c[r][j], vcntq_u8(veorq_u8(av, bv[j])));
      }
    }
    for (int r = 0; r < kMicroRows; ++r) {
      for (int j = 0; j < 8; ++j) {
        s[r][j] = vpadalq_u32(s[r][j], vpaddlq_u16(vpaddlq_u8(c[r][j])));
      }
    }
  }
  for (int r = 0; r < kMicroRows; ++r) {
    for (int j = 0; j < 8; ++j) {
      acc[r][2 * j] = static_cast<int32_t>(vgetq_lane_u64(s[r][j], 0));
      acc[r][2 * j + 1] = static_cast<int32_t>(vgetq_lane_u64(s[r][j], 1));
    }
  }
}

}  // namespace neon
}  // namespace xk

#define XK_NS neon
#include "kernels_impl.inc"

namespace xk {
const internal::IsaOps* internal::NeonOps() { return &neon::Ops(); }
}  // namespace xk

#else  // !__aarch64__

namespace xk {
const internal::IsaOps* internal::NeonOps() { return nullptr; }
}  // namespace xk

#endif
