// Internal: the per-ISA entry points that kernels.cc dispatches to. Each isa_*.cc compiles
// kernels_impl.inc inside its own namespace with its own micro-kernel and target flags.
#ifndef XNOR_KERAS_NATIVE_ISA_H_
#define XNOR_KERAS_NATIVE_ISA_H_

#include <cstdint>
#include <string>

#include "bconv.h"
#include "kernels.h"

namespace xk {
namespace internal {

// Small scalar helpers shared by every ISA. They carry no target attribute, so any
// out-of-line copy the linker keeps is baseline code, safe on every CPU.

// 64-bit depth word k of a filter row of k32 32-bit words (zero past the end / for a
// missing row).
inline uint64_t PanelWord(const uint32_t* row, int k32, int k) {
  if (row == nullptr) return 0;
  const uint64_t lo = row[2 * k];
  const uint64_t hi = 2 * k + 1 < k32 ? row[2 * k + 1] : 0;
  return lo | hi << 32;
}

// The plain panel format (portable, NEON, AVX-512): word k of channel c at out[k * 16 + c].
inline void PackPanelInOrder(const uint32_t* const* rows, int k32, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) {
    for (int c = 0; c < 16; ++c) out[k * 16 + c] = PanelWord(rows[c], k32, k);
  }
}

// The plain activation row format: the k64 raw words as they are.
inline void CopyARow(const uint64_t* raw, int k64, uint64_t* out) {
  for (int k = 0; k < k64; ++k) out[k] = raw[k];
}

// Bits i < `valid` of `bits` become output channels oc0 + i of a bitpacked pixel.
inline void OrPanelBits(uint32_t* words, int oc0, int valid, uint32_t bits) {
  if ((oc0 & 15) == 0) {
    words[oc0 >> 5] |= bits << (oc0 & 31);
  } else {
    for (int i = 0; i < valid; ++i) {
      if (bits >> i & 1) words[(oc0 + i) >> 5] |= 1u << ((oc0 + i) & 31);
    }
  }
}

// Bitpacked word w of an int8 row of `cols` values: bit i is (x[32 w + i] < zero_point).
inline uint32_t Int8SignWord(const int8_t* src, int cols, int w, int32_t zero_point) {
  uint32_t bits = 0;
  for (int i = 32 * w; i < cols && i < 32 * w + 32; ++i) {
    bits |= static_cast<uint32_t>(static_cast<int32_t>(src[i]) < zero_point) << (i - 32 * w);
  }
  return bits;
}

struct IsaOps {
  const char* name;
  int micro_rows;         // output pixels per micro-kernel call
  int a_words_per_k;      // 64-bit words per depth step in a packed activation row
  int b_words_per_k;      // 64-bit words per depth step in a packed 16-channel filter panel
  // Packs 16 filter rows of k32 words (nullptr rows are padding channels) into a panel.
  void (*pack_panel)(const uint32_t* const* rows, int k32, int k64, uint64_t* out);
  // Runs one task of a binary convolution: output pixels [m0, m0 + rows) (rows <=
  // block_pixels) for the 16-channel panels [panel_begin, panel_end) (see BConvTaskTyped).
  void (*bconv_task)(const BConvView& plan, const BConvScratch& scratch, const int32_t* input,
                     void* output, int64_t m0, int rows, int panel_begin, int panel_end);
  void (*quantize_float)(const float* in, int64_t rows, int cols, int32_t* out);
  void (*quantize_int8)(const int8_t* in, int64_t rows, int cols, int32_t zero_point,
                        int32_t* out);
  // Output rows (batch * out_h) [row_begin, row_end) of a binary max-pool.
  void (*bmaxpool_rows)(const BMaxPoolSpec& spec, int out_h, int out_w, int pad_top,
                        int pad_left, const int32_t* in, int32_t* out, int64_t row_begin,
                        int64_t row_end);
};

const IsaOps& PortableOps();
const IsaOps* Avx2Ops();  // nullptr unless built for x86-64
// Which popcount Avx2Ops() returns (process-wide; for benchmarks and tests that compare
// the two). A plan must be run under the variant it was prepared with: the packed filter
// formats differ. The default is kAvx2Vpshufb.
enum Avx2Popcount { kAvx2Vpshufb = 0, kAvx2HarleySeal = 1 };
void SetAvx2Popcount(int variant);
const IsaOps* NeonOps();  // nullptr unless built for aarch64
// AVX-512 with VPOPCNTDQ (isa_avx512.cc): nullptr unless built for x86-64.
const IsaOps* Avx512Ops();
// Why this CPU/OS cannot run Avx512Ops() (CPUID: AVX512F, AVX512BW, AVX512VL,
// AVX512_VPOPCNTDQ, AVX2, BMI2; XGETBV: opmask and zmm state enabled), "" if it can.
std::string Avx512Missing();

}  // namespace internal
}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_ISA_H_
