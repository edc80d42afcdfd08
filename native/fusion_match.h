// Finding the K pattern of fusion.h in a model's graph, independent of TFLite: the delegate
// describes the graph with `FusionGraph` (its nodes in execution order, their tensors and
// decoded options) and claims the nodes of every `KMatch`; every candidate that is not
// fused gets a one-line reason.
//
// A candidate is an LceBconv2d whose float output is multiplied (MUL) by a non-constant
// tensor. It is fused when that tensor is K = box(MEAN(ABS(x))) (box: a CONV_2D whose
// filter values are all equal, 1 channel) or RESHAPE(MEAN(ABS(x))) (dense layers), the
// LceBconv2d reads LceQuantize(x) (RESHAPEs of x allowed on either side), and every
// intermediate tensor is read only inside the pattern. A per-channel MUL / ADD chain with
// constant operands that produces x and feeds only the pattern is fused too (up to 2), and
// so is an ADD of a non-constant tensor of the same shape (a shortcut) that alone reads the
// MUL's output. A MAX_POOL_2D producing the pattern's input u (the affine's input, or x;
// RESHAPEs allowed in between), read only by the pattern, is fused too (the pattern then reads the pool's input);
// one that is not gets a line in `not_fused` and the pattern is fused without it.
#ifndef XNOR_KERAS_NATIVE_FUSION_MATCH_H_
#define XNOR_KERAS_NATIVE_FUSION_MATCH_H_

#include <string>
#include <vector>

namespace xk {

enum class GraphOp {
  kOther = 0,
  kLceQuantize,
  kLceDequantize,
  kLceBconv2d,
  kLceBMaxPool2d,
  kMul,
  kAdd,
  kAbs,
  kMean,
  kConv2d,
  kReshape,
  kMaxPool2d,
};

const char* GraphOpName(GraphOp op);

struct GraphTensor {
  int type = 0;  // TfLiteType: 1 float32, 2 int32
  std::vector<int> dims;
  bool constant = false;
  const void* data = nullptr;  // constant tensors only
};

struct GraphNode {
  int index = 0;  // node index in the model
  GraphOp op = GraphOp::kOther;
  std::vector<int> inputs, outputs;
  int activation = 0;  // MUL / ADD / CONV_2D: TfLiteFusedActivation (0 none, 1 relu,
                       // 2 relu_n1_to_1, 3 relu6; others are not fused)
  // CONV_2D, MAX_POOL_2D (filter_h / filter_w: MAX_POOL_2D only)
  bool padding_same = false;
  bool padding_known = false;
  int stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int filter_h = 0, filter_w = 0;
};

struct FusionGraph {
  std::vector<GraphNode> nodes;      // execution order
  std::vector<GraphTensor> tensors;  // by tensor index
};

struct AffineMatch {
  int node = 0;
  bool is_mul = true;
  int constant = 0;  // tensor index of the per-channel constant
};

struct KMatch {
  std::vector<int> nodes;  // every node of the pattern, ascending
  int quantize = 0, bconv = 0, mul = 0;  // node indices
  int abs = 0, mean = 0;
  int k_node = 0;  // the CONV_2D (box) or the RESHAPE producing K
  bool box = false;
  int root = 0;    // tensor: u, what the pattern reads (the affine's input, or x)
  int x = 0;       // tensor: the quantized x (after the affine), flat order
  int quantized_input = 0;  // tensor: LceQuantize's input (x or a RESHAPE of it)
  int abs_input = 0;        // tensor: ABS's input (x or a RESHAPE of it)
  int k = 0;                // tensor: K
  int add = -1;             // node: a residual ADD after the MUL (ResNet shortcuts), or -1
  int residual = -1;        // tensor: the ADD's other input
  int last = 0;             // node: the pattern's last (the ADD, else the MUL)
  int output = 0;           // tensor: the last node's output
  int mul_output = 0;       // tensor: the MUL's output
  std::vector<AffineMatch> affine;  // from u to x
  int pool = -1;  // node: a MAX_POOL_2D producing u (then `root` is its input v), or -1
  std::vector<int> pool_nodes;  // the pool and the RESHAPEs from its output to u
  int unpooled_root = -1;       // tensor: what the pattern reads without the pool (u)
};

struct NotFused {
  int node = 0;  // the candidate LceBconv2d
  std::string reason;
};

struct FusionMatches {
  std::vector<KMatch> fused;
  std::vector<NotFused> not_fused;
};

FusionMatches MatchKPatterns(const FusionGraph& graph);

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_FUSION_MATCH_H_
