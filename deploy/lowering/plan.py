"""What `lower` returns: the lowered model and one `LayerPlan` per Keras layer."""

from __future__ import annotations

import dataclasses
import enum

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


class Role(enum.StrEnum):
    """What `lower` makes of a Keras layer (`LayerPlan.role`).

    A ``str`` (`enum.StrEnum`: ``str()``, f-strings and JSON give the value), so the
    report's metadata records and comparisons such as ``role == "binary"`` see plain
    strings; `deploy.report` reads them back as strings without importing this module.
    """

    BINARY = "binary"  # binary inputs and weights: an LceBconv2d
    BINARY_WEIGHT = "binary-weight"  # BWN: float inputs, ±α_c weights
    FLOAT = "float"  # a float layer with weights
    FALLBACK = "fallback"  # a quantized layer kept in float (see `LayerPlan.fallback_reason`)
    OTHER = "other"  # no weights

    @property
    def binary(self) -> bool:
        """Whether the layer's weights are binary (`BINARY` or `BINARY_WEIGHT`)."""
        return self in (Role.BINARY, Role.BINARY_WEIGHT)


class Outcome(enum.StrEnum):
    """What a layer became in the converted file (`LayerPlan.outcome`, set by
    ``deploy.convert``): a binary role's outcome is `FLOAT` when LCE left it in float."""

    BINARY = "binary"  # an LceBconv2d holds its filter
    BINARY_WEIGHT = "binary-weight"  # its ±α_c constant was found (and is stored 1-bit)
    FLOAT = "float"
    OTHER = "other"
    INT8 = "int8"  # a float layer found as an int8 op (``int8_float_layers``)


@dataclasses.dataclass
class LayerPlan:
    """What `lower` did with one Keras layer (the conversion report's source).

    ``role``: a `Role` (``fallback_reason`` says why for `Role.FALLBACK`).
    ``filter_signs``: for binary and binary-weight layers, the ±1 pattern of the filter
    in TFLite layout (C_out, kh, kw, C_in) for conv-lowered layers, (units, inputs) for
    BWN dense layers. ``outcome``: an `Outcome`, None until ``deploy.convert`` has
    checked the converted file. ``int8``: a float layer the lowering emitted as int8
    (`deploy.lowering.quantize`).
    """

    name: str
    class_name: str
    role: Role
    lowering: str = ""
    notes: list = dataclasses.field(default_factory=list)
    filter_signs: np.ndarray | None = None
    float_twin_params: int = 0
    float_twin_macs: int = 0
    fallback_reason: str | None = None
    scope: str = ""
    outcome: Outcome | None = None
    int8: bool = False


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
