// The slice of TensorFlow Lite's C ABI this library relies on, declared here because the
// tensorflow pip wheel ships no TFLite headers and exports no TFLite symbols.
//
// How the kernels reach stock TFLite: through the *external delegate* plugin interface
// (`tf.lite.experimental.load_delegate(path)` dlopens this library and calls
// `tflite_plugin_create_delegate`). Everything after that goes through plain C structs that
// TFLite hands us; we call no TFLite function by symbol, only the function pointers stored
// in `TfLiteContext`. TFLite documents these structs as "semi-ABI stable": fields are only
// ever appended, never reordered. We rely on:
//   * TfLiteIntArray, TfLiteQuantizationParams, TfLiteTensor (sizeof 112 on LP64),
//     TfLiteNode, TfLiteRegistration (passed by value: we declare the largest known form,
//     ending in `inplace_operator`), TfLiteDelegate, TfLiteDelegateParams;
//   * TfLiteContext: tensors_size, GetExecutionPlan, tensors, ResizeTensor, ReportError,
//     GetNodeAndRegistration, ReplaceNodeSubsetsWithDelegateKernels and
//     recommended_num_threads, PreviewDelegatePartitioning (used by the fusion to learn
//     which tensors leave a partition; the other later fields are declared for layout only);
//   * TfLiteConvParams, TfLitePoolParams, TfLiteMulParams, TfLiteAddParams (builtin_op_data.h), read only for
//     nodes the fusion claims;
//   * ResizeTensor taking ownership of a malloc'ed TfLiteIntArray (freed with free());
//   * unresolved custom ops being given a placeholder registration whose custom_name is
//     the op's name, and the delegate flag kTfLiteDelegateFlagsAllowDynamicTensors (1)
//     keeping TFLite from preparing those placeholders before delegation.
// delegate.cc `CheckAbi` validates the layout when the delegate is applied (enum ranges,
// shapes and byte sizes over the whole tensor array, node tensor indices) and makes
// ModifyGraphWithDelegate fail with a message naming this file if anything is off.
//   * enum values: TfLiteStatus, TfLiteType, TfLiteAllocationType, builtin codes
//     CUSTOM = 32 and DELEGATE = 51 (from the .tflite schema, so fixed forever).
// Verified against tensorflow==2.21.0 (tests/test_native.py VERIFIED_TENSORFLOW).
#ifndef XNOR_KERAS_NATIVE_TFLITE_ABI_H_
#define XNOR_KERAS_NATIVE_TFLITE_ABI_H_

#include <cstddef>
#include <cstdint>

extern "C" {

// The enums have a fixed underlying type (int, as TFLite's C enums): TFLite hands us
// values beyond those declared here (e.g. kTfLiteUInt16 = 17), which would otherwise be
// undefined behaviour to load (UBSan, tests/test_native_fuzz.py).
typedef enum : int { kTfLiteOk = 0, kTfLiteError = 1, kTfLiteDelegateError = 2 } TfLiteStatus;

typedef enum : int {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef enum : int {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
} TfLiteAllocationType;

enum {
  kTfLiteBuiltinAdd = 0,
  kTfLiteBuiltinConv2d = 3,
  kTfLiteBuiltinMaxPool2d = 17,
  kTfLiteBuiltinMul = 18,
  kTfLiteBuiltinReshape = 22,
  kTfLiteBuiltinCustom = 32,
  kTfLiteBuiltinMean = 40,
  kTfLiteBuiltinDelegate = 51,
  kTfLiteBuiltinAbs = 101,
};

// builtin_op_data.h: the options of the builtin ops the fusion (fusion_match.h) reads
// from TfLiteNode::builtin_data. TfLitePadding: 0 unknown, 1 SAME, 2 VALID;
// TfLiteFusedActivation: 0 none, 1 relu, 2 relu_n1_to_1, 3 relu6, 4 tanh, 5 sign_bit,
// 6 sigmoid. The delegate cross-checks CONV_2D's options against its tensors' shapes.
enum { kTfLitePaddingSame = 1, kTfLitePaddingValid = 2 };

struct TfLiteConvParams {
  int padding;
  int stride_width;
  int stride_height;
  int activation;
  int dilation_width_factor;
  int dilation_height_factor;
  int quantized_bias_type;
};

struct TfLitePoolParams {
  int padding;
  int stride_width;
  int stride_height;
  int filter_width;
  int filter_height;
  int activation;
  // followed by the computed padding, not read
};

struct TfLiteMulParams {
  int activation;
};

struct TfLiteAddParams {
  int activation;
  bool pot_scale_int16;
};

struct TfLiteContext;
struct TfLiteDelegate;

struct TfLiteIntArray {
  int size;
  int data[];
};

struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
};

struct TfLiteQuantization {
  int type;
  void* params;
};

struct TfLiteTensor {
  TfLiteType type;
  void* data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  TfLiteDelegate* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
};

struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  TfLiteDelegate* delegate;
  bool might_have_side_effect;
};

struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* (*async_kernel)(TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
};

struct TfLiteDelegateParams {
  TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
};

struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(TfLiteContext* context, TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(TfLiteContext*, TfLiteTensor* tensor, TfLiteIntArray* new_size);
  void (*ReportError)(TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(TfLiteContext*, int tensors_to_add, int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(TfLiteContext*, int node_index, TfLiteNode** node,
                                         TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(TfLiteContext*,
                                                        TfLiteRegistration registration,
                                                        const TfLiteIntArray* nodes_to_replace,
                                                        TfLiteDelegate* delegate);
  int recommended_num_threads;
  void* (*GetExternalContext)(TfLiteContext*, int);
  void (*SetExternalContext)(TfLiteContext*, int, void*);
  bool allow_fp32_relax_to_fp16;
  void* profiler;
  void* (*AllocatePersistentBuffer)(TfLiteContext* ctx, size_t bytes);
  TfLiteStatus (*AllocateBufferForEval)(TfLiteContext* ctx, size_t bytes, void** ptr);
  TfLiteStatus (*RequestScratchBufferInArena)(TfLiteContext* ctx, size_t bytes, int* buffer_idx);
  void* (*GetScratchBuffer)(TfLiteContext* ctx, int buffer_idx);
  TfLiteStatus (*ResizeTensorExplicit)(TfLiteContext* ctx, TfLiteTensor* tensor, int dims,
                                       const int* shape);
  TfLiteStatus (*PreviewDelegatePartitioning)(TfLiteContext* context,
                                              const TfLiteIntArray* nodes_to_replace,
                                              TfLiteDelegateParams** partition_params_array,
                                              int* num_partitions);
  TfLiteTensor* (*GetTensor)(const TfLiteContext* context, int tensor_idx);
};

struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext*, TfLiteDelegate*, int, TfLiteTensor*);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext*, TfLiteDelegate*, int, TfLiteTensor*);
  void (*FreeBufferHandle)(TfLiteContext*, TfLiteDelegate*, int*);
  int64_t flags;
  void* opaque_delegate_builder;
};

}  // extern "C"

// Bytes per element of the tensor types the library reads (0 for others).
inline size_t TfLiteTypeSize(int type) {
  switch (type) {
    case kTfLiteFloat32:
    case kTfLiteInt32:
      return 4;
    case kTfLiteInt8:
    case kTfLiteUInt8:
    case kTfLiteBool:
      return 1;
    case kTfLiteInt16:
      return 2;
    case kTfLiteInt64:
      return 8;
    default:
      return 0;
  }
}

#if defined(__LP64__) || defined(_LP64)
static_assert(sizeof(TfLiteTensor) == 112, "TfLiteTensor layout (LP64)");
static_assert(offsetof(TfLiteTensor, bytes) == 40, "TfLiteTensor layout (LP64)");
static_assert(offsetof(TfLiteNode, custom_initial_data) == 48, "TfLiteNode layout (LP64)");
static_assert(offsetof(TfLiteRegistration, custom_name) == 48, "TfLiteRegistration layout");
static_assert(offsetof(TfLiteContext, recommended_num_threads) == 72, "TfLiteContext layout");
static_assert(offsetof(TfLiteContext, PreviewDelegatePartitioning) == 152, "TfLiteContext layout");
#endif

#endif  // XNOR_KERAS_NATIVE_TFLITE_ABI_H_
