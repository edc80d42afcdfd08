// x86-64 AVX2 kernels. Only the functions in this file are compiled for AVX2 (per-function
// target attributes), so the library still loads and runs the portable path on CPUs
// without AVX2; kernels.cc selects this path at run time after checking CPUID.
//
// Binary GEMM micro-kernel: 2 output pixels x 16 output channels. Each 64-bit depth word
// of a pixel is broadcast to all four lanes of a ymm register and XORed with the same word
// of 4 filters. Two popcount variants, each compiling kernels_impl.inc in its own
// namespace; internal::SetAvx2Popcount picks one (benchmarks and tests compare them):
//   avx2_vpshufb (the default: it measured faster on the benchmark layers, see
//     native/README.md): the `vpshufb` nibble lookup, described below;
//   avx2 (namespace; internal::kAvx2HarleySeal): Harley-Seal carry-save accumulation over
//     the depth words. Both operands of the vpshufb kernel are stored
// pre-split into low and high nibbles (high bits zero), so a 256-bit step costs
// 2 xor + 2 shuffle + 2 add, and the per-byte counts are reduced with `vpsadbw` only every
// 31 steps. Filters are packed once per layer; activations are packed per block of pixels
// (im2col), so both stay in L1/L2.
#include "isa.h"
#include "kernels.h"
#include "scratch.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define XK_TARGET __attribute__((target("avx2,popcnt,bmi2")))
#define XK_ISA_NAME "avx2"
#define XK_HAS_FAST_QUANTIZE 1
#define XK_HAS_FAST_TRANSFORM 1

namespace xk {
namespace avx2 {

constexpr uint64_t kNibbles = 0x0F0F0F0F0F0F0F0Full;

// Channel held by lane `lane` of vector `v` (0..3) in a panel: vector pairs hold even and
// odd channels so that `sad(v0) | sad(v1) << 32` lists 8 channels in order.
XK_TARGET inline int PanelChannel(int v, int lane) { return (v / 2) * 8 + 2 * lane + (v % 2); }

// Bitpacking with compare + movemask: bit i of a word is (x[i] < 0) resp. (x[i] < zp).
XK_TARGET inline void QuantizeFloatRows(const float* in, int64_t rows, int cols, int32_t* out) {
  const int words = BitpackedWords(cols);
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * cols;
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + r * words);
    const int full = cols / 32;
    for (int w = 0; w < full; ++w) {
      const float* s = src + 32 * w;
      uint32_t bits = 0;
      for (int q = 0; q < 4; ++q) {
        const __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(s + 8 * q), zero, _CMP_LT_OQ);
        bits |= static_cast<uint32_t>(_mm256_movemask_ps(lt)) << (8 * q);
      }
      dst[w] = bits;
    }
    if (full < words) {
      uint32_t bits = 0;
      for (int i = 32 * full; i < cols; ++i) {
        bits |= static_cast<uint32_t>(src[i] < 0.0f) << (i - 32 * full);
      }
      dst[full] = bits;
    }
  }
}

XK_TARGET inline void QuantizeInt8Rows(const int8_t* in, int64_t rows, int cols,
                                       int32_t zero_point, int32_t* out) {
  const int words = BitpackedWords(cols);
  // x < zp for all int8 x when zp > 127; never when zp <= -128.
  const int zp_clamped = zero_point > 127 ? 127 : (zero_point < -128 ? -128 : zero_point);
  const __m256i zp = _mm256_set1_epi8(static_cast<char>(zp_clamped));
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = in + r * cols;
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + r * words);
    const int full = zero_point > 127 || zero_point < -127 ? 0 : cols / 32;
    for (int w = 0; w < full; ++w) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * w));
      dst[w] = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpgt_epi8(zp, x)));
    }
    for (int w = full; w < words; ++w) dst[w] = internal::Int8SignWord(src, cols, w, zero_point);
  }
}

// GenericTransformPanel for float and bitpacked output, 8 channels per instruction.
// Multiply and add stay separate instructions (no FMA), as in LCE.
// Shared by both popcount variants (each has its own PanelTarget type); int8 output goes
// to GenericTransformPanel (kernels_impl.inc).
template <int kOut, class Target>
XK_TARGET inline void FastTransformPanel(const BConvView& p, const int32_t* acc,
                                         const Target& t, void* output) {
  __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc));
  __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + 8));
  if (p.int_correction && t.pattern >= 0) {
    const int32_t* corr = p.int_corrections + t.pattern * p.slots() + t.slot0;
    a0 = _mm256_add_epi32(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr)));
    a1 = _mm256_add_epi32(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr + 8)));
  }
  if (kOut == static_cast<int>(OutputType::kBitpacked)) {
    const int32_t* thr = p.thresholds + t.slot0;
    const __m256i t0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(thr));
    const __m256i t1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(thr + 8));
    const uint32_t bits =
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(a0, t0)))) |
        static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(a1, t1))))
            << 8;
    internal::OrPanelBits(reinterpret_cast<uint32_t*>(output) + t.pixel * p.out_depth, t.oc0,
                          t.valid, bits);
    return;
  }
  const __m256i lo = _mm256_set1_epi32(p.clamp_min), hi = _mm256_set1_epi32(p.clamp_max);
  const __m256i x0 = _mm256_max_epi32(_mm256_min_epi32(_mm256_slli_epi32(a0, 1), hi), lo);
  const __m256i x1 = _mm256_max_epi32(_mm256_min_epi32(_mm256_slli_epi32(a1, 1), hi), lo);
  const float* mul = p.multiplier + t.slot0;
  const float* bias = p.bias + t.slot0;
  __m256 y0 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(x0), _mm256_loadu_ps(mul)),
                            _mm256_loadu_ps(bias));
  __m256 y1 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(x1), _mm256_loadu_ps(mul + 8)),
                            _mm256_loadu_ps(bias + 8));
  if (p.float_correction && t.pattern >= 0) {
    const float* corr = p.float_corrections + t.pattern * p.slots() + t.slot0;
    y0 = _mm256_add_ps(y0, _mm256_loadu_ps(corr));
    y1 = _mm256_add_ps(y1, _mm256_loadu_ps(corr + 8));
  }
  if (p.pixel_scale.scale != nullptr) {  // clamp(y * K[pixel], lo, hi), see bconv.h
    const __m256 k = _mm256_set1_ps(p.pixel_scale.scale[t.pixel]);
    const __m256 lo_f = _mm256_set1_ps(p.pixel_scale.lo), hi_f = _mm256_set1_ps(p.pixel_scale.hi);
    y0 = _mm256_min_ps(hi_f, _mm256_max_ps(lo_f, _mm256_mul_ps(y0, k)));
    y1 = _mm256_min_ps(hi_f, _mm256_max_ps(lo_f, _mm256_mul_ps(y1, k)));
    if (p.pixel_scale.residual != nullptr) {  // clamp(y + residual, residual_lo, residual_hi)
      const float* r = p.pixel_scale.residual + t.pixel * p.out_depth + t.oc0;
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i n = _mm256_set1_epi32(t.valid);
      const __m256 r0 = _mm256_maskload_ps(r, _mm256_cmpgt_epi32(n, lane));
      const __m256 r1 = _mm256_maskload_ps(
          r + 8, _mm256_cmpgt_epi32(_mm256_sub_epi32(n, _mm256_set1_epi32(8)), lane));
      const __m256 rlo = _mm256_set1_ps(p.pixel_scale.residual_lo);
      const __m256 rhi = _mm256_set1_ps(p.pixel_scale.residual_hi);
      y0 = _mm256_min_ps(rhi, _mm256_max_ps(rlo, _mm256_add_ps(y0, r0)));
      y1 = _mm256_min_ps(rhi, _mm256_max_ps(rlo, _mm256_add_ps(y1, r1)));
    }
  }
  float* dst = reinterpret_cast<float*>(output) + t.pixel * p.out_depth + t.oc0;
  if (t.valid == 16) {
    _mm256_storeu_ps(dst, y0);
    _mm256_storeu_ps(dst + 8, y1);
  } else {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i n = _mm256_set1_epi32(t.valid);
    _mm256_maskstore_ps(dst, _mm256_cmpgt_epi32(n, lane), y0);
    _mm256_maskstore_ps(dst + 8, _mm256_cmpgt_epi32(_mm256_sub_epi32(n, _mm256_set1_epi32(8)), lane), y1);
  }
}

// Per-lane sums s[r * 4 + v] of rows r = 0, 1 and vectors v (see PanelChannel) -> acc.
// Sums are < 2^32: even channels in the low, odd channels in the high 32-bit halves.
XK_TARGET inline void StoreSums(const __m256i* s, int32_t (*acc)[16]) {
  for (int r = 0; r < 2; ++r) {
    __m256i* out = reinterpret_cast<__m256i*>(acc[r]);
    _mm256_storeu_si256(out, _mm256_or_si256(s[4 * r], _mm256_slli_epi64(s[4 * r + 1], 32)));
    _mm256_storeu_si256(out + 1,
                        _mm256_or_si256(s[4 * r + 2], _mm256_slli_epi64(s[4 * r + 3], 32)));
  }
}

// Harley-Seal micro-kernel (internal::kAvx2HarleySeal): operands are plain 64-bit words. Per output
// vector (4 channels, one 64-bit lane each) the XOR words of 8 consecutive depth steps go
// through a carry-save adder tree (ones, twos, fours kept across steps); only the "eights"
// vector is popcounted (vpshufb + vpsadbw) per 8 steps, the rest once at the end. That is
// ~5 bitwise ops per 256 bits instead of 2 shuffles + 4 ops, and half the loads of the
// nibble-split format.
constexpr int kMicroRows = 2;
constexpr int kAWordsPerK = 1;
constexpr int kBWordsPerK = 16;  // 4 vectors of 4 channels

XK_TARGET inline void PackPanel(const uint32_t* const* rows, int k32, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) {
    for (int v = 0; v < 4; ++v) {
      for (int lane = 0; lane < 4; ++lane) {
        const uint64_t w = internal::PanelWord(rows[PanelChannel(v, lane)], k32, k);
        out[k * 16 + v * 4 + lane] = w;
      }
    }
  }
}

XK_TARGET inline void PackARow(const uint64_t* raw, int k64, uint64_t* out) {
  internal::CopyARow(raw, k64, out);
}

// Per-byte popcounts of x (nibble lookup).
XK_TARGET inline __m256i BytePop(__m256i lut, __m256i mask, __m256i x) {
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, mask)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), mask)));
}

// Carry-save adder: (h, l) = the two-bit sum of a + b + c, bitwise.
XK_TARGET inline void Csa(__m256i& h, __m256i& l, __m256i a, __m256i b, __m256i c) {
  const __m256i u = _mm256_xor_si256(a, b);
  h = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
  l = _mm256_xor_si256(u, c);
}

XK_TARGET inline __m256i XorStep(const uint64_t* a, const uint64_t* b, int k, int v) {
  return _mm256_xor_si256(_mm256_set1_epi64x(static_cast<int64_t>(a[k])),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k * 16 + v * 4)));
}

// Per-lane popcounts of (a[k] XOR vector v of step k) summed over k < k64, for rows a0, a1.
XK_TARGET inline void CountVector(const uint64_t* a0, const uint64_t* a1, const uint64_t* b,
                                  int k64, int v, __m256i* s0, __m256i* s1) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i zero = _mm256_setzero_si256();
  __m256i ones0 = zero, twos0 = zero, fours0 = zero, eights0 = zero;
  __m256i ones1 = zero, twos1 = zero, fours1 = zero, eights1 = zero;
  int k = 0;
  for (; k + 8 <= k64; k += 8) {
    __m256i ta, tb, fa, fb, e;
    Csa(ta, ones0, ones0, XorStep(a0, b, k, v), XorStep(a0, b, k + 1, v));
    Csa(tb, ones0, ones0, XorStep(a0, b, k + 2, v), XorStep(a0, b, k + 3, v));
    Csa(fa, twos0, twos0, ta, tb);
    Csa(ta, ones0, ones0, XorStep(a0, b, k + 4, v), XorStep(a0, b, k + 5, v));
    Csa(tb, ones0, ones0, XorStep(a0, b, k + 6, v), XorStep(a0, b, k + 7, v));
    Csa(fb, twos0, twos0, ta, tb);
    Csa(e, fours0, fours0, fa, fb);
    eights0 = _mm256_add_epi64(eights0, _mm256_sad_epu8(BytePop(lut, mask, e), zero));
    Csa(ta, ones1, ones1, XorStep(a1, b, k, v), XorStep(a1, b, k + 1, v));
    Csa(tb, ones1, ones1, XorStep(a1, b, k + 2, v), XorStep(a1, b, k + 3, v));
    Csa(fa, twos1, twos1, ta, tb);
    Csa(ta, ones1, ones1, XorStep(a1, b, k + 4, v), XorStep(a1, b, k + 5, v));
    Csa(tb, ones1, ones1, XorStep(a1, b, k + 6, v), XorStep(a1, b, k + 7, v));
    Csa(fb, twos1, twos1, ta, tb);
    Csa(e, fours1, fours1, fa, fb);
    eights1 = _mm256_add_epi64(eights1, _mm256_sad_epu8(BytePop(lut, mask, e), zero));
  }
  // Fewer than 8 steps left: plain byte counts (at most 7 * 8 per byte).
  __m256i rest0 = zero, rest1 = zero;
  for (; k < k64; ++k) {
    rest0 = _mm256_add_epi8(rest0, BytePop(lut, mask, XorStep(a0, b, k, v)));
    rest1 = _mm256_add_epi8(rest1, BytePop(lut, mask, XorStep(a1, b, k, v)));
  }
  // total = 8 * eights + 4 * fours + 2 * twos + ones + rest; 4 * 4 + 2 * 4 + 4 + 56 < 256,
  // so the weighted byte counts of fours, twos, ones and rest add up in bytes.
  const __m256i low0 = _mm256_add_epi8(
      _mm256_add_epi8(_mm256_slli_epi16(BytePop(lut, mask, fours0), 2),
                      _mm256_slli_epi16(BytePop(lut, mask, twos0), 1)),
      _mm256_add_epi8(BytePop(lut, mask, ones0), rest0));
  const __m256i low1 = _mm256_add_epi8(
      _mm256_add_epi8(_mm256_slli_epi16(BytePop(lut, mask, fours1), 2),
                      _mm256_slli_epi16(BytePop(lut, mask, twos1), 1)),
      _mm256_add_epi8(BytePop(lut, mask, ones1), rest1));
  *s0 = _mm256_add_epi64(_mm256_slli_epi64(eights0, 3), _mm256_sad_epu8(low0, zero));
  *s1 = _mm256_add_epi64(_mm256_slli_epi64(eights1, 3), _mm256_sad_epu8(low1, zero));
}

// Short depths (k64 <= 31): the carry-save tree's final popcounts would cost more than it
// saves, so per-byte counts of all 8 vectors accumulate over the steps, one vpsadbw each.
XK_TARGET __attribute__((noinline)) void CountShort(const uint64_t* a0, const uint64_t* a1,
                                                    const uint64_t* b, int k64, __m256i* s) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i zero = _mm256_setzero_si256();
  __m256i c[8] = {zero, zero, zero, zero, zero, zero, zero, zero};
  for (int k = 0; k < k64; ++k) {
    for (int v = 0; v < 4; ++v) {
      c[v] = _mm256_add_epi8(c[v], BytePop(lut, mask, XorStep(a0, b, k, v)));
      c[4 + v] = _mm256_add_epi8(c[4 + v], BytePop(lut, mask, XorStep(a1, b, k, v)));
    }
  }
  for (int i = 0; i < 8; ++i) s[i] = _mm256_sad_epu8(c[i], zero);
}

constexpr int kCarrySaveMinDepth = 32;  // k64 from which Harley-Seal is faster

XK_TARGET inline void MicroKernel(const uint64_t* const* a, const uint64_t* b, int k64,
                                  int32_t (*acc)[16]) {
  __m256i s[8];
  if (k64 < kCarrySaveMinDepth) {
    CountShort(a[0], a[1], b, k64, s);
  } else {
    for (int v = 0; v < 4; ++v) CountVector(a[0], a[1], b, k64, v, &s[v], &s[4 + v]);
  }
  StoreSums(s, acc);
}

}  // namespace avx2
}  // namespace xk

#define XK_NS avx2
#include "kernels_impl.inc"
#undef XK_NS

namespace xk {

// The default kernel: nibble-split operands, vpshufb lookup.
namespace avx2_vpshufb {

using avx2::kNibbles;
using avx2::PanelChannel;
using avx2::QuantizeFloatRows;
using avx2::QuantizeInt8Rows;
using avx2::FastTransformPanel;
using avx2::StoreSums;

constexpr int kMicroRows = 2;
constexpr int kAWordsPerK = 2;   // low nibbles, high nibbles (see PackARow)
constexpr int kBWordsPerK = 32;  // 4 vectors of low nibbles, 4 of high nibbles

XK_TARGET inline void PackPanel(const uint32_t* const* rows, int k32, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) {
    for (int v = 0; v < 4; ++v) {
      for (int lane = 0; lane < 4; ++lane) {
        const uint64_t w = internal::PanelWord(rows[PanelChannel(v, lane)], k32, k);
        out[k * 32 + v * 4 + lane] = w & kNibbles;
        out[k * 32 + 16 + v * 4 + lane] = (w >> 4) & kNibbles;
      }
    }
  }
}

// A packed activation row: k64 words of low nibbles, then k64 words of high nibbles.
XK_TARGET inline void PackARow(const uint64_t* raw, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) {
    out[k] = raw[k] & kNibbles;
    out[k64 + k] = (raw[k] >> 4) & kNibbles;
  }
}

XK_TARGET inline __m256i CountStep(__m256i acc, __m256i lut, __m256i a_lo, __m256i a_hi,
                                   const __m256i* b_lo, const __m256i* b_hi) {
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_xor_si256(a_lo, _mm256_loadu_si256(b_lo)));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_xor_si256(a_hi, _mm256_loadu_si256(b_hi)));
  return _mm256_add_epi8(acc, _mm256_add_epi8(lo, hi));
}

// Per-byte popcounts of steps [k_begin, k_end) (at most 31, so bytes cannot overflow),
// reduced with `vpsadbw` to per-lane sums: out[r * 4 + v] for row r and vector v.
XK_TARGET inline void CountChunk(const uint64_t* a0, const uint64_t* a1, const uint64_t* b,
                                 int k64, int k_begin, int k_end, __m256i* out) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i zero = _mm256_setzero_si256();
  __m256i c00 = zero, c01 = zero, c02 = zero, c03 = zero;
  __m256i c10 = zero, c11 = zero, c12 = zero, c13 = zero;
  for (int k = k_begin; k < k_end; ++k) {
    const __m256i* bk = reinterpret_cast<const __m256i*>(b + k * 32);
    const __m256i a0_lo = _mm256_set1_epi64x(static_cast<int64_t>(a0[k]));
    const __m256i a0_hi = _mm256_set1_epi64x(static_cast<int64_t>(a0[k64 + k]));
    c00 = CountStep(c00, lut, a0_lo, a0_hi, bk + 0, bk + 4);
    c01 = CountStep(c01, lut, a0_lo, a0_hi, bk + 1, bk + 5);
    c02 = CountStep(c02, lut, a0_lo, a0_hi, bk + 2, bk + 6);
    c03 = CountStep(c03, lut, a0_lo, a0_hi, bk + 3, bk + 7);
    const __m256i a1_lo = _mm256_set1_epi64x(static_cast<int64_t>(a1[k]));
    const __m256i a1_hi = _mm256_set1_epi64x(static_cast<int64_t>(a1[k64 + k]));
    c10 = CountStep(c10, lut, a1_lo, a1_hi, bk + 0, bk + 4);
    c11 = CountStep(c11, lut, a1_lo, a1_hi, bk + 1, bk + 5);
    c12 = CountStep(c12, lut, a1_lo, a1_hi, bk + 2, bk + 6);
    c13 = CountStep(c13, lut, a1_lo, a1_hi, bk + 3, bk + 7);
  }
  out[0] = _mm256_sad_epu8(c00, zero);
  out[1] = _mm256_sad_epu8(c01, zero);
  out[2] = _mm256_sad_epu8(c02, zero);
  out[3] = _mm256_sad_epu8(c03, zero);
  out[4] = _mm256_sad_epu8(c10, zero);
  out[5] = _mm256_sad_epu8(c11, zero);
  out[6] = _mm256_sad_epu8(c12, zero);
  out[7] = _mm256_sad_epu8(c13, zero);
}

// Kept out of line so that the running sums do not compete with the 8 byte accumulators
// of CountChunk for the 16 ymm registers.
XK_TARGET __attribute__((noinline)) void CountLong(const uint64_t* a0, const uint64_t* a1,
                                                   const uint64_t* b, int k64, __m256i* sums) {
  // Equal chunks of at most 31 steps.
  const int chunks = (k64 + 30) / 31;
  const int step = (k64 + chunks - 1) / chunks;
  CountChunk(a0, a1, b, k64, 0, step, sums);
  for (int k = step; k < k64; k += step) {
    __m256i part[8];
    CountChunk(a0, a1, b, k64, k, k64 - k > step ? k + step : k64, part);
    for (int i = 0; i < 8; ++i) sums[i] = _mm256_add_epi64(sums[i], part[i]);
  }
}

XK_TARGET inline void MicroKernel(const uint64_t* const* a, const uint64_t* b, int k64,
                                  int32_t (*acc)[16]) {
  __m256i s[8];
  if (k64 <= 31) {
    CountChunk(a[0], a[1], b, k64, 0, k64, s);
  } else {
    CountLong(a[0], a[1], b, k64, s);
  }
  StoreSums(s, acc);
}

}  // namespace avx2_vpshufb
}  // namespace xk

#define XK_NS avx2_vpshufb
#include "kernels_impl.inc"
#undef XK_NS

namespace xk {

namespace {
int g_avx2_popcount = internal::kAvx2Vpshufb;
}  // namespace

void internal::SetAvx2Popcount(int variant) { g_avx2_popcount = variant; }

const internal::IsaOps* internal::Avx2Ops() {
  return g_avx2_popcount == kAvx2Vpshufb ? &avx2_vpshufb::Ops() : &avx2::Ops();
}
}  // namespace xk

#else  // !__x86_64__

namespace xk {
const internal::IsaOps* internal::Avx2Ops() { return nullptr; }
void internal::SetAvx2Popcount(int) {}
}  // namespace xk

#endif
