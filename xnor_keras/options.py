"""The binary options: one declaration of every XNOR-Net / BWN ablation switch.

Each field of `BinaryOptions` carries its allowed values, help text and where it
applies (``scope``). Layers (`xnor_keras.layers`), `xnor_keras.models.Policy`,
`xnor_keras.training.TrainConfig` and the `xnor-train` flags all read this table,
so a new binary option is one new field here plus its use in the layers.

| option            | values                 | scope  | meaning                              |
|-------------------|------------------------|--------|--------------------------------------|
| ``alpha``         | mean_abs/learned/none  | weight | α of eq. 6, learned, or none         |
| ``weight_gradient``| paper / ste           | weight | ∂C/∂W rule (§3.1) or clipped STE     |
| ``binary_gradient``| bool                  | weight | binarize the gradient (§3.2)         |
| ``weight_bits``   | None or k ≥ 1          | weight | k-bit weights q_k instead of sign    |
| ``input_scaling`` | bool                   | input  | K (eq. 11) / β (eq. 10)              |
| ``input_bits``    | None or k ≥ 1          | input  | k-bit inputs q_k instead of sign     |
| ``block_order``   | bacp / cbap            | block  | Fig. 3's block order                 |

A None field means "not given": the precision's (or the layer's) default applies.

Example:

>>> BinaryOptions(alpha="learned", input_scaling=False).given()
{'alpha': 'learned', 'input_scaling': False}
>>> BinaryOptions(alpha="mean")
Traceback (most recent call last):
...
ValueError: alpha must be one of ('mean_abs', 'learned', 'none'). Received: alpha='mean'
"""

import dataclasses
import enum

from xnor_keras.validation import positive_int

__all__ = ["BinaryOptions", "Scope", "check_option", "ALPHA_MODES", "WEIGHT_GRADIENTS",
           "BLOCK_ORDERS"]

ALPHA_MODES = ("mean_abs", "learned", "none")
WEIGHT_GRADIENTS = ("paper", "ste")
BLOCK_ORDERS = ("bacp", "cbap")


class Scope(enum.Enum):
    """Which layers an option applies to."""

    WEIGHT = "weight"  # every binary layer (binarized or k-bit weights)
    INPUT = "input"  # layers that binarize their inputs (XNOR, BinaryNet)
    BLOCK = "block"  # the block around a layer, not the layer (a `Policy` option)


def _option(kind, help, scope, choices=None):
    """A `BinaryOptions` field: None by default, with its kind, values, help and scope."""
    return dataclasses.field(default=None, metadata={
        "kind": kind, "choices": choices, "help": help, "scope": scope})


def check_option(name, value, *, optional=False):
    """Validates one option value against its field; raises "... Received: name=value".

    ``optional`` lets None through (as "not given"); bit widths always accept None
    (None means binary).
    """
    meta = _FIELDS[name].metadata
    if value is None and (optional or meta["kind"] is int):
        return
    if meta["kind"] is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")
    if meta["kind"] is int:
        positive_int(name, value, optional=True)
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(
            f"{name} must be one of {meta['choices']}. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class BinaryOptions:
    """The binary options, each None (not given) or a valid value (see the module table)."""

    alpha: str | None = _option(str, "Weight scale: eq. 6, learned, or none.", Scope.WEIGHT,
                                ALPHA_MODES)
    block_order: str | None = _option(str, "B-A-C-P (paper) or C-B-A-P.", Scope.BLOCK,
                                      BLOCK_ORDERS)
    input_scaling: bool | None = _option(bool, "Use K / β (eqs. 10-11).", Scope.INPUT)
    binary_gradient: bool | None = _option(bool, "Binarize gradients (§3.2).", Scope.WEIGHT)
    weight_bits: int | None = _option(int, "k-bit weights instead of binary.", Scope.WEIGHT)
    input_bits: int | None = _option(int, "k-bit inputs instead of binary.", Scope.INPUT)
    weight_gradient: str | None = _option(str, "Weight gradient rule.", Scope.WEIGHT,
                                          WEIGHT_GRADIENTS)

    def __post_init__(self):
        for name in self.field_names():
            check_option(name, getattr(self, name), optional=True)

    @classmethod
    def field_names(cls, *scopes):
        """The option names (of the given scopes, or all), in declaration order."""
        return tuple(f.name for f in dataclasses.fields(BinaryOptions)  # not a subclass's
                     if not scopes or f.metadata["scope"] in scopes)

    def given(self):
        """The options that are not None, as a dict."""
        return {n: getattr(self, n) for n in self.field_names() if getattr(self, n) is not None}

    @classmethod
    def pick(cls, mapping):
        """The `BinaryOptions` among a mapping's keys (others ignored), e.g. a config."""
        return cls(**{n: mapping[n] for n in cls.field_names() if n in mapping})

    @classmethod
    def strip(cls, config):
        """A copy of a layer config without the binary options (for its float twin)."""
        return {k: v for k, v in config.items() if k not in cls.field_names()}

    @classmethod
    def define_flags(cls, flag_values=None):
        """Defines one absl flag per option (default None: the precision's default)."""
        from absl import flags

        flag_values = flags.FLAGS if flag_values is None else flag_values
        for f in dataclasses.fields(BinaryOptions):
            kind, choices, help = (f.metadata[k] for k in ("kind", "choices", "help"))
            if choices is not None:
                flags.DEFINE_enum(f.name, None, list(choices), help, flag_values=flag_values)
            elif kind is bool:
                flags.DEFINE_boolean(f.name, None, help, flag_values=flag_values)
            else:
                flags.DEFINE_integer(f.name, None, help, flag_values=flag_values)


_FIELDS = {f.name: f for f in dataclasses.fields(BinaryOptions)}
