// Matching the K pattern (see fusion_match.h).
#include "fusion_match.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

namespace xk {

const char* GraphOpName(GraphOp op) {
  switch (op) {
    case GraphOp::kLceQuantize:
      return "LceQuantize";
    case GraphOp::kLceDequantize:
      return "LceDequantize";
    case GraphOp::kLceBconv2d:
      return "LceBconv2d";
    case GraphOp::kLceBMaxPool2d:
      return "LceBMaxPool2d";
    case GraphOp::kMul:
      return "MUL";
    case GraphOp::kAdd:
      return "ADD";
    case GraphOp::kAbs:
      return "ABS";
    case GraphOp::kMean:
      return "MEAN";
    case GraphOp::kConv2d:
      return "CONV_2D";
    case GraphOp::kReshape:
      return "RESHAPE";
    case GraphOp::kMaxPool2d:
      return "MAX_POOL_2D";
    case GraphOp::kOther:
      break;
  }
  return "other";
}

namespace {

constexpr int kFloat32 = 1, kInt32 = 2;

int64_t Elements(const std::vector<int>& dims) {
  int64_t n = 1;
  for (int d : dims) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) return -1;  // invalid or implausible
    n *= d;
  }
  return n;
}

class Matcher {
 public:
  explicit Matcher(const FusionGraph& g) : g_(g) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const GraphNode& n = g.nodes[i];
      by_index_[n.index] = &n;
      for (int t : n.outputs) {
        if (Valid(t)) producer_[t] = &n;
      }
      for (int t : n.inputs) {
        if (Valid(t)) consumers_[t].push_back(n.index);
      }
    }
  }

  void Run(FusionMatches* out) {
    std::set<int> taken;
    for (const GraphNode& n : g_.nodes) {
      if (n.op != GraphOp::kLceBconv2d) continue;
      KMatch m;
      std::string reason;
      std::string pool_refused;
      const int status = Match(n, &m, &reason, &pool_refused);
      if (status == kNotCandidate) continue;
      if (status == kFused) {
        bool overlap = false;
        for (int node : m.nodes) overlap = overlap || taken.count(node) != 0;
        if (!overlap) {
          taken.insert(m.nodes.begin(), m.nodes.end());
          out->fused.push_back(m);
          if (!pool_refused.empty()) out->not_fused.push_back({n.index, pool_refused});
          continue;
        }
        reason = "its nodes overlap another fused pattern";
      }
      out->not_fused.push_back({n.index, reason});
    }
  }

 private:
  enum { kNotCandidate = 0, kFused = 1, kRejected = 2 };

  bool Valid(int t) const { return t >= 0 && static_cast<size_t>(t) < g_.tensors.size(); }
  const GraphTensor* T(int t) const { return Valid(t) ? &g_.tensors[t] : nullptr; }
  const GraphNode* Producer(int t) const {
    auto it = producer_.find(t);
    return it == producer_.end() ? nullptr : it->second;
  }
  std::vector<int> Consumers(int t) const {
    auto it = consumers_.find(t);
    return it == consumers_.end() ? std::vector<int>() : it->second;
  }
  // Whether tensor t is read only by the nodes in `inside`.
  bool OnlyReadBy(int t, const std::set<int>& inside) const {
    for (int c : Consumers(t)) {
      if (inside.count(c) == 0) return false;
    }
    return true;
  }
  bool IsFloat(int t) const { return T(t) != nullptr && T(t)->type == kFloat32; }
  bool IsActivation(int t) const { return T(t) != nullptr && !T(t)->constant; }

  // Whether RESHAPE node r is the pure relabeling a fused pattern may skip: its constant
  // int32 shape (at most one -1, resolved as TFLite's kernel does) gives exactly its
  // output's dims, with as many elements as its input. Otherwise TFLite's kernel would
  // compute another shape or refuse the model, and fusing would hide that.
  bool ReshapeOk(const GraphNode& r, std::string* why) const {
    const std::string at = "RESHAPE node " + std::to_string(r.index) + " ";
    if (r.inputs.size() != 2 || r.outputs.size() != 1 || T(r.inputs[0]) == nullptr ||
        T(r.outputs[0]) == nullptr) {
      *why = at + "has no shape input";
      return false;
    }
    const GraphTensor* shape = T(r.inputs[1]);
    if (shape == nullptr || !shape->constant || shape->type != kInt32 || shape->data == nullptr ||
        shape->dims.size() != 1) {
      *why = at + "has no constant 1-D int32 shape";
      return false;
    }
    const int64_t in = Elements(T(r.inputs[0])->dims);
    const std::vector<int>& out = T(r.outputs[0])->dims;
    const auto* s = static_cast<const int32_t*>(shape->data);
    std::vector<int> resolved(s, s + shape->dims[0]);
    const auto unknown = std::find(resolved.begin(), resolved.end(), -1);
    if (unknown != resolved.end()) *unknown = 1;  // the product of the others, below
    const int64_t known = Elements(resolved);
    if (known < 0) {  // a second -1, another negative, or implausibly large
      *why = at + "has an invalid shape";
      return false;
    }
    if (unknown != resolved.end()) {
      const int64_t value = known == 0 ? 0 : in / known;
      *unknown = value <= INT32_MAX ? static_cast<int>(value) : -1;  // -1: matches no dim
    }
    const bool same = in >= 0 && in == Elements(out) && resolved == out;
    if (!same) *why = at + "has a shape that does not give its output with its input's size";
    return same;
  }

  // Walks back over RESHAPEs from t: [t, its reshape's input, ...]; stops before a RESHAPE
  // that is not `ReshapeOk` and says why in `refused`.
  std::vector<int> ReshapeChain(int t, std::vector<int>* nodes, std::string* refused) const {
    std::vector<int> chain = {t};
    for (int guard = 0; guard < 8; ++guard) {
      const GraphNode* p = Producer(chain.back());
      if (p == nullptr || p->op != GraphOp::kReshape || p->inputs.empty() ||
          !IsActivation(p->inputs[0]) || !IsFloat(p->inputs[0])) {
        break;
      }
      if (!ReshapeOk(*p, refused)) break;
      nodes->push_back(p->index);
      chain.push_back(p->inputs[0]);
    }
    return chain;
  }

  int Reject(std::string* reason, const std::string& why) const {
    *reason = why;
    return kRejected;
  }

  int Match(const GraphNode& b, KMatch* m, std::string* reason,
            std::string* pool_refused) const {
    if (b.inputs.empty() || b.outputs.size() != 1 || !IsFloat(b.outputs[0])) return kNotCandidate;
    const int bout = b.outputs[0];
    const std::vector<int> bout_readers = Consumers(bout);
    if (bout_readers.size() != 1) return kNotCandidate;
    auto it = by_index_.find(bout_readers[0]);
    if (it == by_index_.end() || it->second->op != GraphOp::kMul) return kNotCandidate;
    const GraphNode& mul = *it->second;
    if (mul.inputs.size() != 2 || mul.outputs.size() != 1) return kNotCandidate;
    const int k = mul.inputs[0] == bout ? mul.inputs[1] : mul.inputs[0];
    if (mul.inputs[0] != bout && mul.inputs[1] != bout) return kNotCandidate;
    if (!IsActivation(k)) return kNotCandidate;  // a constant: BatchNorm, not K
    // From here on it is a K candidate: every failure says why.
    const std::string at = "MUL node " + std::to_string(mul.index) + ": ";
    if (mul.inputs[0] == mul.inputs[1]) return Reject(reason, at + "squares the output");
    if (mul.activation < 0 || mul.activation > 3) {
      return Reject(reason, at + "fused activation " + std::to_string(mul.activation) +
                                " is not none/relu/relu_n1_to_1/relu6");
    }
    if (!IsFloat(k) || !IsFloat(mul.outputs[0])) return Reject(reason, at + "not float32");
    const std::vector<int>& bdims = T(bout)->dims;
    std::vector<int> kdims_expected = bdims;
    if (!kdims_expected.empty()) kdims_expected.back() = 1;
    if (bdims.size() != 4 || T(k)->dims != kdims_expected || T(mul.outputs[0])->dims != bdims) {
      return Reject(reason, at + "K is not one value per output pixel of the LceBconv2d");
    }
    std::vector<int> nodes = {b.index, mul.index};
    const GraphNode* kp = Producer(k);
    if (kp == nullptr || (kp->op != GraphOp::kConv2d && kp->op != GraphOp::kReshape)) {
      return Reject(reason, "K is produced by " +
                                std::string(kp == nullptr ? "no node" : GraphOpName(kp->op)) +
                                ", not a box CONV_2D or a RESHAPE");
    }
    m->k_node = kp->index;
    m->box = kp->op == GraphOp::kConv2d;
    nodes.push_back(kp->index);
    if (kp->inputs.empty() || kp->outputs.size() != 1) return Reject(reason, "malformed K node");
    const int a = kp->inputs[0];
    if (!IsActivation(a) || !IsFloat(a)) return Reject(reason, "K's input is not a float activation");
    if (m->box) {
      std::string why;
      if (!BoxFilterOk(*kp, &why)) return Reject(reason, "CONV_2D node " + std::to_string(kp->index) + ": " + why);
    } else {
      std::string why;
      if (!ReshapeOk(*kp, &why)) return Reject(reason, "K's " + why);
    }
    const GraphNode* mean = Producer(a);
    if (mean == nullptr || mean->op != GraphOp::kMean) {
      return Reject(reason, "K's " + std::string(GraphOpName(kp->op)) +
                                " does not read a MEAN");
    }
    nodes.push_back(mean->index);
    m->mean = mean->index;
    if (mean->inputs.size() != 2 || !IsActivation(mean->inputs[0]) ||
        !IsFloat(mean->inputs[0])) {
      return Reject(reason, "MEAN node " + std::to_string(mean->index) + " is malformed");
    }
    const GraphTensor* in = T(mean->inputs[0]);
    const GraphTensor* axes = T(mean->inputs[1]);
    const int rank = static_cast<int>(in->dims.size());
    if (axes == nullptr || !axes->constant || axes->type != kInt32 || Elements(axes->dims) != 1 ||
        axes->data == nullptr) {
      return Reject(reason, "MEAN node " + std::to_string(mean->index) +
                                " does not reduce one constant axis");
    }
    const int axis = *static_cast<const int32_t*>(axes->data);
    std::vector<int> mean_dims = in->dims;
    if (rank < 1 || (axis != -1 && axis != rank - 1) || (mean_dims.back() = 1, T(a)->dims != mean_dims)) {
      return Reject(reason, "MEAN node " + std::to_string(mean->index) +
                                " is not over the last axis with keep_dims");
    }
    const GraphNode* abs = Producer(mean->inputs[0]);
    if (abs == nullptr || abs->op != GraphOp::kAbs || abs->inputs.size() != 1) {
      return Reject(reason, "MEAN node " + std::to_string(mean->index) + " does not read an ABS");
    }
    nodes.push_back(abs->index);
    m->abs = abs->index;
    m->abs_input = abs->inputs[0];
    const GraphNode* q = Producer(b.inputs[0]);
    if (q == nullptr || q->op != GraphOp::kLceQuantize || q->inputs.size() != 1 ||
        !IsFloat(q->inputs[0])) {
      return Reject(reason, "the LceBconv2d does not read an LceQuantize of a float tensor");
    }
    nodes.push_back(q->index);
    m->quantize = q->index;
    m->quantized_input = q->inputs[0];
    // x: the tensor that both ABS and LceQuantize read, up to RESHAPEs.
    std::vector<int> reshapes_a, reshapes_q;
    std::string refused;  // a RESHAPE either chain stopped at
    const std::vector<int> chain_a = ReshapeChain(abs->inputs[0], &reshapes_a, &refused);
    const std::vector<int> chain_q = ReshapeChain(q->inputs[0], &reshapes_q, &refused);
    int x = -1;
    size_t ia = 0, iq = 0;
    for (iq = 0; iq < chain_q.size() && x < 0; ++iq) {
      for (ia = 0; ia < chain_a.size(); ++ia) {
        if (chain_a[ia] == chain_q[iq]) {
          x = chain_q[iq];
          break;
        }
      }
    }
    if (x < 0) {
      return Reject(reason, "ABS and LceQuantize do not read the same tensor" +
                                (refused.empty() ? "" : " (" + refused + ")"));
    }
    --iq;  // chain_q[iq] == x == chain_a[ia]; the first iq / ia reshapes lie between
    nodes.insert(nodes.end(), reshapes_q.begin(), reshapes_q.begin() + iq);
    nodes.insert(nodes.end(), reshapes_a.begin(), reshapes_a.begin() + ia);
    const int channels = T(q->inputs[0])->dims.empty() ? 0 : T(q->inputs[0])->dims.back();
    const int64_t mean_length = in->dims.back();
    if (channels < 1 || mean_length % channels != 0) {
      return Reject(reason, "the MEAN's length " + std::to_string(mean_length) +
                                " is not a whole number of pixels of the quantized input");
    }
    const std::vector<int>& qdims = T(q->inputs[0])->dims;
    if (qdims.size() != 4) return Reject(reason, "LceQuantize's input is not 4-D");
    if (m->box && (mean_length != channels || T(a)->dims.size() != 4 ||
                   T(a)->dims[1] != qdims[1] || T(a)->dims[2] != qdims[2])) {
      return Reject(reason, "the box filter's map is not the quantized input's pixels");
    }
    // Every tensor between x and the LceBconv2d / MUL is read only inside the pattern.
    std::set<int> inside(nodes.begin(), nodes.end());
    for (int node : nodes) {
      const GraphNode* n = by_index_.at(node);
      if (n->index == mul.index) continue;
      for (int t : n->outputs) {
        if (!OnlyReadBy(t, inside)) {
          return Reject(reason, "tensor " + std::to_string(t) + " (" + GraphOpName(n->op) +
                                    " node " + std::to_string(n->index) +
                                    ") is also read outside the pattern");
        }
      }
    }
    // The affine producing x, if it feeds only the pattern: MUL / ADD with a constant.
    int root = x;
    for (int step = 0; step < 2; ++step) {
      if (!OnlyReadBy(root, inside)) break;
      const GraphNode* p = Producer(root);
      if (p == nullptr || (p->op != GraphOp::kMul && p->op != GraphOp::kAdd) ||
          p->inputs.size() != 2 || p->activation != 0) {
        break;
      }
      const int c0 = p->inputs[0], c1 = p->inputs[1];
      const int constant = T(c1) != nullptr && T(c1)->constant ? c1 : c0;
      const int other = constant == c1 ? c0 : c1;
      const GraphTensor* ct = T(constant);
      if (ct == nullptr || !ct->constant || ct->type != kFloat32 || ct->data == nullptr ||
          !IsActivation(other) || !IsFloat(other) || T(other)->dims != T(root)->dims) {
        break;
      }
      const int64_t length = Elements(ct->dims);
      const std::vector<int>& rd = T(root)->dims;
      const int last = rd.empty() ? 0 : rd.back();
      bool trailing_ones = true;  // a [.., 1, L] constant broadcasts along the last axis only
      for (size_t i = 0; i + 1 < ct->dims.size(); ++i) trailing_ones = trailing_ones && ct->dims[i] == 1;
      if (!(length == 1 || (length == last && trailing_ones && last % channels == 0))) break;
      m->affine.insert(m->affine.begin(), {p->index, p->op == GraphOp::kMul, constant});
      nodes.push_back(p->index);
      inside.insert(p->index);
      root = other;
    }
    const std::string pool_problem = MatchMaxPool(root, m->quantized_input, inside, m);
    if (m->pool >= 0) {
      nodes.insert(nodes.end(), m->pool_nodes.begin(), m->pool_nodes.end());
      m->unpooled_root = root;
      root = by_index_.at(m->pool)->inputs[0];
    } else if (!pool_problem.empty()) {
      *pool_refused = pool_problem;
    }
    m->last = mul.index;
    m->output = m->mul_output = mul.outputs[0];
    MatchResidualAdd(m, &nodes);
    std::sort(nodes.begin(), nodes.end());
    m->nodes = nodes;
    m->bconv = b.index;
    m->mul = mul.index;
    m->root = root;
    m->x = x;
    m->k = k;
    return kFused;
  }

  // u = [RESHAPE...](MAX_POOL_2D(v)), each tensor read only by the pattern, with options
  // TFLite's kernel and KFusion agree on: sets m->pool and m->pool_nodes; "" if u has no
  // such producer, else why not.
  std::string MatchMaxPool(int root, int quantized, std::set<int> inside, KMatch* m) const {
    std::vector<int> reshapes;
    std::string refused;
    const std::vector<int> chain = ReshapeChain(root, &reshapes, &refused);
    const int u = chain.back();  // the pool's output
    const GraphNode* p = Producer(u);
    if (p == nullptr || p->op != GraphOp::kMaxPool2d) {
      return refused.empty() ? "" : "its input's " + refused + ": not fused";
    }
    const std::string at = "its MAX_POOL_2D node " + std::to_string(p->index) + " is not fused: ";
    if (p->inputs.size() != 1 || p->outputs.size() != 1) return at + "malformed";
    inside.insert(reshapes.begin(), reshapes.end());
    for (int t : chain) {
      if (!OnlyReadBy(t, inside)) {
        return at + "tensor " + std::to_string(t) + " is also read outside the pattern";
      }
    }
    if (!p->padding_known) return at + "unknown padding";
    if (p->activation < 0 || p->activation > 3) {
      return at + "fused activation " + std::to_string(p->activation) +
             " is not none/relu/relu_n1_to_1/relu6";
    }
    const int v = p->inputs[0];
    if (!IsActivation(v) || !IsFloat(v) || !IsFloat(u)) return at + "not float32";
    const std::vector<int>& vd = T(v)->dims;
    const std::vector<int>& ud = T(u)->dims;
    const std::vector<int>& qd = T(quantized)->dims;
    if (vd.size() != 4 || ud.size() != 4 || qd.size() != 4 || vd[0] != ud[0] ||
        vd[3] != ud[3] || vd[3] < 1 || qd[3] % vd[3] != 0 ||
        Elements(ud) != Elements(qd)) {
      return at + "its pixels do not tile the quantized input's";
    }
    if (p->filter_h < 1 || p->filter_w < 1 || p->stride_h < 1 || p->stride_w < 1) {
      return at + "invalid filter sizes or strides";
    }
    auto out = [&](int in, int f, int s) {
      return p->padding_same ? (in + s - 1) / s : (in - f + s) / s;
    };
    if (ud[1] != out(vd[1], p->filter_h, p->stride_h) ||
        ud[2] != out(vd[2], p->filter_w, p->stride_w)) {
      return at + "its options do not give its output shape";
    }
    m->pool = p->index;
    m->pool_nodes = reshapes;
    m->pool_nodes.push_back(p->index);
    return "";
  }

  // ADD(MUL output, r) with r a float activation of the same shape, the only reader.
  void MatchResidualAdd(KMatch* m, std::vector<int>* nodes) const {
    const int y = m->output;
    const std::vector<int> readers = Consumers(y);
    if (readers.size() != 1) return;
    const auto it = by_index_.find(readers[0]);
    if (it == by_index_.end() || it->second->op != GraphOp::kAdd) return;
    const GraphNode& add = *it->second;
    if (add.inputs.size() != 2 || add.outputs.size() != 1 || add.activation < 0 ||
        add.activation > 3) {
      return;
    }
    const int r = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
    if (r == y || (add.inputs[0] != y && add.inputs[1] != y) || !IsActivation(r) || !IsFloat(r) ||
        T(r)->dims != T(y)->dims || !IsFloat(add.outputs[0]) ||
        T(add.outputs[0])->dims != T(y)->dims) {
      return;
    }
    for (int n : *nodes) {  // the residual must come from outside the pattern
      for (int t : by_index_.at(n)->outputs) {
        if (t == r) return;
      }
    }
    nodes->push_back(add.index);
    m->add = add.index;
    m->residual = r;
    m->last = add.index;
    m->output = add.outputs[0];
  }

  bool BoxFilterOk(const GraphNode& conv, std::string* why) const {
    if (conv.inputs.size() < 2 || conv.inputs.size() > 3) return *why = "malformed", false;
    if (!conv.padding_known) return *why = "unknown padding", false;
    if (conv.activation != 0) return *why = "has a fused activation", false;
    const GraphTensor* w = T(conv.inputs[1]);
    if (w == nullptr || !w->constant || w->type != kFloat32 || w->data == nullptr ||
        w->dims.size() != 4 || w->dims[0] != 1 || w->dims[3] != 1) {
      return *why = "the filter is not a constant float [1, kh, kw, 1]", false;
    }
    const float* v = static_cast<const float*>(w->data);
    const int64_t n = Elements(w->dims);
    for (int64_t i = 1; i < n; ++i) {
      if (!(v[i] == v[0])) return *why = "the filter is not a constant box (its values differ)", false;
    }
    if (conv.inputs.size() == 3 && conv.inputs[2] >= 0) {
      const GraphTensor* bias = T(conv.inputs[2]);
      if (bias == nullptr || !bias->constant || bias->type != kFloat32 || bias->data == nullptr ||
          Elements(bias->dims) != 1) {
        return *why = "the bias is not one constant float", false;
      }
    }
    const GraphTensor* a = T(conv.inputs[0]);
    const GraphTensor* k = T(conv.outputs[0]);
    if (a == nullptr || k == nullptr || a->dims.size() != 4 || a->dims[3] != 1) {
      return *why = "its input is not a 1-channel map", false;
    }
    if (conv.stride_h < 1 || conv.stride_w < 1 || conv.dilation_h < 1 || conv.dilation_w < 1) {
      return *why = "invalid strides or dilations", false;
    }
    // The options must reproduce the output shape (a check on the decoded options too).
    auto out = [&](int in, int f, int s, int d) {
      const int eff = (f - 1) * d + 1;
      return conv.padding_same ? (in + s - 1) / s : (in - eff + s) / s;
    };
    if (k->dims.size() != 4 || k->dims[0] != a->dims[0] ||
        k->dims[1] != out(a->dims[1], w->dims[1], conv.stride_h, conv.dilation_h) ||
        k->dims[2] != out(a->dims[2], w->dims[2], conv.stride_w, conv.dilation_w) ||
        k->dims[3] != 1) {
      return *why = "its options do not give its output shape", false;
    }
    return true;
  }

  const FusionGraph& g_;
  std::map<int, const GraphNode*> by_index_;
  std::map<int, const GraphNode*> producer_;
  std::map<int, std::vector<int>> consumers_;
};

}  // namespace

FusionMatches MatchKPatterns(const FusionGraph& graph) {
  FusionMatches out;
  Matcher(graph).Run(&out);
  return out;
}

}  // namespace xk
