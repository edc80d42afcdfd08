// The fusion's view of a TFLite graph (delegate.cc): the FusionGraph of an execution plan,
// the KFusionSpec of a match, and the check that TFLite would keep each match's nodes in
// one delegate partition with no intermediate tensor leaving it.
#ifndef XNOR_KERAS_NATIVE_FUSION_TFLITE_H_
#define XNOR_KERAS_NATIVE_FUSION_TFLITE_H_

#include <string>
#include <vector>

#include "fusion.h"
#include "fusion_match.h"
#include "tflite_abi.h"

namespace xk {

// The nodes of `plan` (LCE custom ops by name, the builtins the fusion knows by code,
// everything else kOther) and every tensor; constants only when their byte size matches.
FusionGraph GraphFromContext(TfLiteContext* context, const TfLiteIntArray* plan);

// The per-batch-item spec of `m` (constant pointers into the model), or "" + *problem.
bool SpecForMatch(const FusionGraph& graph, const KMatch& m, KFusionSpec* spec,
                  std::string* problem);

// A match whose nodes TFLite would split over partitions, or one of whose intermediate
// tensors (every output of its nodes but the last's) TFLite would need outside (a model
// output, a reader outside the claimed nodes), cannot run fused: such a match is tried
// again without its residual ADD, if it has one, else moved from matches->fused to
// matches->not_fused (re-checking until none moves). A match whose failing node is its
// pool (or a RESHAPE after it) is tried again without them. `others` are the
// other nodes the delegate claims. Returns false if TFLite's preview fails.
bool KeepPartitionable(TfLiteContext* context, const std::vector<int>& others,
                       FusionMatches* matches);

}  // namespace xk

#endif  // XNOR_KERAS_NATIVE_FUSION_TFLITE_H_
