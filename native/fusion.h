// Fused float glue around a binary convolution (issue 13, item 2), independent of TFLite.
//
// The lowering (deploy/lowering) emits, per XNOR layer with input scaling K (eq. 11):
//
//     u = maxpool(v)                     optional MAX_POOL_2D (the pooling before a layer)
//     x = affine(u)                      optional per-channel MUL / ADD (BatchNorm), in order
//     K = box(mean_c |x|)                ABS -> MEAN over channels -> k x k CONV_2D with a
//                                        constant 1/(k*k) filter (or, for dense layers, the
//                                        mean over the whole flattened input -> RESHAPE)
//     y = clamp(LceBconv2d(LceQuantize(x)) * K, lo, hi)      MUL with a fused activation
//
// `KFusion` computes all of it from u (or v: u is then pooled per row chunk, never stored
// whole; float max is exact, so u is TFLite's pooled tensor bit for bit) with one pass over
// u per row chunk (the affine, the
// bitpacking of sign(x) with the ISA's LceQuantize kernel, and the row sums of |x|), a box
// filter over the 1-channel map of means, and the binary convolution with K multiplied
// into its output transform (bconv.h BConvPixelScale). The bitpacked x equals
// LceQuantize's bit for bit (the affine is the same two IEEE operations, no contraction);
// K is summed in double, so y differs from the unfused graph only by the rounding of K
// in TFLite's float MEAN and CONV_2D (< 1e-6 relative).
#ifndef XNOR_KERAS_NATIVE_FUSION_H_
#define XNOR_KERAS_NATIVE_FUSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"

namespace xk {

// One elementwise step of the affine: x = x * values[i % length] or x + values[i % length],
// i the flat index of the element within one batch item.
struct AffineStep {
  enum Kind { kMul = 0, kAdd = 1 } kind = kMul;
  const float* values = nullptr;
  int64_t length = 0;  // 1 (a scalar) or a multiple of `channels`
};

// The box filter of eq. 11 as the CONV_2D that the lowering emits for it: every filter
// value equals `value`; `bias` is the CONV_2D's (0 for the lowering's graphs).
struct BoxFilter {
  int filter_h = 0, filter_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool padding_same = false;
  float value = 0.0f, bias = 0.0f;
};

// TFLite's MAX_POOL_2D from v (in_h x in_w x channels per item) to u: SAME pads with
// -inf (padded taps are ignored), then the clamp of its fused activation.
struct MaxPoolSpec {
  int in_h = 0, in_w = 0, channels = 0;
  int filter_h = 1, filter_w = 1, stride_h = 1, stride_w = 1;
  bool padding_same = false;
  float lo = -__builtin_inff(), hi = __builtin_inff();
};

// Per batch item: the quantized tensor x is in_h x in_w x channels (channels bitpacked by
// LceQuantize), its means of |x| are taken over `mean_length` consecutive values (channels,
// or in_h * in_w * channels for a dense layer), and K has out_h * out_w values (the binary
// convolution's output pixels): box-filtered means (`box`), or the means themselves.
struct KFusionSpec {
  int in_h = 0, in_w = 0, channels = 0;
  std::vector<AffineStep> affine;  // applied in order; empty: x = u
  int64_t mean_length = 0;
  bool has_box = false;
  BoxFilter box;
  int out_h = 0, out_w = 0;  // of K (= the binary convolution's output)
  float lo = -__builtin_inff(), hi = __builtin_inff();  // the MUL's fused activation
  bool has_residual = false;  // an ADD of a shortcut after the MUL, with its activation
  float residual_lo = -__builtin_inff(), residual_hi = __builtin_inff();
  bool has_pool = false;  // the kernel reads v and pools it to u (whose flat order is x's;
  MaxPoolSpec pool;       // its pixels of pool.channels tile the rows of `channels`)
};

// Floats per batch item of what the kernel reads: v with a pool, else u.
int64_t KFusionInputValues(const KFusionSpec& spec);

// Validates `spec` (one line, "... Received: ..."), "" if it is consistent.
std::string CheckKFusionSpec(const KFusionSpec& spec);

// Time spent in the two stages of one run (for the delegate's per-node profile).
struct KFusionTimes {
  int64_t prologue_ns = 0;  // affine + bitpacking + sums of |x|
  int64_t box_ns = 0;       // means -> K
};

class KFusion {
 public:
  // `spec` must pass CheckKFusionSpec; `batch` items; returns "" or an error.
  std::string Prepare(const KFusionSpec& spec, int batch);
  // u: batch x in_h x in_w x channels floats (v with a pool) -> bitpacked x (batch x in_h x in_w x
  // BitpackedWords(channels) words, `bits()`) and K (`scale()`, batch x out_h x out_w).
  void RunPrologue(Isa isa, const float* u, ThreadPool* pool, KFusionTimes* times);
  const int32_t* bits() const { return bits_.data(); }
  // The epilogue for RunBConv: y = clamp(y * K[pixel], lo, hi) (+ residual, clamped, when
  // the spec has one: `residual` is then [batch, out_h, out_w, channels_out] floats).
  BConvPixelScale scale(const float* residual = nullptr) const;
  int batch() const { return batch_; }

 private:
  void RowsTask(Isa isa, const float* u, int64_t row_begin, int64_t row_end);
  KFusionSpec spec_;
  int batch_ = 0;
  int words_ = 0;
  std::vector<std::vector<float>> affine_values_;  // each step tiled to a multiple of channels
  std::vector<int32_t> bits_;
  std::vector<double> row_sums_;  // sum of |x| per row of `channels`
  std::vector<float> means_;      // per mean group (MEAN's output)
  std::vector<float> k_;          // per output pixel
  std::vector<double> table_;     // the box filter's summed-area table
};

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_FUSION_H_
