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
 * Kind 3 (LceBconv2d): the 18 spec ints of NativeKernels.bconvPlanBytes, the output's byte
 * count, the filter words [channelsOut * filterH * filterW * words per group], multiplier,
 * bias (floats) and thresholds (int32s) [channelsOut] each, the input words, the expected
 * output bytes (padded to whole int32s). A bconv is prepared into a plan buffer, then run
 * twice: its tasks for 3 threads in 3 ranges with 3 scratch buffers (as Java's executor
 * runs them), and for 1 thread in one range; both must give the expected bytes.
 * Quantize and max-pool cases run split into 3 row ranges and must give the expected bytes
 * exactly. Prints one line per failure and a summary; exit 1 on failure. */
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
typedef jlong (*PlanBytesFn)(JNIEnv *, jclass, jintArray);
typedef void (*PrepareFn)(JNIEnv *, jclass, jintArray, jobject, jobject, jobject, jobject, jobject);
typedef jlong (*QueryFn)(JNIEnv *, jclass, jobject, jint, jint);
typedef void (*RunFn)(JNIEnv *, jclass, jobject, jobject, jobject, jobject, jint, jint, jint);
static PlanBytesFn plan_bytes;
static PrepareFn prepare;
static QueryFn query;
static RunFn run;

static void *aligned(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes + 64) != 0) { fprintf(stderr, "harness: out of memory\n"); exit(2); }
  return p;
}

/* One LceBconv2d case: 1 if the library's output differs from `want` or it threw. */
static int bconv_case(int32_t *spec, size_t out_bytes, void *filter, size_t filter_n,
                      void *mul, void *bias, void *thr, size_t cout, void *in, size_t in_n,
                      const void *want) {
  FakeIntArray spec_array = {18, spec};
  FakeBuffer f = {filter, (jlong)(4 * filter_n)}, m = {mul, (jlong)(4 * cout)},
             b = {bias, (jlong)(4 * cout)}, t = {thr, (jlong)(4 * cout)},
             x = {in, (jlong)(4 * in_n)};
  thrown = 0;
  jlong bytes = plan_bytes(&env_value, NULL, (jintArray)&spec_array);
  if (thrown) return 1;
  FakeBuffer plan = {aligned((size_t)bytes), bytes};
  prepare(&env_value, NULL, (jintArray)&spec_array, (jobject)&f, (jobject)&m, (jobject)&b,
          (jobject)&t, (jobject)&plan);
  int bad = thrown || query(&env_value, NULL, (jobject)&plan, 5, 1) != (jlong)out_bytes;
  jlong scratch_bytes = query(&env_value, NULL, (jobject)&plan, 3, 1);
  for (int threads = 3; !bad && threads >= 1; threads -= 2) {
    FakeBuffer out = {aligned(out_bytes), (jlong)out_bytes};
    memset(out.addr, 0x5a, out_bytes);
    jlong tasks = query(&env_value, NULL, (jobject)&plan, 4, threads);
    for (int r = 0; r < threads; r++) {
      FakeBuffer scratch = {aligned((size_t)scratch_bytes), scratch_bytes};
      memset(scratch.addr, 0xa5, (size_t)scratch_bytes);
      run(&env_value, NULL, (jobject)&plan, (jobject)&x, (jobject)&out, (jobject)&scratch,
          threads, (jint)(tasks * r / threads), (jint)(tasks * (r + 1) / threads));
      free(scratch.addr);
    }
    bad = thrown || memcmp(out.addr, want, out_bytes) != 0;
    free(out.addr);
  }
  free(plan.addr);
  return bad;
}

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
  plan_bytes = (PlanBytesFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_bconvPlanBytes");
  prepare = (PrepareFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_bconvPrepare");
  query = (QueryFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_bconvQuery");
  run = (RunFn)dlsym(lib, "Java_xnor_tflite_NativeKernels_bconvRun");
  if (!on_load || !isa || !quantize || !bmaxpool || !plan_bytes || !prepare || !query || !run) {
    printf("missing JNI symbols\n");
    return 1;
  }
  if (on_load(&vm_value, NULL) != JNI_VERSION_1_6) { printf("JNI_OnLoad failed\n"); return 1; }
  printf("isa: %s\n", (const char *)isa(&env_value, NULL));

  cases = fopen(argv[2], "rb");
  if (!cases) { perror(argv[2]); return 2; }
  int32_t kind;
  int n_cases[4] = {0, 0, 0, 0}, failures = 0;
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
    } else if (kind == 3) {
      int32_t spec[19];
      if (fread(spec, 4, 19, cases) != 19) return 2;
      const size_t cin = (size_t)spec[3], groups = (size_t)spec[4], cout = (size_t)spec[5];
      const size_t words = (cin + 31) / 32, gw = groups == 1 ? words : cin / groups / 32;
      const size_t filter_n = cout * (size_t)spec[6] * (size_t)spec[7] * gw;
      const size_t x_n = (size_t)spec[0] * (size_t)spec[1] * (size_t)spec[2] * words;
      const size_t out_bytes = (size_t)spec[18];
      void *filter = read_words(filter_n), *mul = read_words(cout), *bias = read_words(cout);
      void *thr = read_words(cout), *x = read_words(x_n);
      void *want = read_words((out_bytes + 3) / 4);
      n_cases[3]++;
      values += (long long)(spec[15] == 1 ? out_bytes : out_bytes / 4);  /* int8: bytes */
      if (bconv_case(spec, out_bytes, filter, filter_n, mul, bias, thr, cout, x, x_n, want)) {
        failures++;
        printf("FAIL case %d (kind 3)%s%s\n", n_cases[1] + n_cases[2] + n_cases[3],
               thrown ? ": threw " : "", thrown ? thrown_message : "");
      }
      free(filter); free(mul); free(bias); free(thr); free(x); free(want);
      continue;
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
  /* ... and bconv plans that were not prepared, and outputs too small for the plan. */
  int32_t spec[18] = {1, 3, 3, 32, 1, 16, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0x3f800000, 0};
  FakeIntArray spec_array = {18, spec};
  thrown = 0;
  jlong bytes = plan_bytes(&env_value, NULL, (jintArray)&spec_array);
  int32_t filter[16 * 9], input[9];
  float ones[16];
  for (int i = 0; i < 16; i++) ones[i] = 1.0f;
  memset(filter, 0, sizeof filter);
  memset(input, 0, sizeof input);
  FakeBuffer plan = {aligned((size_t)bytes), bytes}, f = {filter, sizeof filter},
             m = {ones, sizeof ones}, x = {input, sizeof input};
  memset(plan.addr, 0, (size_t)bytes);
  void *scratch_mem = aligned(1 << 16);
  void *out_mem = aligned(4 * 9 * 16);
  FakeBuffer scratch = {scratch_mem, 1 << 16}, out = {out_mem, 4 * 9 * 16 - 4};
  run(&env_value, NULL, (jobject)&plan, (jobject)&x, (jobject)&out, (jobject)&scratch, 1, 0, 1);
  rejected += thrown;
  thrown = 0;
  prepare(&env_value, NULL, (jintArray)&spec_array, (jobject)&f, (jobject)&m, (jobject)&m, NULL,
          (jobject)&plan);
  int prepared = !thrown;
  run(&env_value, NULL, (jobject)&plan, (jobject)&x, (jobject)&out, (jobject)&scratch, 1, 0, 1);
  rejected += thrown && prepared;
  thrown = 0;
  spec[3] = 0;  /* channels_in 0: the delegate's error message */
  plan_bytes(&env_value, NULL, (jintArray)&spec_array);
  rejected += thrown && strcmp(thrown_message, "channels_in must be >= 1. Received: 0") == 0;
  free(plan.addr); free(scratch_mem); free(out_mem);
  printf("quantize cases: %d, bmaxpool cases: %d, bconv cases: %d, output words compared: "
         "%lld, failures: %d, bad buffers rejected: %d/5\n", n_cases[1], n_cases[2], n_cases[3],
         values, failures, rejected);
  dlclose(lib);
  return failures != 0 || rejected != 5;
}
