// JNI shim over native/'s kernels for xnor.tflite.NativeKernels, built freestanding
// (android_demo/jni/build_lib.sh): no libc, no allocator, no threads. Java passes direct
// ByteBuffers (all memory) and splits the work into row ranges that its own executor runs
// (all threads); this file only validates the ranges against the buffers' capacities and
// calls the per-ISA entry points of native/isa_neon.cc (aarch64) or native/isa_portable.cc,
// and, for LceBconv2d, native/bconv_plan.cc's plan building and task loop (the same code the
// TFLite delegate runs): the plan lives in a Java buffer (its BConvLayout header, then the
// arena), each Java thread brings its own scratch buffer.
#include <jni.h>

#include <stddef.h>
#include <stdint.h>

#include "../../native/bconv.h"
#include "../../native/isa.h"
#include "../../native/kernels.h"
#include "../../native/scratch.h"

#define XK_HIDDEN __attribute__((visibility("hidden")))

// The compiler may emit calls to these for copies and zeroing; there is no libc to link.
extern "C" {
XK_HIDDEN void* memcpy(void* d, const void* s, size_t n) {
  unsigned char* dp = static_cast<unsigned char*>(d);
  const unsigned char* sp = static_cast<const unsigned char*>(s);
  while (n--) *dp++ = *sp++;
  return d;
}
XK_HIDDEN void* memmove(void* d, const void* s, size_t n) {
  unsigned char* dp = static_cast<unsigned char*>(d);
  const unsigned char* sp = static_cast<const unsigned char*>(s);
  if (dp < sp) {
    while (n--) *dp++ = *sp++;
  } else {
    dp += n;
    sp += n;
    while (n--) *--dp = *--sp;
  }
  return d;
}
XK_HIDDEN void* memset(void* d, int c, size_t n) {
  unsigned char* dp = static_cast<unsigned char*>(d);
  while (n--) *dp++ = static_cast<unsigned char>(c);
  return d;
}
// std::round(float) of the kernels' int8 output (x86-64 has no instruction for it):
// rounds half away from zero by adding half an ulp-of-one and clearing the fraction.
XK_HIDDEN float roundf(float x) {
  uint32_t u = __builtin_bit_cast(uint32_t, x);
  const int e = static_cast<int>((u >> 23) & 0xff) - 127;
  if (e >= 23) return x;  // integral, inf or nan
  if (e < 0) {            // |x| < 1: +-1 from 0.5 on, else +-0
    u = (u & 0x80000000u) | (e == -1 ? 0x3f800000u : 0u);
    return __builtin_bit_cast(float, u);
  }
  const uint32_t fraction = 0x007fffffu >> e;
  if ((u & fraction) == 0) return x;
  u += 0x00400000u >> e;
  u &= ~fraction;
  return __builtin_bit_cast(float, u);
}
}

namespace {

const xk::internal::IsaOps& Ops() {
  const xk::internal::IsaOps* neon = xk::internal::NeonOps();
  return neon != nullptr ? *neon : xk::internal::PortableOps();
}

xk::Isa Isa() { return xk::internal::NeonOps() != nullptr ? xk::Isa::kNeon : xk::Isa::kPortable; }

void Throw(JNIEnv* env, const char* message) {
  jclass c = env->FindClass("java/lang/IllegalArgumentException");
  if (c != nullptr) env->ThrowNew(c, message);
}

// The address of a direct buffer holding at least `bytes`, aligned to `align` bytes (4 for
// tensors, 8 for plans and scratch), or nullptr with an exception.
void* Buffer(JNIEnv* env, jobject buffer, int64_t bytes, uintptr_t align = 4) {
  if (buffer == nullptr) return Throw(env, "null buffer"), nullptr;
  void* p = env->GetDirectBufferAddress(buffer);
  if (p == nullptr) return Throw(env, "not a direct ByteBuffer"), nullptr;
  if (bytes < 0 || env->GetDirectBufferCapacity(buffer) < bytes) {
    return Throw(env, "buffer smaller than the tensor"), nullptr;
  }
  if ((reinterpret_cast<uintptr_t>(p) & (align - 1)) != 0) {
    return Throw(env, align == 4 ? "buffer not 4-byte aligned" : "buffer not 8-byte aligned"),
           nullptr;
  }
  return p;
}

// LceBconv2d's spec from Java's int[18]: {batch, inH, inW, channelsIn, groups, channelsOut,
// filterH, filterW, strideH, strideW, dilationH, dilationW, paddingSame, padValue,
// activation, outputType (0 float, 1 int8, 2 bitpacked), floatToRawIntBits(outputScale),
// outputZeroPoint}.
constexpr int kSpecInts = 18;

bool ReadSpec(JNIEnv* env, jintArray array, xk::BConvSpec* s) {
  if (array == nullptr || env->GetArrayLength(array) != kSpecInts) {
    Throw(env, "bconv spec must have 18 ints");
    return false;
  }
  jint v[kSpecInts];
  env->GetIntArrayRegion(array, 0, kSpecInts, v);
  s->batch = v[0], s->in_h = v[1], s->in_w = v[2], s->channels_in = v[3], s->groups = v[4];
  s->channels_out = v[5], s->filter_h = v[6], s->filter_w = v[7];
  s->stride_h = v[8], s->stride_w = v[9], s->dilation_h = v[10], s->dilation_w = v[11];
  s->padding_same = v[12] != 0, s->pad_value = v[13], s->activation = v[14];
  s->output_type = static_cast<xk::OutputType>(v[15]);
  s->output_scale = __builtin_bit_cast(float, static_cast<uint32_t>(v[16]));
  s->output_zero_point = v[17];
  return true;
}

// "<what>. Received: <value>" into `out` (the delegate's wording, without std::string).
void Format(const xk::BConvProblem& p, char* out, int size) {
  int n = 0;
  auto put = [&](char c) {
    if (n < size - 1) out[n++] = c;
  };
  for (const char* c = p.what; *c != '\0'; ++c) put(*c);
  if (p.has_value) {
    for (const char* c = ". Received: "; *c != '\0'; ++c) put(*c);
    int64_t v = p.value;
    if (v < 0) put('-'), v = -v;
    char digits[24];
    int d = 0;
    do digits[d++] = static_cast<char>('0' + v % 10), v /= 10;
    while (v != 0);
    while (d > 0) put(digits[--d]);
  }
  out[n] = '\0';
}

// The layout of `spec`, or false with an IllegalArgumentException naming the problem.
bool Layout(JNIEnv* env, const xk::BConvSpec& spec, xk::BConvLayout* layout) {
  const xk::BConvProblem problem = xk::BConvPlanLayout(Ops(), Isa(), spec, layout);
  if (problem.what == nullptr) return true;
  char message[200];
  Format(problem, message, sizeof message);
  Throw(env, message);
  return false;
}

// The plan buffer starts with the BConvLayout, the arena follows at a 64-byte offset.
constexpr int64_t kHeader = (sizeof(xk::BConvLayout) + 63) / 64 * 64;

// The prepared plan in `buffer`: its header must be exactly what BConvPlanLayout makes of
// the spec it holds (a buffer that was not prepared, or was changed, is rejected).
unsigned char* Plan(JNIEnv* env, jobject buffer, xk::BConvLayout* layout) {
  unsigned char* p = static_cast<unsigned char*>(Buffer(env, buffer, kHeader, 8));
  if (p == nullptr) return nullptr;
  const xk::BConvLayout* stored = reinterpret_cast<const xk::BConvLayout*>(p);
  xk::BConvSpec spec = stored->spec;
  if (xk::BConvPlanLayout(Ops(), Isa(), spec, layout).what != nullptr) {
    return Throw(env, "not a prepared bconv plan"), nullptr;
  }
  const unsigned char* a = reinterpret_cast<const unsigned char*>(layout);
  for (size_t i = 0; i < sizeof(xk::BConvLayout); ++i) {
    if (a[i] != p[i]) return Throw(env, "not a prepared bconv plan"), nullptr;
  }
  if (env->GetDirectBufferCapacity(buffer) < kHeader + layout->arena_bytes) {
    return Throw(env, "bconv plan buffer too small"), nullptr;
  }
  return p;
}

}  // namespace

extern "C" {

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM* vm, void*) {
  JNIEnv* env = nullptr;
  if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
  return JNI_VERSION_1_6;
}

// static native String isa(): the kernels' ISA name ("neon" or "portable").
JNIEXPORT jstring JNICALL Java_xnor_tflite_NativeKernels_isa(JNIEnv* env, jclass) {
  return env->NewStringUTF(Ops().name);
}

// static native void quantize(ByteBuffer in, ByteBuffer out, int rows, int cols,
//                             int rowBegin, int rowEnd): LceQuantize of float rows
// [rowBegin, rowEnd) of a rows x cols tensor into rows x ceil(cols / 32) words.
JNIEXPORT void JNICALL Java_xnor_tflite_NativeKernels_quantize(JNIEnv* env, jclass, jobject in,
                                                               jobject out, jint rows, jint cols,
                                                               jint row_begin, jint row_end) {
  if (rows < 0 || cols < 1 || row_begin < 0 || row_end < row_begin || row_end > rows) {
    return Throw(env, "bad quantize rows");
  }
  const int words = xk::BitpackedWords(cols);
  const float* x = static_cast<const float*>(Buffer(env, in, int64_t{4} * rows * cols));
  if (x == nullptr) return;
  int32_t* y = static_cast<int32_t*>(Buffer(env, out, int64_t{4} * rows * words));
  if (y == nullptr) return;
  Ops().quantize_float(x + int64_t{row_begin} * cols, row_end - row_begin, cols,
                       y + int64_t{row_begin} * words);
}

// static native void bmaxpool(ByteBuffer in, ByteBuffer out, int[] geometry, int rowBegin,
//                             int rowEnd): output rows [rowBegin, rowEnd) (of batch * outH)
// of LceBMaxPool2d; geometry = {batch, inH, inW, words, filterH, filterW, strideH, strideW,
// outH, outW, padTop, padLeft}.
JNIEXPORT void JNICALL Java_xnor_tflite_NativeKernels_bmaxpool(JNIEnv* env, jclass, jobject in,
                                                               jobject out, jintArray geometry,
                                                               jint row_begin, jint row_end) {
  jint g[12];
  if (geometry == nullptr || env->GetArrayLength(geometry) != 12) {
    return Throw(env, "geometry must have 12 ints");
  }
  env->GetIntArrayRegion(geometry, 0, 12, g);
  for (int i = 0; i < 10; ++i) {
    if (g[i] < 1) return Throw(env, "bad max-pool geometry");
  }
  if (g[10] < 0 || g[11] < 0) return Throw(env, "bad max-pool padding");
  xk::BMaxPoolSpec s;
  s.batch = g[0], s.in_h = g[1], s.in_w = g[2], s.words = g[3];
  s.filter_h = g[4], s.filter_w = g[5], s.stride_h = g[6], s.stride_w = g[7];
  const int out_h = g[8], out_w = g[9];
  const int64_t rows = int64_t{s.batch} * out_h;
  if (row_begin < 0 || row_end < row_begin || row_end > rows) {
    return Throw(env, "bad max-pool rows");
  }
  const int32_t* x = static_cast<const int32_t*>(
      Buffer(env, in, int64_t{4} * s.batch * s.in_h * s.in_w * s.words));
  if (x == nullptr) return;
  int32_t* y = static_cast<int32_t*>(Buffer(env, out, int64_t{4} * rows * out_w * s.words));
  if (y == nullptr) return;
  Ops().bmaxpool_rows(s, out_h, out_w, g[10], g[11], x, y, row_begin, row_end);
}

// static native long bconvPlanBytes(int[] spec): the size of the plan buffer for `spec`
// (IllegalArgumentException with the reason for a spec the kernels cannot run).
JNIEXPORT jlong JNICALL Java_xnor_tflite_NativeKernels_bconvPlanBytes(JNIEnv* env, jclass,
                                                                      jintArray spec_ints) {
  xk::BConvSpec spec;
  xk::BConvLayout layout;
  if (!ReadSpec(env, spec_ints, &spec) || !Layout(env, spec, &layout)) return -1;
  return kHeader + layout.arena_bytes;
}

// static native void bconvPrepare(int[] spec, ByteBuffer filter, ByteBuffer multiplier,
//     ByteBuffer bias, ByteBuffer thresholds, ByteBuffer plan): packs the filter
// [channelsOut, filterH, filterW, words per group] and the output transform (multiplier and
// bias for float/int8 output, thresholds for bitpacked output; the others may be null)
// into `plan` (bconvPlanBytes(spec) bytes).
JNIEXPORT void JNICALL Java_xnor_tflite_NativeKernels_bconvPrepare(
    JNIEnv* env, jclass, jintArray spec_ints, jobject filter, jobject multiplier, jobject bias,
    jobject thresholds, jobject plan) {
  xk::BConvSpec spec;
  xk::BConvLayout layout;
  if (!ReadSpec(env, spec_ints, &spec) || !Layout(env, spec, &layout)) return;
  const int64_t channels = spec.channels_out;
  const int32_t* f =
      static_cast<const int32_t*>(Buffer(env, filter, 4 * channels * layout.k32));
  if (f == nullptr) return;
  const float* m = nullptr;
  const float* b = nullptr;
  const int32_t* thr = nullptr;
  if (spec.output_type == xk::OutputType::kBitpacked) {
    thr = static_cast<const int32_t*>(Buffer(env, thresholds, 4 * channels));
    if (thr == nullptr) return;
  } else {
    m = static_cast<const float*>(Buffer(env, multiplier, 4 * channels));
    if (m == nullptr) return;
    b = static_cast<const float*>(Buffer(env, bias, 4 * channels));
    if (b == nullptr) return;
  }
  unsigned char* p = static_cast<unsigned char*>(Buffer(env, plan, kHeader + layout.arena_bytes, 8));
  if (p == nullptr) return;
  xk::BConvLayout* header = reinterpret_cast<xk::BConvLayout*>(p);
  header->spec.batch = 0;  // not a plan until filled
  const xk::BConvProblem problem = xk::BConvPlanFill(Ops(), layout, f, m, b, thr, p + kHeader);
  if (problem.what != nullptr) {
    char message[200];
    Format(problem, message, sizeof message);
    return Throw(env, message);
  }
  const unsigned char* a = reinterpret_cast<const unsigned char*>(&layout);
  for (size_t i = 0; i < sizeof(xk::BConvLayout); ++i) p[i] = a[i];
}

// static native long bconvQuery(ByteBuffer plan, int what, int threads): of a prepared plan,
// 0 output height, 1 output width, 2 output depth (channels or bitpacked words), 3 scratch
// bytes per running task range, 4 the number of tasks when split for `threads`, 5 output
// bytes.
JNIEXPORT jlong JNICALL Java_xnor_tflite_NativeKernels_bconvQuery(JNIEnv* env, jclass,
                                                                  jobject plan, jint what,
                                                                  jint threads) {
  xk::BConvLayout layout;
  if (Plan(env, plan, &layout) == nullptr) return -1;
  switch (what) {
    case 0:
      return layout.out_h;
    case 1:
      return layout.out_w;
    case 2:
      return layout.out_depth;
    case 3:
      return layout.scratch_bytes;
    case 4:
      if (threads < 1) return Throw(env, "threads must be >= 1"), -1;
      return xk::BConvSplitFor(layout, threads).tasks;
    case 5:
      return xk::BConvOutputBytes(layout);
  }
  return Throw(env, "unknown bconv query"), -1;
}

// static native void bconvRun(ByteBuffer plan, ByteBuffer in, ByteBuffer out,
//     ByteBuffer scratch, int threads, int taskBegin, int taskEnd): tasks [taskBegin,
// taskEnd) of the split for `threads`; `scratch` (bconvQuery 3 bytes) belongs to this call.
JNIEXPORT void JNICALL Java_xnor_tflite_NativeKernels_bconvRun(JNIEnv* env, jclass, jobject plan,
                                                               jobject in, jobject out,
                                                               jobject scratch, jint threads,
                                                               jint task_begin, jint task_end) {
  xk::BConvLayout layout;
  const unsigned char* p = Plan(env, plan, &layout);
  if (p == nullptr) return;
  if (threads < 1) return Throw(env, "threads must be >= 1");
  const xk::BConvSplit split = xk::BConvSplitFor(layout, threads);
  if (task_begin < 0 || task_end < task_begin || task_end > split.tasks) {
    return Throw(env, "bad bconv tasks");
  }
  const xk::BConvSpec& s = layout.spec;
  const int32_t* x = static_cast<const int32_t*>(
      Buffer(env, in, int64_t{4} * s.batch * s.in_h * s.in_w * layout.in_words));
  if (x == nullptr) return;
  void* y = Buffer(env, out, xk::BConvOutputBytes(layout));
  if (y == nullptr) return;
  void* work = Buffer(env, scratch, layout.scratch_bytes, 8);
  if (work == nullptr) return;
  xk::BConvRunTasks(Ops(), layout, p + kHeader, x, y, work, split, task_begin, task_end);
}

}  // extern "C"
