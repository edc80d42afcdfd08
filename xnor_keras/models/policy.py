"""Precision policies: which layer and block a model uses at each binarizable place.

| precision | binary layers                                   | block order | activation |
|-----------|-------------------------------------------------|-------------|------------|
| ``fp``    | none (Conv2D / Dense)                           | C-B-A-P     | ReLU       |
| ``bwn``   | `BinaryWeightConv2D`/`Dense`, α by eq. 6        | C-B-A-P     | ReLU       |
| ``bc``    | BinaryConnect: sign(W) weights, no α, STE       | C-B-A-P     | ReLU       |
| ``xnor``  | `XnorConv2D`/`Dense`, α by eq. 6, K / β         | B-A-C-P     | sign       |
| ``bnn``   | BinaryNet: sign(W), sign(I), no α, no K         | C-B-A-P     | sign       |

The first and last layers of every model stay full precision, as in the paper (§4.1).
The ablation switches of Table 3 and §4.2 (``alpha``, ``block_order``,
``input_scaling``, ``binary_gradient``, ``binary_gradient_for``, ``weight_bits``,
``input_bits``, ``weight_gradient``) override a precision's defaults where they apply to it.

Example:

>>> policy = Policy("xnor", input_scaling=False)
>>> type(policy.conv(64, 3)).__name__
'XnorConv2D'
"""

import tensorflow as tf

from xnor_keras import layers as xl
from xnor_keras.blocks import binary_block
from xnor_keras.options import BinaryOptions, Scope
from xnor_keras.quantizers import BinaryInput
from xnor_keras.validation import one_of

__all__ = ["Policy", "PRECISIONS", "classifier"]

PRECISIONS = ("fp", "bwn", "xnor", "bc", "bnn")

_DEFAULTS = {
    "fp": {},
    "bwn": {"alpha": "mean_abs"},
    # BinaryConnect and BinaryNet clip the latent weights to [-1, 1].
    "bc": {"alpha": "none", "weight_gradient": "ste", "kernel_constraint": "weight_clip"},
    "xnor": {"alpha": "mean_abs", "input_scaling": True, "block_order": "bacp"},
    "bnn": {"alpha": "none", "input_scaling": False, "block_order": "cbap",
            "weight_gradient": "ste", "kernel_constraint": "weight_clip"},
}


class Policy:
    """Builds the layers and blocks of one precision (see the module table)."""

    def __init__(self, precision="xnor", **options):
        """``options``: `xnor_keras.options.BinaryOptions` fields (None: the default)."""
        one_of("precision", precision, PRECISIONS)
        given = BinaryOptions(**options).given()
        scopes = () if precision == "fp" else (Scope.WEIGHT,)
        if precision in ("xnor", "bnn"):
            scopes += (Scope.INPUT, Scope.BLOCK)
        allowed = BinaryOptions.field_names(*scopes) if scopes else ()
        for key, value in given.items():
            if key not in allowed:
                raise ValueError(
                    f"{key} does not apply to precision={precision!r} models. "
                    f"Received: {key}={value!r}"
                )
        self.precision = precision
        self.options = {**_DEFAULTS[precision], **given}
        self.block_order = self.options.pop("block_order", "cbap")
        self.binary_inputs = precision in ("xnor", "bnn")

    def get_config(self):
        return {"precision": self.precision, "block_order": self.block_order, **self.options}

    def conv(self, filters, kernel_size, *, strides=1, padding="same", name=None):
        """A binarizable convolution (bias-free: a BatchNorm always follows or precedes)."""
        args = dict(strides=strides, padding=padding, use_bias=False, name=name)
        if self.precision == "fp":
            return tf.keras.layers.Conv2D(filters, kernel_size, **args)
        cls = xl.XnorConv2D if self.binary_inputs else xl.BinaryWeightConv2D
        return cls(filters, kernel_size, **args, **self.options)

    def dense(self, units, *, name=None):
        """A binarizable fully-connected layer."""
        if self.precision == "fp":
            return tf.keras.layers.Dense(units, use_bias=False, name=name)
        cls = xl.XnorDense if self.binary_inputs else xl.BinaryWeightDense
        return cls(units, use_bias=False, name=name, **self.options)

    def block(self, x, layer, *, pool=None, relu=False, name=None):
        """One block around ``layer``: B-A-C-P or C-B-A-P (Fig. 3) per the policy.

        ``relu`` asks for the optional ReLU after a B-A-C-P binary layer (§3.2); the
        C-B-A-P blocks always have their activation (ReLU, or sign for binary inputs).
        """
        if self.block_order == "bacp":
            return binary_block(x, layer, order="bacp", pool=pool, relu=relu, name=name)
        activation = "sign" if self.binary_inputs else "relu"
        return binary_block(x, layer, order="cbap", pool=pool, activation=activation,
                            name=name)

    def stem(self, x, layer, *, pool=None, name=None):
        """The full-precision first layer's block: conv → BN → activation → pool.

        The activation is ReLU, except in C-B-A-P networks with binary inputs
        (BinaryNet, the Table 3b ablation), where it is sign as in BinaryNet: the next
        layer binarizes its input, and sign(ReLU(v)) = +1 for every v (sign(0) = +1)
        would feed it a constant. B-A-C-P blocks batch-normalize before their sign.
        """
        if self.block_order == "cbap":  # the policy's own C-B-A-P block decides the activation
            return self.block(x, layer, pool=pool, name=name)
        return binary_block(x, layer, order="cbap", activation="relu", pool=pool, name=name)

    def activation(self, x, *, name=None):
        """The C-B-A-P activation, for places (residual sums) outside a block."""
        if self.block_order == "bacp":
            return x
        if self.binary_inputs:
            return BinaryInput(name=name)(x)
        return tf.keras.layers.ReLU(name=name)(x)


def classifier(x, num_classes, *, name="logits"):
    """The full-precision last layer: BatchNorm → Dense, returning logits."""
    x = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-4,
                                           name=f"{name}_bn")(x)
    return tf.keras.layers.Dense(num_classes, name=name)(x)
