/* Test harness for libxnor_kernels.so outside a JVM: an aarch64 (or x86-64) glibc program
 * that dlopen()s the library, hands it a fake JavaVM/JNIEnv (OpenJDK's jni.h tables, only the
 * functions the shim calls filled in; the rest are NULL so a stray call crashes the run), and
 * replays cases written by tests/test_android_demo_jni.py:
 *
 *   harness LIB.so CASES.bin       (under qemu-aarch64-static -L /usr/aarch64-linux-gnu)
 *
 * CASES.bin: records of little-endian int32s. Kind 1 (LceQuantize): rows, cols, the float
 * input [rows * cols], the expected words [rows * ceil(cols / 32)]. Kind 2 (LceBMaxPool2d):
 * the 12 geometry ints of NativeKernels.bmaxpool, the input words, the expected words.
 * Each case runs split into 3 row ranges (as Java's executor would split it) and must give
 * the expected bytes exactly. Prints one line per failure and a summary; exit 1 on failure. */
#include <dlfcn.h>
#include <jni.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { void *addr; jlong capacity; } FakeBuffer;   /* a direct ByteBuffer */
typedef struct { jint length; jint *data; } FakeIntArray;

static int thrown;
static char thrown_message[200];

static jclass fake_find_class(JNIEnv *env, const char *name) {
  (void)env; static int cls; (void)name; return (jclass)&cls;
}
static jint fake_throw_new(JNIEnv *env, jclass c, const char *message) {
  (void)env; (void)c; thrown = 1;
  snprintf(thrown_message, sizeof thrown_message, "%s", message);
  return 0;
}
static void *fake_buffer_address(JNIEnv *env, jobject b) {
  (void)env; return b ? ((FakeBuffer *)b)->addr : NULL;
}
static jlong fake_buffer_capacity(JNIEnv *env, jobject b) {
  (void)env; return b ? ((FakeBuffer *)b)->capacity : -1;
}
static jsize fake_array_length(JNIEnv *env, jarray a) { (void)env; return ((FakeIntArray *)a)->length; }
static void fake_int_region(JNIEnv *env, jintArray a, jsize start, jsize n, jint *out) {
  (void)env; memcpy(out, ((FakeIntArray *)a)->data + start, sizeof(jint) * (size_t)n);
}
static jstring fake_new_string(JNIEnv *env, const char *s) {
  (void)env; static char copy[64]; snprintf(copy, sizeof copy, "%s", s); return (jstring)copy;
}

static struct JNINativeInterface_ env_table;
static JNIEnv env_value = &env_table;
static jint fake_get_env(JavaVM *vm, void **env, jint version) {
  (void)vm; if (version > JNI_VERSION_1_6) return JNI_EVERSION;
  *env = &env_value; return JNI_OK;
}
static struct JNIInvokeInterface_ vm_table;
static JavaVM vm_value = &vm_table;

typedef jint (*OnLoad)(JavaVM *, void *);
typedef jstring (*IsaFn)(JNIEnv *, jclass);
typedef void (*QuantizeFn)(JNIEnv *, jclass, jobject, jobject, jint, jint, jint, jint);
typedef void (*MaxPoolFn)(JNIEnv *, jclass, jobject, jobject, jintArray, jint, jint);

static FILE *cases;
static void *read_words(size_t n) {
  void *p = malloc(4 * n + 4);
  if (!p || fread(p, 4, n, cases) != n) { fprintf(stderr, "harness: truncated case file\n"); exit(2); }
  return p;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: harness LIB.so CASES.bin\n"); return 2; }
  env_table.FindClass = fake_find_class;
  env_table.ThrowNew = fake_throw_new;
  env_table.GetDirectBufferAddress = fake_buffer_address;
  env_table.GetDirectBufferCapacity = fake_buffer_capacity;
  env_table.GetArrayLength = fake_array_length;
  env_table.GetIntArrayRegion = fake_int_region;
  env_table.NewStringUTF = fake_new_string;
  vm_table.GetEnv = fake_get_env;

  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { printf("dlopen failed: %s\n", dlerror()); return 1; }
  OnLoad on_load = (OnLoad)dlsym(lib, "JNI_OnLoad");
  IsaFn isa = (IsaFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_isa");
  QuantizeFn quantize = (QuantizeFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_quantize");
  MaxPoolFn bmaxpool = (MaxPoolFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_bmaxpool");
  if (!on_load || !isa || !quantize || !bmaxpool) { printf("missing JNI symbols\n"); return 1; }
  if (on_load(&vm_value, NULL) != JNI_VERSION_1_6) { printf("JNI_OnLoad failed\n"); return 1; }
  printf("isa: %s\n", (const char *)isa(&env_value, NULL));

  cases = fopen(argv[2], "rb");
  if (!cases) { perror(argv[2]); return 2; }
  int32_t kind;
  int n_cases[3] = {0, 0, 0}, failures = 0;
  long long values = 0;
  while (fread(&kind, 4, 1, cases) == 1) {
    int32_t head[12];
    size_t in_n, out_n, rows;
    if (kind == 1) {
      if (fread(head, 4, 2, cases) != 2) return 2;
      rows = (size_t)head[0];
      in_n = rows * (size_t)head[1];
      out_n = rows * (size_t)((head[1] + 31) / 32);
    } else if (kind == 2) {
      if (fread(head, 4, 12, cases) != 12) return 2;
      rows = (size_t)head[0] * (size_t)head[8];
      in_n = (size_t)head[0] * head[1] * head[2] * head[3];
      out_n = rows * (size_t)head[9] * head[3];
    } else {
      fprintf(stderr, "harness: bad case kind %d\n", kind); return 2;
    }
    void *in = read_words(in_n), *want = read_words(out_n);
    void *got = malloc(4 * out_n + 4);
    memset(got, 0x5a, 4 * out_n);
    FakeBuffer in_buf = {in, (jlong)(4 * in_n)}, out_buf = {got, (jlong)(4 * out_n)};
    FakeIntArray geometry = {12, head};
    thrown = 0;
    for (int t = 0; t < 3; t++) {
      jint begin = (jint)(rows * t / 3), end = (jint)(rows * (t + 1) / 3);
      if (kind == 1) quantize(&env_value, NULL, (jobject)&in_buf, (jobject)&out_buf, head[0], head[1], begin, end);
      else bmaxpool(&env_value, NULL, (jobject)&in_buf, (jobject)&out_buf, (jintArray)&geometry, begin, end);
    }
    n_cases[kind]++;
    values += (long long)out_n;
    if (thrown || memcmp(got, want, 4 * out_n) != 0) {
      failures++;
      printf("FAIL case %d (kind %d)%s%s\n", n_cases[1] + n_cases[2], kind,
             thrown ? ": threw " : "", thrown ? thrown_message : "");
    }
    free(in); free(want); free(got);
  }
  /* The shim rejects what would make it read or write outside the buffers. */
  int32_t word = 0;
  FakeBuffer small = {&word, 4}, heap = {NULL, 0};
  thrown = 0;
  quantize(&env_value, NULL, (jobject)&small, (jobject)&small, 2, 32, 0, 2);
  int rejected = thrown;
  thrown = 0;
  quantize(&env_value, NULL, (jobject)&heap, (jobject)&small, 1, 1, 0, 1);
  rejected += thrown;
  printf("quantize cases: %d, bmaxpool cases: %d, output words compared: %lld, "
         "failures: %d, bad buffers rejected: %d/2\n", n_cases[1], n_cases[2], values, failures,
         rejected);
  dlclose(lib);
  return failures != 0 || rejected != 2;
}
