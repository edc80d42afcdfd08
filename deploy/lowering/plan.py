"""What `lower` returns: the lowered model and one `LayerPlan` per Keras layer."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from deploy.errors import DeployError

# Each Keras layer's ops are emitted under the name scope ``LayerPlan.scope`` ("L7");
# a binary layer's binarized input sign(x) under "<scope>/in" ("L7/in"), and a value
# that only stands for the Keras tensor through its sign (a folded pre-activation
# m·y + b) under "<scope>/pre". The converted file's tensor names keep these scopes
# (see `deploy.certify.segments`).
INPUT_SCOPE = "in"
PRE_SCOPE = "pre"


class LoweringError(DeployError):
    """A binary layer cannot be lowered to an LCE binary op (message names it)."""


@dataclasses.dataclass
class LayerPlan:
    """What `lower` did with one Keras layer (the conversion report's source).

    ``role``: ``"binary"`` (binary inputs and weights: an ``LceBconv2d``),
    ``"binary-weight"`` (BWN: float inputs, ±α_c weights), ``"float"`` (a float layer
    with weights), ``"fallback"`` (a quantized layer kept in float, with
    ``fallback_reason``) or ``"other"`` (no weights). ``filter_signs``: for binary and
    binary-weight layers, the ±1 pattern of the filter in TFLite layout (C_out, kh,
    kw, C_in) for conv-lowered layers, (units, inputs) for BWN dense layers.
    """

    name: str
    class_name: str
    role: str
    lowering: str = ""
    notes: list = dataclasses.field(default_factory=list)
    filter_signs: np.ndarray | None = None
    float_twin_params: int = 0
    float_twin_macs: int = 0
    fallback_reason: str | None = None
    scope: str = ""
    outcome: str = ""  # set by deploy.convert from the converted file


@dataclasses.dataclass
class Lowered:
    """The lowered model: a `tf.Module` whose ``serve`` signature LCE converts.

    ``function`` is the traced concrete function (batch 1), ``plans`` one `LayerPlan`
    per Keras layer in topological order, ``scopes`` maps the short name scope used
    for each layer's ops (``"L7"``) to the layer name.
    """

    module: tf.Module
    function: object
    plans: list
    scopes: dict
    input_shape: tuple

    def __call__(self, x) -> np.ndarray:
        """Runs the lowered graph on a batch-1 input (NumPy in, NumPy out)."""
        return self.function(tf.constant(x, tf.float32))["output"].numpy()
