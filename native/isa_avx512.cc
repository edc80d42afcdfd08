// x86-64 AVX-512 kernels with VPOPCNTDQ (issue 13.3: past the vpshufb ceiling). As in
// isa_avx2.cc only the functions in this file are compiled for the ISA (per-function
// target attributes), so the library still loads on any x86-64 CPU; kernels.cc uses this
// path only when Avx512Supported() confirms, from CPUID and XGETBV, that the CPU has
// AVX512F, AVX512BW, AVX512VL and AVX512_VPOPCNTDQ and that the OS saves the opmask and
// zmm state.
//
// Binary GEMM micro-kernel: kMicroRows output pixels x 16 output channels. A panel stores
// each 64-bit depth word of its 16 filters in channel order (two zmm registers); a pixel's
// word is broadcast (embedded broadcast of the XOR's memory operand), XORed with both and
// counted with `vpopcntq` into 64-bit lanes. Per 512 bits that is 1 xor + 1 popcount +
// 1 add, against 2 xor + 2 shuffle + 2 add per 256 bits for the AVX2 vpshufb kernel, and
// the 64-bit sums never overflow, so there is no periodic widening. The output transform
// handles a whole 16-channel panel per instruction, for all rows of a micro-kernel call
// (float and bitpacked output; int8 uses the generic transform, whose std::round has no
// AVX-512 equivalent).
#include "isa.h"
#include "kernels.h"
#include "scratch.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// GCC 12 warns about the deliberately undefined pass-through operand inside its own
// AVX-512 intrinsics (_mm512_undefined_*, GCC bug 105593) once they are inlined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>
#include <cstring>
#include <string>

#define XK_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vpopcntdq,avx2,popcnt,bmi2")))
#define XK_PLAIN_LAYOUT 1  // PackPanelInOrder panels, CopyARow rows
#define XK_ISA_NAME "avx512"
#define XK_HAS_FAST_QUANTIZE 1
#define XK_HAS_FAST_TRANSFORM_ROWS 1
#define XK_HAS_MICRO_KERNEL_ROWS 1
#define XK_HAS_FAST_COPY_RUN 1

namespace xk {
namespace avx512 {

constexpr int kMicroRows = 8;
constexpr int kAWordsPerK = 1;
constexpr int kBWordsPerK = 16;  // one word per channel, channels in order

XK_TARGET inline __m512i CountStep(__m512i acc, __m512i a, __m512i b) {
  return _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
}

template <int kRows>
XK_TARGET inline void MicroKernelOf(const uint64_t* const* a, const uint64_t* b, int k64,
                                    int32_t (*acc)[16]) {
  __m512i s[kRows][2];
  for (int r = 0; r < kRows; ++r) s[r][0] = s[r][1] = _mm512_setzero_si512();
  for (int k = 0; k < k64; ++k) {
    const __m512i b0 = _mm512_loadu_si512(b + k * 16);
    const __m512i b1 = _mm512_loadu_si512(b + k * 16 + 8);
    for (int r = 0; r < kRows; ++r) {
      const __m512i av = _mm512_set1_epi64(static_cast<int64_t>(a[r][k]));
      s[r][0] = CountStep(s[r][0], av, b0);
      s[r][1] = CountStep(s[r][1], av, b1);
    }
  }
  // Sums are < 2^31 (depth < 2^25 words): narrow each 64-bit lane to 32 bits. One 512-bit
  // store per row, so that the transform's 512-bit load of it is forwarded from the store
  // (two 256-bit stores read back as one 512-bit load would stall the load).
  for (int r = 0; r < kRows; ++r) {
    const __m512i both = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm512_cvtepi64_epi32(s[r][0])), _mm512_cvtepi64_epi32(s[r][1]), 1);
    _mm512_store_si512(acc[r], both);
  }
}

XK_TARGET inline void MicroKernel(const uint64_t* const* a, const uint64_t* b, int k64,
                                  int32_t (*acc)[16]) {
  MicroKernelOf<kMicroRows>(a, b, k64, acc);
}

// The first n < kMicroRows rows only (a block's last rows; a dense layer's single pixel,
// where 8 rows would count the same pixel 8 times): the smallest kernel that covers them.
XK_TARGET inline void MicroKernelRows(const uint64_t* const* a, const uint64_t* b, int k64,
                                      int32_t (*acc)[16], int n) {
  if (n == 1) {
    MicroKernelOf<1>(a, b, k64, acc);
  } else if (n == 2) {
    MicroKernelOf<2>(a, b, k64, acc);
  } else if (n <= 4) {
    MicroKernelOf<4>(a, b, k64, acc);
  } else {
    MicroKernelOf<kMicroRows>(a, b, k64, acc);
  }
}

// A run of n contiguous 32-bit words of the receptive field (see GatherRow), 16 words per
// masked load and store: no scalar tail, and no byte is read or written outside the run.
XK_TARGET inline void FastCopyRun(const uint32_t* src, int n, uint32_t* dst) {
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    _mm512_mask_storeu_epi32(dst + i, m, _mm512_maskz_loadu_epi32(m, src + i));
  }
}

// Bitpacking with compare-into-mask: bit i of a word is (x[i] < 0) resp. (x[i] < zp); the
// partial last word uses a masked load (masked lanes read as 0 and their bits are cleared).
XK_TARGET inline void QuantizeFloatRows(const float* in, int64_t rows, int cols, int32_t* out) {
  const int words = BitpackedWords(cols);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = in + r * cols;
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + r * words);
    for (int w = 0; w < words; ++w) {
      const int n = cols - 32 * w < 32 ? cols - 32 * w : 32;
      const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
      const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xFFFF : (n <= 16 ? 0 : (1u << (n - 16)) - 1));
      const __m512 x0 = _mm512_maskz_loadu_ps(m0, src + 32 * w);
      const __m512 x1 = _mm512_maskz_loadu_ps(m1, src + 32 * w + 16);
      dst[w] = static_cast<uint32_t>(_mm512_mask_cmp_ps_mask(m0, x0, zero, _CMP_LT_OQ)) |
               static_cast<uint32_t>(_mm512_mask_cmp_ps_mask(m1, x1, zero, _CMP_LT_OQ)) << 16;
    }
  }
}

XK_TARGET inline void QuantizeInt8Rows(const int8_t* in, int64_t rows, int cols,
                                       int32_t zero_point, int32_t* out) {
  const int words = BitpackedWords(cols);
  // Outside [-127, 127] the comparison is all-true or all-false; the scalar loop says so.
  const bool vector = zero_point >= -127 && zero_point <= 127;
  const __m512i zp = _mm512_set1_epi8(static_cast<char>(vector ? zero_point : 0));
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* src = in + r * cols;
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + r * words);
    int w = 0;
    for (; vector && w < words; w += 2) {
      const int n = cols - 32 * w < 64 ? cols - 32 * w : 64;
      const __mmask64 m = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      const __m512i x = _mm512_maskz_loadu_epi8(m, src + 32 * w);
      const uint64_t bits = _mm512_mask_cmpgt_epi8_mask(m, zp, x);
      dst[w] = static_cast<uint32_t>(bits);
      if (w + 1 < words) dst[w + 1] = static_cast<uint32_t>(bits >> 32);
    }
    for (; w < words; ++w) dst[w] = internal::Int8SignWord(src, cols, w, zero_point);
  }
}

// GenericTransformPanel for float and bitpacked output, for the n rows of a micro-kernel
// call at once: a panel's 16 channels per instruction, and its multiplier, bias, thresholds
// and clamps loaded once for all n rows. Multiply and add stay separate instructions (no
// FMA), as in LCE. `first` targets row 0 (pixel first.pixel + r is row r); patterns[r] is
// row r's zero-padding pattern.
template <int kOut, class Target>
XK_TARGET inline void FastTransformRows(const BConvView& p, const int32_t (*acc)[16], int n,
                                        const Target& first, const int32_t* patterns,
                                        void* output) {
  const int slots = p.slots();
  const int64_t depth = p.out_depth;
  const int32_t* int_corr = p.int_correction ? p.int_corrections + first.slot0 : nullptr;
  const __mmask16 valid = static_cast<__mmask16>((1u << first.valid) - 1);
  if (kOut == static_cast<int>(OutputType::kBitpacked)) {
    const __m512i thresholds = _mm512_loadu_si512(p.thresholds + first.slot0);
    uint32_t* out = reinterpret_cast<uint32_t*>(output);
    for (int r = 0; r < n; ++r) {
      __m512i a = _mm512_load_si512(acc[r]);
      if (int_corr != nullptr && patterns[r] >= 0) {
        a = _mm512_add_epi32(a, _mm512_loadu_si512(int_corr + patterns[r] * slots));
      }
      const uint32_t bits = _mm512_cmpgt_epi32_mask(a, thresholds);
      internal::OrPanelBits(out + (first.pixel + r) * depth, first.oc0, first.valid, bits);
    }
    return;
  }
  const __m512i clamp_lo = _mm512_set1_epi32(p.clamp_min), clamp_hi = _mm512_set1_epi32(p.clamp_max);
  const __m512 multiplier = _mm512_loadu_ps(p.multiplier + first.slot0);
  const __m512 bias = _mm512_loadu_ps(p.bias + first.slot0);
  const float* float_corr = p.float_correction ? p.float_corrections + first.slot0 : nullptr;
  const BConvPixelScale e = p.pixel_scale;  // clamp(y * K[pixel], lo, hi), see bconv.h
  const __m512 k_lo = _mm512_set1_ps(e.lo), k_hi = _mm512_set1_ps(e.hi);
  const __m512 res_lo = _mm512_set1_ps(e.residual_lo), res_hi = _mm512_set1_ps(e.residual_hi);
  float* out = reinterpret_cast<float*>(output) + first.oc0;
  for (int r = 0; r < n; ++r) {
    const int64_t pixel = first.pixel + r;
    __m512i a = _mm512_load_si512(acc[r]);
    if (int_corr != nullptr && patterns[r] >= 0) {
      a = _mm512_add_epi32(a, _mm512_loadu_si512(int_corr + patterns[r] * slots));
    }
    const __m512i x = _mm512_max_epi32(_mm512_min_epi32(_mm512_slli_epi32(a, 1), clamp_hi), clamp_lo);
    __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(x), multiplier), bias);
    if (float_corr != nullptr && patterns[r] >= 0) {
      y = _mm512_add_ps(y, _mm512_loadu_ps(float_corr + patterns[r] * slots));
    }
    if (e.scale != nullptr) {
      y = _mm512_mul_ps(y, _mm512_set1_ps(e.scale[pixel]));
      y = _mm512_min_ps(k_hi, _mm512_max_ps(k_lo, y));
      if (e.residual != nullptr) {  // clamp(y + residual, residual_lo, residual_hi)
        const __m512 res = _mm512_maskz_loadu_ps(valid, e.residual + pixel * depth + first.oc0);
        y = _mm512_min_ps(res_hi, _mm512_max_ps(res_lo, _mm512_add_ps(y, res)));
      }
    }
    if (first.valid == 16) {
      _mm512_storeu_ps(out + pixel * depth, y);
    } else {
      _mm512_mask_storeu_ps(out + pixel * depth, valid, y);
    }
  }
}

}  // namespace avx512
}  // namespace xk

#define XK_NS avx512
#include "kernels_impl.inc"
#undef XK_NS

namespace xk {

std::string internal::Avx512Missing() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return "CPUID leaf 1 is not available";
  if (!(ecx & bit_OSXSAVE)) return "the OS does not enable XSAVE (no OSXSAVE)";
  if (__get_cpuid_max(0, nullptr) < 7) return "CPUID leaf 7 is not available";
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  std::string missing;
  if (!(ebx & bit_AVX512F)) missing += " AVX512F";
  if (!(ebx & bit_AVX512BW)) missing += " AVX512BW";
  if (!(ebx & bit_AVX512VL)) missing += " AVX512VL";
  if (!(ecx & bit_AVX512VPOPCNTDQ)) missing += " AVX512_VPOPCNTDQ";
  if (!(ebx & bit_AVX2)) missing += " AVX2";
  if (!(ebx & bit_BMI2)) missing += " BMI2";
  if (!missing.empty()) return "the CPU lacks" + missing;
  // XCR0: SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) state enabled by the OS.
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & 0xE6) != 0xE6) return "the OS does not save the AVX-512 register state (XCR0)";
  return "";
}

const internal::IsaOps* internal::Avx512Ops() { return &avx512::Ops(); }

}  // namespace xk

#else  // !__x86_64__

namespace xk {
const internal::IsaOps* internal::Avx512Ops() { return nullptr; }
std::string internal::Avx512Missing() { return "this build is not for x86-64"; }
}  // namespace xk

#endif
