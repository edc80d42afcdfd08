// Internal: the per-ISA entry points that kernels.cc dispatches to. Each isa_*.cc compiles
// kernels_impl.inc inside its own namespace with its own micro-kernel and target flags.
#ifndef XNOR_KERAS_NATIVE_ISA_H_
#define XNOR_KERAS_NATIVE_ISA_H_

#include <cstdint>

#include "kernels.h"

namespace xk {
namespace internal {

struct IsaOps {
  const char* name;
  int micro_rows;         // output pixels per micro-kernel call
  int a_words_per_k;      // 64-bit words per depth step in a packed activation row
  int b_words_per_k;      // 64-bit words per depth step in a packed 16-channel filter panel
  // Packs 16 filter rows of k32 words (nullptr rows are padding channels) into a panel.
  void (*pack_panel)(const uint32_t* const* rows, int k32, int k64, uint64_t* out);
  // Runs one task of a binary convolution: the output pixels of im2col block `block` for
  // the 16-channel panels [panel_begin, panel_end) (see BConvTaskTyped).
  void (*bconv_task)(const BConvPlan& plan, const int32_t* input, void* output, int64_t block,
                     int panel_begin, int panel_end);
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

}  // namespace internal
}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_ISA_H_
