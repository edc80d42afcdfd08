// A TFLite external delegate that runs LCE's custom ops (LceQuantize, LceDequantize,
// LceBconv2d, LceBMaxPool2d) with this library's kernels inside stock TensorFlow's
// tf.lite interpreter; all other ops stay with TFLite (and its default XNNPACK delegate,
// which TFLite applies after user delegates).
//
// Python: tf.lite.experimental.load_delegate("libxnor_kernels.so", {"num_threads": "2"}).
// Options: num_threads (default: the interpreter's num_threads), isa (default: best or
// $XNOR_KERAS_NATIVE_ISA), fuse ("on", the default, or "off": claim and fuse the float glue
// of fusion.h around the binary convolutions, or leave it to TFLite -- the unfused graph
// is the fused kernels' oracle). See tflite_abi.h for the ABI this relies on.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "flexmap.h"
#include "fusion.h"
#include "fusion_match.h"
#include "fusion_tflite.h"
#include "kernels.h"
#include "tflite_abi.h"

namespace xk {
namespace {

constexpr const char* kQuantize = "LceQuantize";
constexpr const char* kDequantize = "LceDequantize";
constexpr const char* kBconv = "LceBconv2d";
constexpr const char* kBMaxPool = "LceBMaxPool2d";
constexpr const char* kKernelName = "XnorKerasBinaryKernels";

enum class OpKind { kQuantize = 0, kDequantize = 1, kBconv = 2, kBMaxPool = 3 };
constexpr const char* kOpNames[] = {kQuantize, kDequantize, kBconv, kBMaxPool};

bool KindOf(const TfLiteRegistration* reg, OpKind* kind) {
  if (reg == nullptr || reg->builtin_code != kTfLiteBuiltinCustom || reg->custom_name == nullptr) {
    return false;
  }
  for (int k = 0; k < 4; ++k) {
    if (std::strcmp(reg->custom_name, kOpNames[k]) == 0) {
      *kind = static_cast<OpKind>(k);
      return true;
    }
  }
  return false;
}

// Time spent in one node's kernel (profiling; see xnor_keras_delegate_profile). Nodes of a
// fused pattern carry its LceBconv2d's index in `fused_into`; the pattern's time is split
// over its LceQuantize (affine, bitpacking, sums of |x|), its K node (the box filter) and
// its LceBconv2d (the convolution with K in its output transform); the others get 0.
struct NodeProfile {
  std::string op;
  int fused_into = -1;
  std::atomic<int64_t> runs{0};
  std::atomic<int64_t> nanoseconds{0};

  void Add(int64_t ns) {
    nanoseconds.fetch_add(ns, std::memory_order_relaxed);
    runs.fetch_add(1, std::memory_order_relaxed);
  }
};

struct DelegateState {
  TfLiteDelegate delegate{};
  Isa isa = Isa::kPortable;
  int num_threads = 0;  // 0: follow the interpreter
  bool fuse = true;     // option "fuse"
  // What the fusion did, over every graph this delegate was applied to (for the info JSON).
  std::vector<std::pair<KMatch, KFusionSpec>> fused;
  std::vector<NotFused> not_fused;
  // The matches of the graph being delegated now, by node; read by Partition::Init, which
  // TFLite calls from inside ReplaceNodeSubsetsWithDelegateKernels.
  std::map<int, const std::pair<KMatch, KFusionSpec>*> pending;
  std::mutex mu;
  int nodes[4] = {0, 0, 0, 0};
  int partitions = 0;  // delegate kernels: runs of consecutive LCE ops
  int threads_used = 1;
  std::atomic<int64_t> invocations{0};
  std::atomic<int64_t> nanoseconds{0};  // spent in our kernels
  std::map<int, std::shared_ptr<ThreadPool>> pools;  // by thread count (SharedThreadPool)
  std::map<int, NodeProfile> profile;  // by TFLite node index (std::map: stable addresses)

  NodeProfile* Profile(int node_index, const char* op, int fused_into = -1) {
    std::lock_guard<std::mutex> lock(mu);
    NodeProfile& p = profile[node_index];
    p.op = op;
    p.fused_into = fused_into;
    return &p;
  }

  ThreadPool* Pool(int threads) {
    std::lock_guard<std::mutex> lock(mu);
    std::shared_ptr<ThreadPool>& pool = pools[threads];
    if (!pool) pool = SharedThreadPool(threads);
    threads_used = threads;
    return pool.get();
  }
};

std::vector<int> Dims(const TfLiteIntArray* a) {
  return a == nullptr ? std::vector<int>() : std::vector<int>(a->data, a->data + a->size);
}

int64_t NumElements(const std::vector<int>& dims) {
  int64_t n = 1;
  for (int d : dims) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

struct OpNode {
  OpKind kind;
  int node_index = 0;
  std::vector<int> inputs, outputs;
  // LceBconv2d / LceBMaxPool2d options
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int filter_h = 0, filter_w = 0;
  bool padding_same = false;
  int pad_value = 0, channels_in = 0, activation = 0;
  // Prepared state
  BConvPlan plan;
  std::vector<int> plan_input_dims;
  BMaxPoolSpec pool;
  int64_t rows = 0;
  int cols = 0;
  int8_t zero_bit_value = 0, one_bit_value = 0;
  NodeProfile* profile = nullptr;
};

// A K pattern (fusion.h) run as one kernel: its LceBconv2d's OpNode and the fused prologue.
struct FusedOp {
  KMatch match;
  KFusionSpec spec;
  OpNode bconv;
  KFusion fusion;
  std::vector<int> plan_dims;  // the root's dims the plans were made for
  std::vector<int> root_dims;  // the root's dims when the pattern was matched
  NodeProfile* prologue = nullptr;  // the LceQuantize's entry
  NodeProfile* box = nullptr;       // the K node's entry
  std::vector<NodeProfile*> rest;   // every other node's entry (0 ns)
};

// One entry of a partition's schedule: an LCE op, or a fused pattern (at the place of its
// last node, the MUL or the residual ADD, so every input of the pattern is ready).
struct Step {
  int op = -1;
  int fused = -1;
};

// A partition of consecutive binary ops handed to us by TFLite. Tensors produced and
// consumed only inside it live in our own buffers (TFLite does not allocate them).
class Partition {
 public:
  Partition(DelegateState* state) : state_(state) {}

  TfLiteStatus Init(TfLiteContext* context, const TfLiteDelegateParams* params) {
    for (int i = 0; i < params->output_tensors->size; ++i) {
      tflite_outputs_.insert(params->output_tensors->data[i]);
    }
    for (int i = 0; i < params->nodes_to_replace->size; ++i) {
      const int index = params->nodes_to_replace->data[i];
      TfLiteNode* node = nullptr;
      TfLiteRegistration* reg = nullptr;
      if (context->GetNodeAndRegistration(context, index, &node, &reg) != kTfLiteOk) {
        return Error(context, "cannot read node %d", index);
      }
      const auto pending = state_->pending.find(index);
      if (pending != state_->pending.end()) {
        if (index == pending->second->first.last && InitFused(context, *pending->second) != kTfLiteOk) {
          return kTfLiteError;
        }
        continue;  // the pattern's other nodes run inside its fused kernel
      }
      OpNode op;
      if (!KindOf(reg, &op.kind)) return Error(context, "node %d is not an LCE op", index);
      if (InitOp(context, index, node, op.kind, &op) != kTfLiteOk) return kTfLiteError;
      op.profile = state_->Profile(index, kOpNames[static_cast<int>(op.kind)]);
      steps_.push_back({static_cast<int>(ops_.size()), -1});
      ops_.push_back(std::move(op));
    }
    return kTfLiteOk;
  }

  TfLiteStatus InitOp(TfLiteContext* context, int index, TfLiteNode* node, OpKind kind,
                      OpNode* op) {
    op->kind = kind;
    op->node_index = index;
    op->inputs = Dims(node->inputs);
    op->outputs = Dims(node->outputs);
    return ParseOptions(context, node, op);
  }

  TfLiteStatus InitFused(TfLiteContext* context, const std::pair<KMatch, KFusionSpec>& pattern) {
    std::unique_ptr<FusedOp> f(new FusedOp);
    f->match = pattern.first;
    f->spec = pattern.second;
    const KMatch& m = f->match;
    f->root_dims = DimsOf(context, m.root);
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, m.bconv, &node, &reg) != kTfLiteOk ||
        InitOp(context, m.bconv, node, OpKind::kBconv, &f->bconv) != kTfLiteOk) {
      return Error(context, "node %d: cannot read the fused LceBconv2d", m.bconv);
    }
    for (int n : m.nodes) {
      if (context->GetNodeAndRegistration(context, n, &node, &reg) != kTfLiteOk) {
        return Error(context, "cannot read node %d", n);
      }
      const char* name = GraphOpName(n == m.quantize ? GraphOp::kLceQuantize
                                     : n == m.bconv  ? GraphOp::kLceBconv2d
                                                     : GraphOp::kOther);
      if (reg->builtin_code != kTfLiteBuiltinCustom) name = BuiltinName(reg->builtin_code);
      NodeProfile* p = state_->Profile(n, name, m.bconv);
      if (n == m.quantize) {
        f->prologue = p;
      } else if (n == m.k_node) {
        f->box = p;
      } else if (n == m.bconv) {
        f->bconv.profile = p;
      } else {
        f->rest.push_back(p);
      }
    }
    steps_.push_back({-1, static_cast<int>(fused_.size())});
    fused_.push_back(std::move(f));
    return kTfLiteOk;
  }

  static const char* BuiltinName(int code) {
    switch (code) {
      case kTfLiteBuiltinMul:
        return "MUL";
      case kTfLiteBuiltinAdd:
        return "ADD";
      case kTfLiteBuiltinAbs:
        return "ABS";
      case kTfLiteBuiltinMean:
        return "MEAN";
      case kTfLiteBuiltinConv2d:
        return "CONV_2D";
      case kTfLiteBuiltinReshape:
        return "RESHAPE";
      case kTfLiteBuiltinMaxPool2d:
        return "MAX_POOL_2D";
      default:
        return "builtin";
    }
  }

  TfLiteStatus Prepare(TfLiteContext* context) {
    const int want = state_->num_threads > 0 ? state_->num_threads
                                             : (context->recommended_num_threads > 0
                                                    ? context->recommended_num_threads
                                                    : 1);
    pool_ = state_->Pool(want);
    for (const Step& step : steps_) {  // in order: a step's input shapes are set before it
      if (step.fused >= 0) {
        if (PrepareFused(context, fused_[step.fused].get()) != kTfLiteOk) return kTfLiteError;
        continue;
      }
      OpNode& op = ops_[step.op];
      TfLiteStatus status = kTfLiteError;
      switch (op.kind) {
        case OpKind::kQuantize:
          status = PrepareQuantize(context, &op);
          break;
        case OpKind::kDequantize:
          status = PrepareDequantize(context, &op);
          break;
        case OpKind::kBconv:
          status = PrepareBconv(context, &op);
          break;
        case OpKind::kBMaxPool:
          status = PrepareBMaxPool(context, &op);
          break;
      }
      if (status != kTfLiteOk) return status;
    }
    AssignSlots();
    return kTfLiteOk;
  }

  TfLiteStatus Invoke(TfLiteContext* context) {
    const auto start = std::chrono::steady_clock::now();
    const TfLiteStatus status = Run(context);
    const auto spent = std::chrono::steady_clock::now() - start;
    state_->invocations.fetch_add(1, std::memory_order_relaxed);
    state_->nanoseconds.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count(),
        std::memory_order_relaxed);
    return status;
  }

 private:
  static int64_t Since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                start)
        .count();
  }

  TfLiteStatus Run(TfLiteContext* context) {
    for (const Step& step : steps_) {
      if (step.fused >= 0) {
        if (RunFused(context, *fused_[step.fused]) != kTfLiteOk) return kTfLiteError;
        continue;
      }
      OpNode& op = ops_[step.op];
      const auto start = std::chrono::steady_clock::now();
      const TfLiteStatus status = RunOp(context, op);
      op.profile->Add(Since(start));
      if (status != kTfLiteOk) return status;
    }
    return kTfLiteOk;
  }

  TfLiteStatus RunFused(TfLiteContext* context, FusedOp& f) {
    const void* in = DataOf(context, f.match.root);
    void* out = DataOf(context, f.match.output);
    if (in == nullptr || out == nullptr) {
      return Error(context, "node %d: tensor data not allocated", f.match.mul);
    }
    const float* residual = nullptr;
    if (f.match.residual >= 0) {
      residual = static_cast<const float*>(DataOf(context, f.match.residual));
      if (residual == nullptr) return Error(context, "node %d: residual not allocated", f.match.last);
    }
    KFusionTimes times;
    f.fusion.RunPrologue(state_->isa, static_cast<const float*>(in), pool_, &times);
    const auto start = std::chrono::steady_clock::now();
    const BConvPixelScale scale = f.fusion.scale(residual);
    RunBConv(f.bconv.plan, f.fusion.bits(), out, pool_, &scale);
    f.bconv.profile->Add(Since(start));
    f.prologue->Add(times.prologue_ns);
    f.box->Add(times.box_ns);
    for (NodeProfile* p : f.rest) p->Add(0);
    return kTfLiteOk;
  }

  // The pattern's shapes follow its input's batch; everything else is the model's.
  TfLiteStatus PrepareFused(TfLiteContext* context, FusedOp* f) {
    const KMatch& m = f->match;
    const KFusionSpec& s = f->spec;
    if (TypeOf(context, m.root) != kTfLiteFloat32 || TypeOf(context, m.output) != kTfLiteFloat32) {
      return Error(context, "node %d: the fused pattern needs float32 input and output", m.mul);
    }
    const std::vector<int> dims = DimsOf(context, m.root);
    const int64_t per_item = KFusionInputValues(s);
    const int64_t elements = NumElements(dims);
    if (dims.empty() || elements < per_item || elements % per_item != 0 ||
        elements / per_item > (1 << 20)) {
      return Error(context, "node %d: fused input %s is not a batch of %dx%dx%d", m.mul,
                   ShapeString(dims).c_str(), s.has_pool ? s.pool.in_h : s.in_h,
                   s.has_pool ? s.pool.in_w : s.in_w, s.has_pool ? s.pool.channels : s.channels);
    }
    // Only the batch may change: the unfused affine would broadcast another shape.
    if (dims.size() != f->root_dims.size() ||
        !std::equal(dims.begin() + 1, dims.end(), f->root_dims.begin() + 1)) {
      return Error(context, "node %d: fused input %s is not the %s the pattern was matched for "
                   "(only its batch may change)", m.mul, ShapeString(dims).c_str(),
                   ShapeString(f->root_dims).c_str());
    }
    const int batch = static_cast<int>(elements / per_item);
    if (f->plan_dims != dims) {
      const std::string problem = f->fusion.Prepare(s, batch);
      if (!problem.empty()) return Error(context, "node %d: %s", m.mul, problem.c_str());
      const std::vector<int> in_dims = {batch, s.in_h, s.in_w, BitpackedWords(s.channels)};
      if (PrepareBconv(context, &f->bconv, &in_dims) != kTfLiteOk) return kTfLiteError;
      if (f->bconv.plan.out_h != s.out_h || f->bconv.plan.out_w != s.out_w ||
          f->bconv.plan.spec.output_type != OutputType::kFloat) {
        return Error(context, "node %d: the fused LceBconv2d's output is not K's shape", m.mul);
      }
      f->plan_dims = dims;
    }
    const std::vector<int> out_dims = {batch, s.out_h, s.out_w, f->bconv.plan.out_depth};
    if (m.residual >= 0 && (TypeOf(context, m.residual) != kTfLiteFloat32 ||
                            DimsOf(context, m.residual) != out_dims)) {
      return Error(context, "node %d: the residual is not float32 %s", m.last,
                   ShapeString(out_dims).c_str());
    }
    return SetOutputShape(context, m.output, out_dims);
  }

  TfLiteStatus RunOp(TfLiteContext* context, OpNode& op) {
    const TfLiteType in_type = TypeOf(context, op.inputs[0]);
    const TfLiteType out_type = TypeOf(context, op.outputs[0]);
    const void* in = DataOf(context, op.inputs[0]);
    void* out = DataOf(context, op.outputs[0]);
    if (in == nullptr || out == nullptr) {
      return Error(context, "node %d: tensor data not allocated", op.node_index);
    }
    switch (op.kind) {
      case OpKind::kQuantize:
        if (in_type == kTfLiteFloat32) {
          QuantizeFloat(state_->isa, static_cast<const float*>(in), op.rows, op.cols,
                        static_cast<int32_t*>(out));
        } else if (in_type == kTfLiteInt8) {
          QuantizeInt8(state_->isa, static_cast<const int8_t*>(in), op.rows, op.cols,
                       Tensor(context, op.inputs[0])->params.zero_point,
                       static_cast<int32_t*>(out));
        } else {
          QuantizeBool(static_cast<const bool*>(in), op.rows, op.cols,
                       static_cast<int32_t*>(out));
        }
        break;
      case OpKind::kDequantize:
        if (out_type == kTfLiteFloat32) {
          DequantizeFloat(static_cast<const int32_t*>(in), op.rows, op.cols,
                          static_cast<float*>(out));
        } else if (out_type == kTfLiteInt8) {
          DequantizeInt8(static_cast<const int32_t*>(in), op.rows, op.cols, op.zero_bit_value,
                         op.one_bit_value, static_cast<int8_t*>(out));
        } else {
          DequantizeBool(static_cast<const int32_t*>(in), op.rows, op.cols,
                         static_cast<bool*>(out));
        }
        break;
      case OpKind::kBconv:
        RunBConv(op.plan, static_cast<const int32_t*>(in), out, pool_);
        break;
      case OpKind::kBMaxPool: {
        int oh, ow;
        BMaxPool(state_->isa, op.pool, static_cast<const int32_t*>(in),
                 static_cast<int32_t*>(out), &oh, &ow, pool_);
        break;
      }
    }
    return kTfLiteOk;
  }

  // A tensor that never leaves the partition; its memory is slot `slot` of slots_.
  struct Buffer {
    TfLiteType type = kTfLiteNoType;
    std::vector<int> dims;
    size_t words = 0;
    int slot = -1;
  };

  // The activation tensors a step reads and writes (constants aside).
  std::vector<int> StepInputs(const Step& step) const {
    if (step.op >= 0) return {ops_[step.op].inputs[0]};
    const KMatch& m = fused_[step.fused]->match;
    return m.residual >= 0 ? std::vector<int>{m.root, m.residual} : std::vector<int>{m.root};
  }
  int StepOutput(const Step& step) const {
    return step.op >= 0 ? ops_[step.op].outputs[0] : fused_[step.fused]->match.output;
  }

  // Gives the internal tensors memory, reusing a slot once its tensor's last reader has
  // run (like TFLite's arena): the fused patterns make large float tensors internal, and
  // fresh memory for each would leave every write a cache miss.
  void AssignSlots() {
    std::map<int, size_t> last_read;
    for (size_t i = 0; i < steps_.size(); ++i) {
      for (int t : StepInputs(steps_[i])) last_read[t] = i;
    }
    std::vector<int> holder(slots_.size(), -1);
    for (auto& entry : internal_) entry.second.slot = -1;
    for (size_t i = 0; i < steps_.size(); ++i) {
      for (int& h : holder) {
        const auto it = last_read.find(h);
        if (h >= 0 && (it == last_read.end() || it->second < i)) h = -1;
      }
      const auto out = internal_.find(StepOutput(steps_[i]));
      if (out == internal_.end()) continue;
      size_t slot = 0;
      while (slot < holder.size() && holder[slot] >= 0) ++slot;
      if (slot == holder.size()) {
        holder.push_back(-1);
        slots_.emplace_back();
      }
      holder[slot] = out->first;
      if (slots_[slot].size() < out->second.words + 8) slots_[slot].resize(out->second.words + 8);
      out->second.slot = static_cast<int>(slot);
    }
  }

  TfLiteStatus Error(TfLiteContext* context, const char* format, ...)
      __attribute__((format(printf, 3, 4))) {
    char message[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof(message), format, args);
    va_end(args);
    context->ReportError(context, "xnor_keras native kernels: %s", message);
    return kTfLiteError;
  }

  static TfLiteTensor* Tensor(TfLiteContext* context, int index) {
    return &context->tensors[index];
  }

  bool Internal(int index) const { return internal_.count(index) != 0; }

  TfLiteType TypeOf(TfLiteContext* context, int index) const {
    return Tensor(context, index)->type;
  }

  std::vector<int> DimsOf(TfLiteContext* context, int index) const {
    auto it = internal_.find(index);
    if (it != internal_.end()) return it->second.dims;
    return Dims(Tensor(context, index)->dims);
  }

  void* DataOf(TfLiteContext* context, int index) {
    auto it = internal_.find(index);
    if (it != internal_.end()) {
      if (it->second.slot < 0) return nullptr;
      // 64-byte aligned (each slot has 8 spare words), as TFLite's arena: the kernels'
      // 512-bit stores must not straddle cache lines.
      const uintptr_t p = reinterpret_cast<uintptr_t>(slots_[it->second.slot].data());
      return reinterpret_cast<void*>((p + 63) / 64 * 64);
    }
    return Tensor(context, index)->data;
  }

  // Gives output `index` the shape `dims`: resizes TFLite's tensor, or (for a tensor
  // that never leaves the partition) our buffer.
  TfLiteStatus SetOutputShape(TfLiteContext* context, int index, const std::vector<int>& dims) {
    TfLiteTensor* t = Tensor(context, index);
    if (tflite_outputs_.count(index) == 0) {
      Buffer& b = internal_[index];
      b.type = t->type;
      b.dims = dims;
      const size_t bytes = TfLiteTypeSize(t->type) * static_cast<size_t>(NumElements(dims));
      b.words = (bytes + 7) / 8 + 1;  // memory: AssignSlots, once every shape is known
      return kTfLiteOk;
    }
    if (Dims(t->dims) == dims) return kTfLiteOk;
    // ResizeTensor takes ownership of a malloc'ed array (TfLiteIntArrayCreate == malloc).
    TfLiteIntArray* a = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(int) * (1 + dims.size())));
    a->size = static_cast<int>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i) a->data[i] = dims[i];
    return context->ResizeTensor(context, t, a);
  }

  bool Constant(TfLiteContext* context, int index) const {
    if (index < 0 || Internal(index)) return false;
    const TfLiteTensor* t = Tensor(context, index);
    return (t->allocation_type == kTfLiteMmapRo || t->allocation_type == kTfLitePersistentRo) &&
           t->data != nullptr;
  }

  TfLiteStatus ParseOptions(TfLiteContext* context, TfLiteNode* node, OpNode* op) {
    const size_t expected_inputs = op->kind == OpKind::kBconv ? 5 : 1;
    if (op->inputs.size() != expected_inputs || op->outputs.size() != 1) {
      return Error(context, "node %d (%s): expected %zu inputs and 1 output, got %zu and %zu",
                   op->node_index, kOpNames[static_cast<int>(op->kind)], expected_inputs,
                   op->inputs.size(), op->outputs.size());
    }
    if (op->inputs[0] < 0 || op->outputs[0] < 0) {
      return Error(context, "node %d: missing input or output tensor", op->node_index);
    }
    if (op->kind != OpKind::kBconv && op->kind != OpKind::kBMaxPool) return kTfLiteOk;
    FlexMap options(node->custom_initial_data,
                    static_cast<size_t>(node->custom_initial_data_size));
    if (!options.ok()) {
      return Error(context, "node %d: custom options are not a FlexBuffers map",
                   op->node_index);
    }
    auto get = [&](const char* key, int* out) {
      int64_t v;
      // Bounded so that no later int arithmetic on an option can overflow.
      if (!options.GetInt(key, &v) || v < -(1 << 24) || v > (1 << 24)) return false;
      *out = static_cast<int>(v);
      return true;
    };
    int padding = -1;
    bool ok = get("padding", &padding) && get("stride_height", &op->stride_h) &&
              get("stride_width", &op->stride_w);
    if (op->kind == OpKind::kBconv) {
      ok = ok && get("dilation_height_factor", &op->dilation_h) &&
           get("dilation_width_factor", &op->dilation_w) && get("pad_values", &op->pad_value) &&
           get("channels_in", &op->channels_in) &&
           get("fused_activation_function", &op->activation);
    } else {
      ok = ok && get("filter_height", &op->filter_h) && get("filter_width", &op->filter_w);
    }
    if (!ok) {
      return Error(context, "node %d: missing or out-of-range (beyond 2^24) custom option",
                   op->node_index);
    }
    if (padding != 0 && padding != 1) {
      return Error(context, "node %d: unknown padding %d", op->node_index, padding);
    }
    op->padding_same = padding == 0;  // schema: SAME = 0, VALID = 1
    return kTfLiteOk;
  }

  TfLiteStatus PrepareQuantize(TfLiteContext* context, OpNode* op) {
    const TfLiteType in_type = TypeOf(context, op->inputs[0]);
    if (in_type != kTfLiteFloat32 && in_type != kTfLiteInt8 && in_type != kTfLiteBool) {
      return Error(context, "node %d: LceQuantize input must be float32, int8 or bool",
                   op->node_index);
    }
    if (TypeOf(context, op->outputs[0]) != kTfLiteInt32) {
      return Error(context, "node %d: LceQuantize output must be int32", op->node_index);
    }
    std::vector<int> dims = DimsOf(context, op->inputs[0]);
    if (dims.empty()) return Error(context, "node %d: scalar input", op->node_index);
    op->cols = dims.back();
    op->rows = NumElements(dims) / std::max(1, op->cols);
    dims.back() = BitpackedWords(op->cols);
    return SetOutputShape(context, op->outputs[0], dims);
  }

  TfLiteStatus PrepareDequantize(TfLiteContext* context, OpNode* op) {
    const TfLiteType out_type = TypeOf(context, op->outputs[0]);
    if (TypeOf(context, op->inputs[0]) != kTfLiteInt32 ||
        (out_type != kTfLiteFloat32 && out_type != kTfLiteInt8 && out_type != kTfLiteBool)) {
      return Error(context, "node %d: LceDequantize must map int32 to float32, int8 or bool",
                   op->node_index);
    }
    // The unpacked channel count cannot be inferred; it comes from the model (as in LCE).
    const std::vector<int> in_dims = DimsOf(context, op->inputs[0]);
    const std::vector<int> out_dims = Dims(Tensor(context, op->outputs[0])->dims);
    bool ok = !in_dims.empty() && in_dims.size() == out_dims.size() &&
              in_dims.back() == BitpackedWords(out_dims.back());
    for (size_t i = 0; ok && i + 1 < in_dims.size(); ++i) ok = in_dims[i] == out_dims[i];
    if (!ok) {
      return Error(context, "node %d: LceDequantize shapes %s -> %s do not match",
                   op->node_index, ShapeString(in_dims).c_str(), ShapeString(out_dims).c_str());
    }
    op->cols = out_dims.back();
    op->rows = NumElements(out_dims) / std::max(1, op->cols);
    if (out_type == kTfLiteInt8) {
      const TfLiteQuantizationParams q = Tensor(context, op->outputs[0])->params;
      const int offset = static_cast<int>(std::round(1.0f / q.scale));
      op->zero_bit_value = static_cast<int8_t>(std::min(127, q.zero_point + offset));
      op->one_bit_value = static_cast<int8_t>(std::max(-128, q.zero_point - offset));
    }
    return SetOutputShape(context, op->outputs[0], out_dims);
  }

  TfLiteStatus PrepareBMaxPool(TfLiteContext* context, OpNode* op) {
    const std::vector<int> dims = DimsOf(context, op->inputs[0]);
    if (dims.size() != 4 || TypeOf(context, op->inputs[0]) != kTfLiteInt32 ||
        TypeOf(context, op->outputs[0]) != kTfLiteInt32) {
      return Error(context, "node %d: LceBMaxPool2d needs a 4-D int32 input and output",
                   op->node_index);
    }
    if (op->stride_h < 1 || op->stride_w < 1 || op->filter_h < 1 || op->filter_w < 1) {
      return Error(context, "node %d: LceBMaxPool2d strides and filter must be >= 1",
                   op->node_index);
    }
    BMaxPoolSpec& s = op->pool;
    s.batch = dims[0];
    s.in_h = dims[1];
    s.in_w = dims[2];
    s.words = dims[3];
    s.filter_h = op->filter_h;
    s.filter_w = op->filter_w;
    s.stride_h = op->stride_h;
    s.stride_w = op->stride_w;
    s.padding_same = op->padding_same;
    int oh, ow;
    BMaxPool(state_->isa, s, nullptr, nullptr, &oh, &ow, nullptr);
    if (oh < 1 || ow < 1) return Error(context, "node %d: empty pooling output", op->node_index);
    return SetOutputShape(context, op->outputs[0], {dims[0], oh, ow, dims[3]});
  }

  // `fused_in_dims`: the input shape of a fused LceBconv2d (whose input and output tensors
  // are never materialized), else nullptr.
  TfLiteStatus PrepareBconv(TfLiteContext* context, OpNode* op,
                            const std::vector<int>* fused_in_dims = nullptr) {
    const std::vector<int> in_dims = fused_in_dims ? *fused_in_dims : DimsOf(context, op->inputs[0]);
    const int filter = op->inputs[1];
    if (in_dims.size() != 4 || (!fused_in_dims && TypeOf(context, op->inputs[0]) != kTfLiteInt32)) {
      return Error(context, "node %d: LceBconv2d input must be 4-D bitpacked int32",
                   op->node_index);
    }
    if (filter < 0 || TypeOf(context, filter) != kTfLiteInt32 || !Constant(context, filter)) {
      return Error(context, "node %d: LceBconv2d filter must be a constant bitpacked int32",
                   op->node_index);
    }
    const std::vector<int> f_dims = DimsOf(context, filter);
    if (f_dims.size() != 4) return Error(context, "node %d: 4-D filter expected", op->node_index);
    const int words = BitpackedWords(op->channels_in);
    if (in_dims[3] != words) {
      return Error(context, "node %d: input has %d words per pixel, channels_in=%d needs %d",
                   op->node_index, in_dims[3], op->channels_in, words);
    }
    int groups = 1;
    if (f_dims[3] != words) {
      if (f_dims[3] <= 0 || words % f_dims[3] != 0) {
        return Error(context, "node %d: filter depth %d does not divide %d input words",
                     op->node_index, f_dims[3], words);
      }
      groups = words / f_dims[3];
    }
    const TfLiteType out_type = TypeOf(context, op->outputs[0]);
    BConvSpec s;
    s.batch = in_dims[0];
    s.in_h = in_dims[1];
    s.in_w = in_dims[2];
    s.channels_in = op->channels_in;
    s.groups = groups;
    s.channels_out = f_dims[0];
    s.filter_h = f_dims[1];
    s.filter_w = f_dims[2];
    s.stride_h = op->stride_h;
    s.stride_w = op->stride_w;
    s.dilation_h = op->dilation_h;
    s.dilation_w = op->dilation_w;
    s.padding_same = op->padding_same;
    s.pad_value = op->pad_value;
    s.activation = op->activation;
    const float* multiplier = nullptr;
    const float* bias = nullptr;
    const int32_t* thresholds = nullptr;
    auto vector_input = [&](int slot, TfLiteType type, const void** data) {
      const int index = op->inputs[slot];
      if (index < 0 || TypeOf(context, index) != type || !Constant(context, index)) return false;
      const std::vector<int> d = DimsOf(context, index);
      if (d.size() != 1 || d[0] != s.channels_out) return false;
      *data = Tensor(context, index)->data;
      return true;
    };
    if (out_type == kTfLiteInt32) {
      s.output_type = OutputType::kBitpacked;
      if (!vector_input(4, kTfLiteInt32, reinterpret_cast<const void**>(&thresholds))) {
        return Error(context, "node %d: bitpacked output needs constant int32 thresholds [%d]",
                     op->node_index, s.channels_out);
      }
    } else if (out_type == kTfLiteFloat32 || out_type == kTfLiteInt8) {
      s.output_type = out_type == kTfLiteFloat32 ? OutputType::kFloat : OutputType::kInt8;
      if (!vector_input(2, kTfLiteFloat32, reinterpret_cast<const void**>(&multiplier)) ||
          !vector_input(3, kTfLiteFloat32, reinterpret_cast<const void**>(&bias))) {
        return Error(context, "node %d: float/int8 output needs constant float32 "
                     "post_activation_multiplier and bias [%d]", op->node_index, s.channels_out);
      }
      if (out_type == kTfLiteInt8) {
        const TfLiteQuantizationParams q = Tensor(context, op->outputs[0])->params;
        s.output_scale = q.scale;
        s.output_zero_point = q.zero_point;
      }
    } else {
      return Error(context, "node %d: LceBconv2d output must be float32, int8 or int32",
                   op->node_index);
    }
    if (op->plan_input_dims != in_dims) {
      const std::string error =
          PrepareBConv(state_->isa, s, static_cast<const int32_t*>(Tensor(context, filter)->data),
                       multiplier, bias, thresholds, &op->plan);
      if (!error.empty()) {
        return Error(context, "node %d (LceBconv2d): %s", op->node_index, error.c_str());
      }
      op->plan_input_dims = in_dims;
    }
    if (fused_in_dims != nullptr) return kTfLiteOk;
    return SetOutputShape(context, op->outputs[0],
                          {s.batch, op->plan.out_h, op->plan.out_w, op->plan.out_depth});
  }

  DelegateState* state_;
  std::vector<OpNode> ops_;
  std::vector<std::unique_ptr<FusedOp>> fused_;
  std::vector<Step> steps_;
  std::set<int> tflite_outputs_;
  std::map<int, Buffer> internal_;
  std::vector<std::vector<uint64_t>> slots_;
  ThreadPool* pool_ = nullptr;  // owned by the delegate
};

// ---------------------------------------------------------- delegate callbacks ---

void* KernelInit(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* state = static_cast<DelegateState*>(params->delegate->data_);
  auto* partition = new Partition(state);
  if (partition->Init(context, params) != kTfLiteOk) {
    delete partition;
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(state->mu);
  state->partitions += 1;
  return partition;
}

void KernelFree(TfLiteContext*, void* buffer) { delete static_cast<Partition*>(buffer); }

TfLiteStatus KernelPrepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data == nullptr) return kTfLiteError;
  return static_cast<Partition*>(node->user_data)->Prepare(context);
}

TfLiteStatus KernelInvoke(TfLiteContext* context, TfLiteNode* node) {
  return static_cast<Partition*>(node->user_data)->Invoke(context);
}

// Fails loudly when TFLite's structs do not look like the ones in tflite_abi.h.
TfLiteStatus CheckAbi(TfLiteContext* context, const std::vector<int>& nodes) {
  auto fail = [&](const char* what) {
    context->ReportError(context,
                         "xnor_keras native kernels: TFLite ABI check failed (%s); this "
                         "TensorFlow version is not supported by native/tflite_abi.h",
                         what);
    return kTfLiteDelegateError;
  };
  if (context->tensors == nullptr || context->tensors_size == 0) return fail("no tensors");
  if (context->recommended_num_threads < -1 || context->recommended_num_threads > 4096) {
    return fail("TfLiteContext::recommended_num_threads");
  }
  // Walk the whole tensor array: a wrong sizeof(TfLiteTensor) or field order shows up as
  // out-of-range enums, implausible shapes or constant tensors whose byte size does not
  // match their shape.
  for (size_t i = 0; i < context->tensors_size; ++i) {
    const TfLiteTensor& t = context->tensors[i];
    if (static_cast<unsigned>(t.type) > 32 || static_cast<unsigned>(t.allocation_type) > 16) {
      return fail("TfLiteTensor enums");
    }
    if (t.dims != nullptr && (t.dims->size < 0 || t.dims->size > 16)) {
      return fail("TfLiteTensor dims");
    }
    const size_t element = TfLiteTypeSize(t.type);
    if (t.allocation_type == kTfLiteMmapRo && element != 0 && t.dims != nullptr &&
        t.bytes != element * static_cast<size_t>(NumElements(Dims(t.dims)))) {
      return fail("TfLiteTensor bytes");
    }
  }
  for (int index : nodes) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, index, &node, &reg) != kTfLiteOk) {
      return fail("GetNodeAndRegistration");
    }
    for (const TfLiteIntArray* list : {node->inputs, node->outputs}) {
      if (list == nullptr || list->size < 1 || list->size > 8) return fail("TfLiteNode layout");
      for (int i = 0; i < list->size; ++i) {
        const int t = list->data[i];
        if (t < -1 || t >= static_cast<int>(context->tensors_size)) {
          return fail("TfLiteNode tensor indices");
        }
        if (t < 0) continue;
        const TfLiteTensor& tensor = context->tensors[t];
        if (tensor.dims == nullptr || tensor.dims->size < 0 || tensor.dims->size > 8) {
          return fail("TfLiteTensor dims");
        }
        const size_t element = TfLiteTypeSize(tensor.type);
        if (tensor.allocation_type == kTfLiteMmapRo && element != 0 &&
            tensor.bytes != element * static_cast<size_t>(NumElements(Dims(tensor.dims)))) {
          return fail("TfLiteTensor bytes");
        }
      }
    }
  }
  return kTfLiteOk;
}

// Refuses graphs whose nodes read a tensor before (or without) the node that writes it
// runs, or with two writers of one tensor: TFLite's flatbuffer checks allow them, and
// ReplaceNodeSubsetsWithDelegateKernels corrupts its heap partitioning such a graph
// (found by tests/test_native_fuzz.py: an ADD reading a later LceQuantize's input).
TfLiteStatus CheckExecutionOrder(TfLiteContext* context, const TfLiteIntArray* plan) {
  std::vector<int> writer(context->tensors_size, -1);  // plan position writing each tensor
  std::vector<std::pair<TfLiteNode*, int>> nodes;
  for (int p = 0; p < plan->size; ++p) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[p], &node, &reg) != kTfLiteOk ||
        node->inputs == nullptr || node->outputs == nullptr) {
      return kTfLiteError;
    }
    for (int i = 0; i < node->outputs->size; ++i) {
      const int t = node->outputs->data[i];
      if (t < 0 || t >= static_cast<int>(context->tensors_size) || writer[t] >= 0) {
        context->ReportError(context, "xnor_keras native kernels: node %d: output tensor %d "
                             "is out of range or written twice", plan->data[p], t);
        return kTfLiteError;
      }
      writer[t] = p;
    }
    nodes.emplace_back(node, plan->data[p]);
  }
  for (int p = 0; p < plan->size; ++p) {
    const TfLiteIntArray* inputs = nodes[p].first->inputs;
    for (int i = 0; i < inputs->size; ++i) {
      const int t = inputs->data[i];
      if (t >= static_cast<int>(context->tensors_size) ||
          (t >= 0 && writer[t] >= p)) {
        context->ReportError(context, "xnor_keras native kernels: node %d reads tensor %d "
                             "before it is written (the graph is not in execution order)",
                             nodes[p].second, t);
        return kTfLiteError;
      }
    }
  }
  return kTfLiteOk;
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  auto* state = static_cast<DelegateState*>(delegate->data_);
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteDelegateError;
  std::vector<int> nodes;
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) {
      return kTfLiteDelegateError;
    }
    OpKind kind;
    if (KindOf(reg, &kind)) {
      nodes.push_back(plan->data[i]);
      ++counts[static_cast<int>(kind)];
    }
  }
  if (nodes.empty()) return kTfLiteOk;
  if (CheckAbi(context, nodes) != kTfLiteOk) return kTfLiteDelegateError;
  if (CheckExecutionOrder(context, plan) != kTfLiteOk) return kTfLiteError;
  // The float glue this delegate computes itself (fusion.h): matched on the graph, kept
  // where TFLite would keep each pattern in one partition, each with its spec.
  std::vector<std::pair<KMatch, KFusionSpec>> fused;
  std::vector<NotFused> not_fused;
  if (state->fuse) {
    const FusionGraph graph = GraphFromContext(context, plan);
    FusionMatches matches = MatchKPatterns(graph);
    if (!KeepPartitionable(context, nodes, &matches)) {
      for (const KMatch& m : matches.fused) {
        matches.not_fused.push_back({m.bconv, "TFLite's partitioning preview failed"});
      }
      matches.fused.clear();
    }
    for (const KMatch& m : matches.fused) {
      KFusionSpec spec;
      std::string problem;
      if (SpecForMatch(graph, m, &spec, &problem)) {
        fused.push_back({m, spec});
      } else {
        matches.not_fused.push_back({m.bconv, problem});
      }
    }
    not_fused = matches.not_fused;
    std::set<int> all(nodes.begin(), nodes.end());
    for (const auto& f : fused) all.insert(f.first.nodes.begin(), f.first.nodes.end());
    nodes.assign(all.begin(), all.end());
  }
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->pending.clear();
    for (const auto& f : fused) {
      for (int n : f.first.nodes) state->pending[n] = &f;
    }
  }
  std::vector<int> list(nodes.size() + 1);
  list[0] = static_cast<int>(nodes.size());
  std::copy(nodes.begin(), nodes.end(), list.begin() + 1);
  TfLiteRegistration reg{};
  reg.init = KernelInit;
  reg.free = KernelFree;
  reg.prepare = KernelPrepare;
  reg.invoke = KernelInvoke;
  reg.builtin_code = kTfLiteBuiltinDelegate;
  reg.custom_name = kKernelName;
  reg.version = 1;
  const TfLiteStatus status = context->ReplaceNodeSubsetsWithDelegateKernels(
      context, reg, reinterpret_cast<const TfLiteIntArray*>(list.data()), delegate);
  std::lock_guard<std::mutex> lock(state->mu);
  state->pending.clear();
  if (status != kTfLiteOk) return status;
  for (int k = 0; k < 4; ++k) state->nodes[k] += counts[k];
  state->fused.insert(state->fused.end(), fused.begin(), fused.end());
  state->not_fused.insert(state->not_fused.end(), not_fused.begin(), not_fused.end());
  return kTfLiteOk;
}

}  // namespace
}  // namespace xk

extern "C" {

__attribute__((visibility("default"))) TfLiteDelegate* tflite_plugin_create_delegate(
    char** keys, char** values, int num_options, void (*report_error)(const char*)) {
  using namespace xk;
  auto report = [&](const std::string& message) {
    if (report_error != nullptr) report_error(message.c_str());
    return nullptr;
  };
  std::unique_ptr<DelegateState> state(new DelegateState);
  std::string error;
  state->isa = SelectIsa(&error);
  if (!error.empty()) return report(error);
  for (int i = 0; i < num_options; ++i) {
    const std::string key = keys[i], value = values[i];
    if (key == "num_threads") {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0' || n < 0 || n > 1024) {
        return report("num_threads must be an integer in [0, 1024]. Received: " + value);
      }
      state->num_threads = static_cast<int>(n);
    } else if (key == "isa") {
      // "auto": keep SelectIsa's choice (the best ISA, or $XNOR_KERAS_NATIVE_ISA's).
      const std::string problem = value == "auto" ? "" : ParseIsa(value, &state->isa);
      if (!problem.empty()) return report(problem);
    } else if (key == "fuse") {
      if (value != "on" && value != "off") {
        return report("fuse must be on or off. Received: " + value);
      }
      state->fuse = value == "on";
    } else {
      return report("unknown option " + key + " (known: num_threads, isa, fuse)");
    }
  }
  state->delegate.data_ = state.get();
  state->delegate.Prepare = DelegatePrepare;
  // kTfLiteDelegateFlagsAllowDynamicTensors: without it TFLite prepares every node
  // (including the still-unresolved LCE ops) before handing the graph to us. Our kernels
  // compute all output shapes in Prepare, so they also follow input resizes.
  state->delegate.flags = 1;
  TfLiteDelegate* delegate = &state->delegate;
  state.release();
  return delegate;
}

__attribute__((visibility("default"))) void tflite_plugin_destroy_delegate(
    TfLiteDelegate* delegate) {
  if (delegate != nullptr) delete static_cast<xk::DelegateState*>(delegate->data_);
}

// What a delegate did, as JSON: {"isa": ..., "threads": ..., "partitions": (delegate
// kernels, each a run of consecutive claimed ops), "invocations": (kernel runs), "seconds":
// (time spent in them), "nodes": {"LceBconv2d": n, ...} (LCE nodes taken over), "fuse":
// bool, "fused": [{"kind": "K", "bconv": node, "nodes": [...][, "pool": (its MAX_POOL_2D)]}]
// (patterns run fused),
// "not_fused": [{"node": (LceBconv2d), "reason": ...}] (candidates that were not)}.
// Returns the length needed (call again with a larger buffer if it is >= size).
__attribute__((visibility("default"))) int xnor_keras_delegate_info(TfLiteDelegate* delegate,
                                                                    char* buffer, int size) {
  using namespace xk;
  auto* s = static_cast<DelegateState*>(delegate->data_);
  std::lock_guard<std::mutex> lock(s->mu);
  char head[512];
  std::snprintf(
      head, sizeof(head),
      "{\"isa\": \"%s\", \"threads\": %d, \"partitions\": %d, \"invocations\": %" PRId64
      ", \"seconds\": %.9f, \"nodes\": {\"%s\": %d, \"%s\": %d, \"%s\": %d, \"%s\": %d}",
      IsaName(s->isa), s->threads_used, s->partitions, s->invocations.load(),
      static_cast<double>(s->nanoseconds.load()) * 1e-9, kOpNames[0],
      s->nodes[0], kOpNames[1], s->nodes[1], kOpNames[2], s->nodes[2], kOpNames[3],
      s->nodes[3]);
  std::string json = head;
  json += std::string(", \"fuse\": ") + (s->fuse ? "true" : "false") + ", \"fused\": [";
  for (size_t i = 0; i < s->fused.size(); ++i) {
    const KMatch& m = s->fused[i].first;
    json += (i ? ", " : "") + std::string("{\"kind\": \"K\", \"bconv\": ") +
            std::to_string(m.bconv) + ", \"nodes\": [";
    for (size_t k = 0; k < m.nodes.size(); ++k) json += (k ? ", " : "") + std::to_string(m.nodes[k]);
    json += m.pool >= 0 ? "], \"pool\": " + std::to_string(m.pool) + "}" : "]}";
  }
  json += "], \"not_fused\": [";
  for (size_t i = 0; i < s->not_fused.size(); ++i) {
    std::string reason;
    for (char c : s->not_fused[i].reason) {
      if (c == '"' || c == '\\') reason += '\\';
      reason += (c >= 0 && c < 32) ? ' ' : c;
    }
    json += (i ? ", " : "") + std::string("{\"node\": ") + std::to_string(s->not_fused[i].node) +
            ", \"reason\": \"" + reason + "\"}";
  }
  json += "]}";
  const int needed = static_cast<int>(json.size());
  if (needed < size) {
    std::memcpy(buffer, json.c_str(), json.size() + 1);
  } else if (size > 0) {
    buffer[0] = '\0';
  }
  return needed;
}

// Per-node kernel time, as JSON: {"nodes": [{"node": (TFLite node index), "op": name,
// "runs": n, "seconds": s[, "fused_into": (LceBconv2d node)]}, ...]} for every node this
// delegate runs (fused patterns: see NodeProfile), accumulated
// since it was applied or last reset; `reset` != 0 zeroes the counters after reading.
// Returns the length needed (call again with a larger buffer if it is >= size).
__attribute__((visibility("default"))) int xnor_keras_delegate_profile(TfLiteDelegate* delegate,
                                                                       char* buffer, int size,
                                                                       int reset) {
  using namespace xk;
  auto* s = static_cast<DelegateState*>(delegate->data_);
  std::lock_guard<std::mutex> lock(s->mu);
  std::string json = "{\"nodes\": [";
  char item[200];
  for (auto& [index, p] : s->profile) {
    std::snprintf(item, sizeof(item),
                  "%s{\"node\": %d, \"op\": \"%s\", \"runs\": %" PRId64 ", \"seconds\": %.9f",
                  json.size() > 11 ? ", " : "", index, p.op.c_str(), p.runs.load(),
                  static_cast<double>(p.nanoseconds.load()) * 1e-9);
    json += item;
    json += p.fused_into >= 0 ? ", \"fused_into\": " + std::to_string(p.fused_into) + "}" : "}";
  }
  json += "]}";
  const int needed = static_cast<int>(json.size());
  if (needed < size) {
    std::memcpy(buffer, json.c_str(), json.size() + 1);
    if (reset) {
      for (auto& entry : s->profile) entry.second.runs = 0, entry.second.nanoseconds = 0;
    }
  } else if (size > 0) {
    buffer[0] = '\0';
  }
  return needed;
}

// The ISA the library would pick now ($XNOR_KERAS_NATIVE_ISA applied), or an error text.
__attribute__((visibility("default"))) const char* xnor_keras_selected_isa() {
  static thread_local std::string result;
  std::string error;
  const xk::Isa isa = xk::SelectIsa(&error);
  result = error.empty() ? xk::IsaName(isa) : "error: " + error;
  return result.c_str();
}

}  // extern "C"
