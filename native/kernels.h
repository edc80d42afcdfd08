// Binary (1-bit) kernels with the semantics of Larq Compute Engine's custom ops, independent
// of TFLite: LceQuantize (bitpacking), LceDequantize, LceBMaxPool2d and LceBconv2d.
//
// Data format (LCE's): activations and filters are bitpacked along channels into 32-bit
// words, little-endian bit order, bit 1 meaning -1 and bit 0 meaning +1; unused bits of a
// pixel's last word are 0. A binary convolution computes, per output pixel and channel, the
// XOR-popcount `acc` of the input window against the filter (the number of disagreeing
// signs), so the {-1,+1} dot product is K - 2 * acc with K = kh * kw * channels_in / groups.
//
// Every ISA (portable C++, AVX2, AVX-512 VPOPCNTDQ, NEON) computes bit-identical results;
// `Isa` picks which.
#ifndef XNOR_KERAS_NATIVE_KERNELS_H_
#define XNOR_KERAS_NATIVE_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bconv.h"

namespace xk {

constexpr Isa kAllIsas[] = {Isa::kPortable, Isa::kAvx2, Isa::kAvx512, Isa::kNeon};

const char* IsaName(Isa isa);
// Whether this build and this CPU can run `isa`.
bool IsaAvailable(Isa isa);
// Why `isa` is not available ("" if it is), e.g. "the CPU lacks AVX512_VPOPCNTDQ".
std::string IsaUnavailableReason(Isa isa);
// `name` ("auto" = the best available, or an IsaName) -> *isa; "" or a one-line error
// for unknown names and for ISAs this build/CPU cannot run (never a silent fallback).
std::string ParseIsa(const std::string& name, Isa* isa);
// The best available ISA, unless the environment variable XNOR_KERAS_NATIVE_ISA names
// another one ("portable", "avx2", "avx512", "neon"). Sets *error for unknown/unavailable names.
Isa SelectIsa(std::string* error);

// A fixed set of worker threads; Run(n, fn) calls fn(0..n-1) spread over the calling
// thread and the workers, and returns when all calls are done. Concurrent Run calls
// (from different threads) are executed one after the other.
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int num_threads() const { return num_threads_; }
  template <class Fn>
  void Run(int num_tasks, const Fn& fn) {
    RunImpl(num_tasks, [](const void* f, int i) { (*static_cast<const Fn*>(f))(i); }, &fn);
  }

 private:
  struct State;
  void RunImpl(int num_tasks, void (*call)(const void*, int), const void* fn);
  int num_threads_;
  std::unique_ptr<State> state_;
};

// The process-wide pool of `num_threads` threads, shared by every delegate that asks for
// that count while one of them holds it: two interpreters in one process (say a model's float
// and int8 variants) then do not keep two sets of workers polling for work on the same cores.
// Interpreters invoked at the same time from different threads take turns per kernel.
std::shared_ptr<ThreadPool> SharedThreadPool(int num_threads);

inline int BitpackedWords(int channels) { return (channels + 31) / 32; }

// LceQuantize: `rows` x `cols` values -> `rows` x BitpackedWords(cols) words; a bit is 1
// iff the value is < 0 (float), < zero_point (int8), or false (bool).
void QuantizeFloat(Isa isa, const float* in, int64_t rows, int cols, int32_t* out);
void QuantizeInt8(Isa isa, const int8_t* in, int64_t rows, int cols, int32_t zero_point,
                  int32_t* out);
void QuantizeBool(const bool* in, int64_t rows, int cols, int32_t* out);

// LceDequantize: bit 0 -> `zero_bit_value`, bit 1 -> `one_bit_value`.
void DequantizeFloat(const int32_t* in, int64_t rows, int cols, float* out);
void DequantizeInt8(const int32_t* in, int64_t rows, int cols, int8_t zero_bit_value,
                    int8_t one_bit_value, int8_t* out);
void DequantizeBool(const int32_t* in, int64_t rows, int cols, bool* out);

// LceBMaxPool2d on bitpacked NHWC data: max over {-1,+1} is the AND of the sign bits; the
// window is clipped to the input (padding never wins).
struct BMaxPoolSpec {
  int batch = 1, in_h = 0, in_w = 0, words = 0;  // words = bitpacked channel words
  int filter_h = 0, filter_w = 0, stride_h = 1, stride_w = 1;
  bool padding_same = false;
};
void BMaxPool(Isa isa, const BMaxPoolSpec& spec, const int32_t* in, int32_t* out,
              int* out_h, int* out_w, ThreadPool* pool);

// A binary convolution's plan (see bconv.h) and the memory it owns.
struct BConvPlan : BConvLayout {
  std::vector<uint64_t> arena;
};

// Validates `spec` and builds a plan. `filter` is [channels_out, kh, kw, group_words]
// words; multiplier/bias ([channels_out] floats) are needed for float/int8 output and
// thresholds ([channels_out] int32) for bitpacked output. Returns "" or an error message.
std::string PrepareBConv(Isa isa, const BConvSpec& spec, const int32_t* filter,
                         const float* multiplier, const float* bias, const int32_t* thresholds,
                         BConvPlan* plan);
// Runs the convolution: input [batch, in_h, in_w, in_words] words; output
// [batch, out_h, out_w, out_depth] of float / int8 / int32 words. The tasks of
// BConvSplitFor(plan, pool threads) run on the pool, each with its thread's scratch.
// `pixel_scale`: the optional float-output epilogue of bconv.h (BConvPixelScale).
void RunBConv(const BConvPlan& plan, const int32_t* input, void* output, ThreadPool* pool,
              const BConvPixelScale* pixel_scale = nullptr);

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_KERNELS_H_
