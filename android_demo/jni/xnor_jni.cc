// JNI shim over native/'s kernels for xnor.tflite.NativeKernels, built freestanding
// (android_demo/jni/build_lib.sh): no libc, no allocator, no threads. Java passes direct
// ByteBuffers (all memory) and splits the work into row ranges that its own executor runs
// (all threads); this file only validates the ranges against the buffers' capacities and
// calls the per-ISA entry points of native/isa_neon.cc (aarch64) or native/isa_portable.cc.
#include <jni.h>

#include <stddef.h>
#include <stdint.h>

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

namespace xk {
namespace internal {
// Only the binary convolution uses per-thread scratch, and this library does not run it.
void* ThreadScratch(int, size_t) { __builtin_trap(); }
}  // namespace internal
}  // namespace xk

namespace {

const xk::internal::IsaOps& Ops() {
  const xk::internal::IsaOps* neon = xk::internal::NeonOps();
  return neon != nullptr ? *neon : xk::internal::PortableOps();
}

void Throw(JNIEnv* env, const char* message) {
  jclass c = env->FindClass("java/lang/IllegalArgumentException");
  if (c != nullptr) env->ThrowNew(c, message);
}

// The address of a direct buffer holding at least `bytes`, or nullptr with an exception.
void* Buffer(JNIEnv* env, jobject buffer, int64_t bytes) {
  if (buffer == nullptr) return Throw(env, "null buffer"), nullptr;
  void* p = env->GetDirectBufferAddress(buffer);
  if (p == nullptr) return Throw(env, "not a direct ByteBuffer"), nullptr;
  if (bytes < 0 || env->GetDirectBufferCapacity(buffer) < bytes) {
    return Throw(env, "buffer smaller than the tensor"), nullptr;
  }
  if ((reinterpret_cast<uintptr_t>(p) & 3) != 0) {
    return Throw(env, "buffer not 4-byte aligned"), nullptr;
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

}  // extern "C"
