// Binary convolution plans in caller-provided memory. Everything declared here compiles
// freestanding (no libc, no allocator, no exceptions, no standard containers): the TFLite
// delegate (kernels.cc: PrepareBConv / RunBConv, memory from std::vector, threads from its
// ThreadPool) and the Android JNI library (android_demo/jni/xnor_jni.cc: memory from Java
// direct ByteBuffers, threads from a Java executor) both build their plans and run their
// tasks with these functions, so each step has one home.
//
//   1. BConvPlanLayout: validates the spec and computes the geometry, the fused output
//      transform's clamp, and the sizes and offsets of everything the plan keeps: the
//      arena (packed filter, multipliers, biases or thresholds, zero-padding corrections)
//      and the scratch one running task needs.
//   2. BConvPlanFill: packs the filter for the ISA and fills the arena.
//   3. BConvSplitFor + BConvRunTasks: the work as tasks (pixel blocks x channel-panel
//      chunks); tasks are independent, so any partition of them over threads gives the
//      same bytes, each concurrent caller bringing its own scratch.
#ifndef XNOR_KERAS_NATIVE_BCONV_H_
#define XNOR_KERAS_NATIVE_BCONV_H_

#include <stddef.h>
#include <stdint.h>

namespace xk {

enum class Isa { kPortable = 0, kAvx2 = 1, kNeon = 2, kAvx512 = 3 };

enum class OutputType { kFloat = 0, kInt8 = 1, kBitpacked = 2 };
// Fused activation, encoded as in the .tflite schema (ActivationFunctionType).
enum Activation { kActNone = 0, kActRelu = 1, kActReluN1To1 = 2, kActRelu6 = 3 };

struct BConvSpec {
  int batch = 1, in_h = 0, in_w = 0, channels_in = 0, groups = 1;
  int channels_out = 0, filter_h = 0, filter_w = 0;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool padding_same = false;
  int pad_value = 0;  // SAME padding with 0 (needs a correction) or with +1 (free)
  int activation = kActNone;
  OutputType output_type = OutputType::kFloat;
  float output_scale = 1.0f;  // int8 output only
  int32_t output_zero_point = 0;
};

// TFLite's SAME / VALID window arithmetic. Returns the output size and the padding before
// the first element.
void WindowGeometry(bool same, int in_size, int filter_size, int stride, int dilation,
                    int* out_size, int* pad_before);

// The plan without its arrays: plain data, so it can be copied into any memory (the JNI
// library keeps it at the start of a Java buffer) and compared byte for byte.
struct BConvLayout {
  BConvSpec spec;
  Isa isa = Isa::kPortable;
  int out_h = 0, out_w = 0, pad_top = 0, pad_left = 0;
  int in_words = 0;      // words per input pixel
  int group_words = 0;   // words per input pixel and group (filter's last dim)
  int oc_per_group = 0;
  int panels_per_group = 0;  // 16-channel panels
  int k32 = 0, k64 = 0;      // depth in 32- and 64-bit words
  int backtransform = 0;     // K = kh * kw * channels_in / groups
  int out_depth = 0;         // channels_out, or its bitpacked words
  int block_pixels = 0;      // pixels per im2col block (multiple of the micro-kernel rows)
  int micro_rows = 0;        // the micro-kernel's rows (BConvSplitFor's granularity)
  int a_row_words = 0;       // 64-bit words per packed activation row
  int panel_words = 0;       // 64-bit words per packed 16-channel filter panel
  int32_t clamp_min = 0, clamp_max = 0;
  // SAME zero padding: per output pixel a pattern index (-1 for interior pixels) and per
  // pattern and slot either an exact accumulator correction or LCE's float correction.
  // Patterns are (row run, column run) pairs: the taps outside the input depend on the
  // output row through a run index and on the column through another.
  bool int_correction = false, float_correction = false;
  int row_runs = 0, col_runs = 0, n_patterns = 0;
  // Byte offsets into the arena (-1 where unused), each 64-byte aligned.
  int64_t packed_filter_at = -1, multiplier_at = -1, bias_at = -1, thresholds_at = -1;
  int64_t pixel_pattern_at = -1, int_corrections_at = -1, float_corrections_at = -1;
  int64_t arena_bytes = 0;    // what the plan keeps
  int64_t scratch_bytes = 0;  // what one running task needs (64-byte aligned parts)
  // Per padded channel slot (group * panels_per_group * 16 + channel in group).
  int slots() const { return spec.groups * panels_per_group * 16; }
};

// An optional epilogue of float output (issue 13, fused glue): every value of output pixel
// `pixel` (flat index over batch, out_h, out_w) is multiplied by scale[pixel] after the
// output transform and then clamped to [lo, hi]; i.e. MUL(bconv_out, K) with a fused
// activation, K = the input scaling of eq. 11 with one value per output pixel. With a
// `residual` ([pixels, channels_out] floats, e.g. a ResNet shortcut), residual[i] is then
// added and the sum clamped to [residual_lo, residual_hi] (ADD with a fused activation).
struct BConvPixelScale {
  const float* scale = nullptr;
  float lo = -__builtin_inff(), hi = __builtin_inff();
  const float* residual = nullptr;
  float residual_lo = -__builtin_inff(), residual_hi = __builtin_inff();
};

// A layout with its arrays, as the kernels read it.
struct BConvView : BConvLayout {
  const uint64_t* packed_filter = nullptr;
  const float* multiplier = nullptr;
  const float* bias = nullptr;
  const int32_t* thresholds = nullptr;
  const int32_t* pixel_pattern = nullptr;
  const int32_t* int_corrections = nullptr;
  const float* float_corrections = nullptr;
  BConvPixelScale pixel_scale;  // per-run epilogue (float output only); scale == nullptr: none
};

// One task's scratch: packed activation rows, one gathered receptive field, pixel patterns.
struct BConvScratch {
  uint64_t* a = nullptr;
  uint32_t* raw = nullptr;
  int32_t* patterns = nullptr;
};

// A problem with a spec or its tensors: `what` is nullptr when there is none; otherwise the
// message is "<what>. Received: <value>" when has_value, else "<what>".
struct BConvProblem {
  const char* what = nullptr;
  int value = 0;
  bool has_value = false;
};

namespace internal {
struct IsaOps;
}

// Step 1. `ops` is the ISA's table (its micro-kernel rows and panel formats).
BConvProblem BConvPlanLayout(const internal::IsaOps& ops, Isa isa, const BConvSpec& spec,
                             BConvLayout* layout);
// Step 2: `filter` is [channels_out, kh, kw, group_words] words; multiplier/bias
// ([channels_out] floats) are needed for float/int8 output and thresholds ([channels_out]
// int32) for bitpacked output; `arena` holds layout.arena_bytes, 8-byte aligned.
BConvProblem BConvPlanFill(const internal::IsaOps& ops, const BConvLayout& layout,
                           const int32_t* filter, const float* multiplier, const float* bias,
                           const int32_t* thresholds, void* arena);
BConvView BConvViewOf(const BConvLayout& layout, const void* arena);
BConvScratch BConvScratchIn(const BConvLayout& layout, void* scratch);

// Tasks per thread that a parallel op aims for: with dynamic scheduling, the threads finish
// within about one task of each other, so more tasks waste less time at the end of an op,
// fewer cost less per-task overhead (a block's im2col rows are gathered per chunk).
constexpr int kTasksPerThread = 4;

// Step 3: tasks = blocks x chunks; task t is pixel block t / chunks and the channel panels
// [c * per_chunk, min(panels, (c + 1) * per_chunk)) with c = t % chunks. With more than one
// thread and few pixel blocks the panels are split too (bitpacked output only at 32-channel
// word boundaries, so tasks never share an output word).
struct BConvSplit {
  int task_pixels = 0;   // pixels per task's block (<= the layout's block_pixels)
  int64_t blocks = 0, tasks = 0;
  int panels = 0, chunks = 1, per_chunk = 0;
};
BConvSplit BConvSplitFor(const BConvLayout& layout, int threads);
// Runs tasks [task_begin, task_end) of `split`: input [batch, in_h, in_w, in_words] words;
// output [batch, out_h, out_w, out_depth] of float / int8 / int32 words; `scratch` holds
// layout.scratch_bytes, 8-byte aligned, used by this caller only. `pixel_scale` (float
// output only; nullptr: none) is the optional epilogue above.
void BConvRunTasks(const internal::IsaOps& ops, const BConvLayout& layout, const void* arena,
                   const int32_t* input, void* output, void* scratch, const BConvSplit& split,
                   int64_t task_begin, int64_t task_end,
                   const BConvPixelScale* pixel_scale = nullptr);

// Bytes of the output tensor (0 for a layout that failed).
int64_t BConvOutputBytes(const BConvLayout& layout);

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_BCONV_H_
