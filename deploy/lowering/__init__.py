"""Lowers a Keras model of binary layers to an inference graph that LCE turns into binary ops.

larq-compute-engine's converter recognises a binary convolution only in one form: a
``Conv2D`` whose input is ``larq.math.sign(x)`` and whose kernel is a constant equal
to ±s_c in every output channel c. `lower` rewrites a trained model so that every
binary layer has that form, and so that the graph around it lets LCE fuse as much as
possible, while computing the same function:

- **Binary weights baked.** Each binary layer's kernel is read through its own
  quantizer (`larq.context.quantized_scope`), so the graph holds exactly the ±α_c
  values the layer multiplies with (eq. 6), and is checked to be of that form.
- **Dense → convolution.** A binary dense layer becomes a 1×1 binary convolution; one
  that reads a flattened H×W×C tensor (AlexNet's fc6) becomes an H×W "valid" binary
  convolution on the unflattened tensor (Keras flattens in H, W, C order, so the
  kernel is only reshaped). The following BatchNorm/sign/dense stay on the 1×1
  feature map.
- **Input scaling.** K (eq. 11) and β (eq. 10) are computed in float from the layer's
  input with `xnor_keras.scaling`, and multiplied on the binary convolution's output.
- **BatchNorm + sign fold (no K).** When a binary layer without input scaling reads
  ``sign(BN(maxpool(relu(y))))`` of another binary layer's output y, the chain is
  replaced by ``sign(maxpool(m·y + b))`` with per-channel m ≥ 0, b: exact because a
  non-decreasing per-channel function commutes with max-pooling and
  ``sign(BN(relu(u))) = sign(BN(u))`` or a constant (see `folding.fold_sign_chain`). LCE then
  fuses m, b into the producing ``LceBconv2d`` and pools with ``LceBMaxPool2d``
  (writing bitpacked outputs directly when the convolution's padding allows). The
  same fold serves sign activation layers (BinaryNet's C-B-A-P blocks), and
  ``maxpool(sign(t))`` is emitted as ``sign(maxpool(t))`` so LCE pools bitpacked.
  Since the accumulator is α·z with z an integer, b is moved half a step between two
  integers (`folding.integer_threshold`): runtimes that round m·α·z + b differently then
  still binarize identically, and an exact tie keeps sign(0) = +1.
- **Binary-weight (BWN) layers** take float inputs; no LCE op computes with those, so
  they stay float convolutions here and their ±α_c weights are stored in 1 bit by
  `deploy.convert` after conversion.

**int8 float layers** (``lower(..., int8_ranges=...)``): the float convolutions and
dense layers (stem, shortcut projections, head), with a BatchNorm and ReLU that alone
read them folded in, are emitted between fake-quant ops that LCE's converter turns into
int8 ops; see `deploy.lowering.quantize`. Binary layers are lowered as without it.

A layer that cannot be lowered (k-bit quantizers, binary inputs with float weights,
a layer kind without an LCE binary op) raises `LoweringError` naming it, unless
``allow_float_fallback=True``, in which case it runs in float and its plan says why.

Example:

>>> import xnor_keras, tensorflow as tf
>>> from xnor_keras import models
>>> lowered = lower(models.build("fashion_net", "xnor"))
>>> [plan.name for plan in lowered.plans if plan.role is Role.BINARY]
['conv2', 'conv3', 'conv4', 'fc5']
>>> x = tf.random.normal((1, 28, 28, 1))
>>> y = lowered(x)            # the same logits as model(x), as NumPy

| module     | job                                                                  |
|------------|----------------------------------------------------------------------|
| `graph`    | reading the Keras graph: layer order, kinds, binary layers read out  |
| `folding`  | pure NumPy algebra of the BatchNorm/ReLU/pool/sign fold, ±α, signs   |
| `values`   | lowered-graph values and their origins (what a fold looks back at)   |
| `emit`     | the graph walk that emits the lowered `tf.Module`: `lower`           |
| `cost`     | float-twin parameters and MACs per layer (for the report)            |
| `quantize` | ``int8_float_layers``: int8 chains, folded weights, fake-quant ops    |
| `plan`     | `LayerPlan`, `Lowered`, `LoweringError`                              |
"""

from deploy.lowering.emit import lower
from deploy.lowering.folding import canonical_signs
from deploy.lowering.plan import (
    INPUT_SCOPE, PRE_SCOPE, LayerPlan, Lowered, LoweringError, Outcome, Role)

__all__ = ["INPUT_SCOPE", "PRE_SCOPE", "lower", "Lowered", "LayerPlan", "LoweringError",
           "Outcome", "Role", "canonical_signs"]
