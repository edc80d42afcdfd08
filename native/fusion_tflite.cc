// The fusion's view of a TFLite graph (see fusion_tflite.h).
#include "fusion_tflite.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace xk {

namespace {

GraphOp OpOf(const TfLiteRegistration* reg) {
  if (reg == nullptr) return GraphOp::kOther;
  if (reg->builtin_code == kTfLiteBuiltinCustom) {
    if (reg->custom_name == nullptr) return GraphOp::kOther;
    for (GraphOp op : {GraphOp::kLceQuantize, GraphOp::kLceDequantize, GraphOp::kLceBconv2d,
                       GraphOp::kLceBMaxPool2d}) {
      if (std::strcmp(reg->custom_name, GraphOpName(op)) == 0) return op;
    }
    return GraphOp::kOther;
  }
  switch (reg->builtin_code) {
    case kTfLiteBuiltinAdd:
      return GraphOp::kAdd;
    case kTfLiteBuiltinMul:
      return GraphOp::kMul;
    case kTfLiteBuiltinAbs:
      return GraphOp::kAbs;
    case kTfLiteBuiltinMean:
      return GraphOp::kMean;
    case kTfLiteBuiltinConv2d:
      return GraphOp::kConv2d;
    case kTfLiteBuiltinReshape:
      return GraphOp::kReshape;
    case kTfLiteBuiltinMaxPool2d:
      return GraphOp::kMaxPool2d;
    default:
      return GraphOp::kOther;
  }
}

bool ReadIndices(const TfLiteIntArray* a, size_t tensors, std::vector<int>* out) {
  if (a == nullptr || a->size < 0 || a->size > 64) return false;
  for (int i = 0; i < a->size; ++i) {
    const int t = a->data[i];
    if (t < -1 || t >= static_cast<int>(tensors)) return false;
    out->push_back(t);
  }
  return true;
}

// TfLiteFusedActivation 1 relu, 2 relu_n1_to_1, 3 relu6 as clamp bounds (0: none).
void ActivationBounds(int activation, float* lo, float* hi) {
  if (activation == 1) *lo = 0.0f;
  if (activation == 2) *lo = -1.0f, *hi = 1.0f;
  if (activation == 3) *lo = 0.0f, *hi = 6.0f;
}

// The fields CONV_2D's and MAX_POOL_2D's options share (activation, padding, strides)
// copied into `n`; returns the options for the op's own fields, or nullptr (and
// activation -1: never fused) when the node has none.
template <typename Params>
const Params* ReadWindowParams(const TfLiteNode* node, GraphNode* n) {
  if (node->builtin_data == nullptr) {
    n->activation = -1;
    return nullptr;
  }
  const auto* p = static_cast<const Params*>(node->builtin_data);
  n->activation = p->activation;
  n->padding_known = p->padding == kTfLitePaddingSame || p->padding == kTfLitePaddingValid;
  n->padding_same = p->padding == kTfLitePaddingSame;
  n->stride_h = p->stride_height;
  n->stride_w = p->stride_width;
  return p;
}

}  // namespace

FusionGraph GraphFromContext(TfLiteContext* context, const TfLiteIntArray* plan) {
  FusionGraph g;
  g.tensors.resize(context->tensors_size);
  for (size_t i = 0; i < context->tensors_size; ++i) {
    const TfLiteTensor& t = context->tensors[i];
    GraphTensor& out = g.tensors[i];
    out.type = static_cast<int>(t.type);
    if (t.dims != nullptr && t.dims->size >= 0 && t.dims->size <= 16) {
      out.dims.assign(t.dims->data, t.dims->data + t.dims->size);
    }
    int64_t n = 1;
    for (int d : out.dims) n = d < 0 ? -1 : n * d;
    const size_t element = TfLiteTypeSize(out.type);
    out.constant = (t.allocation_type == kTfLiteMmapRo || t.allocation_type == kTfLitePersistentRo) &&
                   t.data != nullptr && element != 0 && n >= 0 &&
                   t.bytes == element * static_cast<size_t>(n);
    out.data = out.constant ? t.data : nullptr;
  }
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk ||
        node == nullptr) {
      continue;
    }
    GraphNode n;
    n.index = plan->data[i];
    n.op = OpOf(reg);
    if (!ReadIndices(node->inputs, g.tensors.size(), &n.inputs) ||
        !ReadIndices(node->outputs, g.tensors.size(), &n.outputs)) {
      n.op = GraphOp::kOther;
      n.inputs.clear();
      n.outputs.clear();
    }
    if (n.op == GraphOp::kMul || n.op == GraphOp::kAdd) {
      // Both option structs start with the fused activation; unknown (-1) is never fused.
      n.activation = node->builtin_data == nullptr
                         ? -1
                         : static_cast<const TfLiteMulParams*>(node->builtin_data)->activation;
    } else if (n.op == GraphOp::kConv2d) {
      if (const auto* p = ReadWindowParams<TfLiteConvParams>(node, &n)) {
        n.dilation_h = p->dilation_height_factor;
        n.dilation_w = p->dilation_width_factor;
      }
    } else if (n.op == GraphOp::kMaxPool2d) {
      if (const auto* p = ReadWindowParams<TfLitePoolParams>(node, &n)) {
        n.filter_h = p->filter_height;
        n.filter_w = p->filter_width;
      }
    }
    g.nodes.push_back(std::move(n));
  }
  return g;
}

bool SpecForMatch(const FusionGraph& g, const KMatch& m, KFusionSpec* spec,
                  std::string* problem) {
  std::map<int, const GraphNode*> nodes;
  for (const GraphNode& n : g.nodes) nodes[n.index] = &n;
  const std::vector<int>& q = g.tensors[m.quantized_input].dims;  // [1, H, W, C]
  const std::vector<int>& bout = g.tensors[m.k].dims;             // [1, oh, ow, 1]
  KFusionSpec s;
  s.in_h = q[1];
  s.in_w = q[2];
  s.channels = q[3];
  for (const AffineMatch& a : m.affine) {
    AffineStep step;
    step.kind = a.is_mul ? AffineStep::kMul : AffineStep::kAdd;
    step.values = static_cast<const float*>(g.tensors[a.constant].data);
    step.length = 1;
    for (int d : g.tensors[a.constant].dims) step.length *= d;
    s.affine.push_back(step);
  }
  s.mean_length = g.tensors[m.abs_input].dims.back();
  s.has_box = m.box;
  if (m.box) {
    const GraphNode& conv = *nodes.at(m.k_node);
    const GraphTensor& w = g.tensors[conv.inputs[1]];
    s.box.filter_h = w.dims[1];
    s.box.filter_w = w.dims[2];
    s.box.stride_h = conv.stride_h;
    s.box.stride_w = conv.stride_w;
    s.box.dilation_h = conv.dilation_h;
    s.box.dilation_w = conv.dilation_w;
    s.box.padding_same = conv.padding_same;
    s.box.value = *static_cast<const float*>(w.data);
    if (conv.inputs.size() == 3 && conv.inputs[2] >= 0) {
      s.box.bias = *static_cast<const float*>(g.tensors[conv.inputs[2]].data);
    }
  }
  s.out_h = bout[1];
  s.out_w = bout[2];
  ActivationBounds(nodes.at(m.mul)->activation, &s.lo, &s.hi);
  if (m.add >= 0) {
    s.has_residual = true;
    ActivationBounds(nodes.at(m.add)->activation, &s.residual_lo, &s.residual_hi);
  }
  if (m.pool >= 0) {
    const GraphNode& pool = *nodes.at(m.pool);
    const std::vector<int>& v = g.tensors[pool.inputs[0]].dims;  // [1, H, W, C]
    s.has_pool = true;
    s.pool.in_h = v[1];
    s.pool.in_w = v[2];
    s.pool.channels = v[3];
    s.pool.filter_h = pool.filter_h;
    s.pool.filter_w = pool.filter_w;
    s.pool.stride_h = pool.stride_h;
    s.pool.stride_w = pool.stride_w;
    s.pool.padding_same = pool.padding_same;
    ActivationBounds(pool.activation, &s.pool.lo, &s.pool.hi);
  }
  *problem = CheckKFusionSpec(s);
  if (!problem->empty()) return false;
  *spec = s;
  return true;
}

bool KeepPartitionable(TfLiteContext* context, const std::vector<int>& others,
                       FusionMatches* matches) {
  for (size_t round = 0; round <= 3 * matches->fused.size(); ++round) {
    if (matches->fused.empty()) return true;
    std::vector<int> claimed = others;
    for (const KMatch& m : matches->fused) claimed.insert(claimed.end(), m.nodes.begin(), m.nodes.end());
    std::sort(claimed.begin(), claimed.end());
    claimed.erase(std::unique(claimed.begin(), claimed.end()), claimed.end());
    std::vector<int> list(claimed.size() + 1);
    list[0] = static_cast<int>(claimed.size());
    std::copy(claimed.begin(), claimed.end(), list.begin() + 1);
    TfLiteDelegateParams* partitions = nullptr;
    int count = 0;
    if (context->PreviewDelegatePartitioning == nullptr ||
        context->PreviewDelegatePartitioning(
            context, reinterpret_cast<const TfLiteIntArray*>(list.data()), &partitions,
            &count) != kTfLiteOk) {
      return false;
    }
    std::map<int, int> partition_of;    // node -> partition
    std::map<int, std::set<int>> leaving;  // partition -> its output tensors
    for (int p = 0; p < count; ++p) {
      const TfLiteIntArray* n = partitions[p].nodes_to_replace;
      for (int i = 0; n != nullptr && i < n->size; ++i) partition_of[n->data[i]] = p;
      const TfLiteIntArray* o = partitions[p].output_tensors;
      for (int i = 0; o != nullptr && i < o->size; ++i) leaving[p].insert(o->data[i]);
    }
    std::vector<KMatch> keep;
    bool moved = false;
    for (const KMatch& m : matches->fused) {
      std::string why;
      int failed = -1;  // the node whose placement or output failed
      const auto home = partition_of.find(m.mul);
      for (int node : m.nodes) {
        failed = node;
        const auto it = partition_of.find(node);
        if (home == partition_of.end() || it == partition_of.end() || it->second != home->second) {
          why = "TFLite would split its nodes over delegate partitions";
          break;
        }
        TfLiteNode* tn = nullptr;
        TfLiteRegistration* reg = nullptr;
        if (node == m.last || context->GetNodeAndRegistration(context, node, &tn, &reg) != kTfLiteOk) {
          continue;
        }
        for (int i = 0; tn->outputs != nullptr && i < tn->outputs->size; ++i) {
          if (leaving[home->second].count(tn->outputs->data[i]) != 0) {
            why = "tensor " + std::to_string(tn->outputs->data[i]) + " (node " +
                  std::to_string(node) +
                  ") would leave its delegate partition (a model output, or a node TFLite runs "
                  "in between)";
            break;
          }
        }
        if (!why.empty()) break;
      }
      if (why.empty()) {
        keep.push_back(m);
      } else if (std::find(m.pool_nodes.begin(), m.pool_nodes.end(), failed) !=
                 m.pool_nodes.end()) {  // the pool (or a RESHAPE after it): again without it
        KMatch without = m;
        for (int n : m.pool_nodes) {
          without.nodes.erase(std::find(without.nodes.begin(), without.nodes.end(), n));
        }
        without.root = m.unpooled_root;
        without.pool = without.unpooled_root = -1;
        without.pool_nodes.clear();
        keep.push_back(without);
        matches->not_fused.push_back(
            {m.bconv, "its MAX_POOL_2D node " + std::to_string(m.pool) + " is not fused: " + why});
        moved = true;
      } else if (m.add >= 0) {  // try again without the residual ADD
        KMatch without = m;
        without.nodes.erase(std::find(without.nodes.begin(), without.nodes.end(), m.add));
        without.add = without.residual = -1;
        without.last = m.mul;
        without.output = m.mul_output;
        keep.push_back(without);
        matches->not_fused.push_back(
            {m.bconv, "its residual ADD node " + std::to_string(m.add) + " is not fused: " + why});
        moved = true;
      } else {
        matches->not_fused.push_back({m.bconv, why});
        moved = true;
      }
    }
    matches->fused = keep;
    if (!moved) return true;
  }
  return true;
}

}  // namespace xk
