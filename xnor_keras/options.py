"""The binary options: one declaration of every XNOR-Net / BWN ablation switch.

Each field of `BinaryOptions` carries its allowed values, help text and where it
applies (``scope``). Layers (`xnor_keras.layers`), `xnor_keras.models.Policy`,
`xnor_keras.training.TrainConfig` and the `xnor-train` flags all read this table,
so a new binary option is one new field here plus its use in the layers.

| option            | values                 | scope  | meaning                              |
|-------------------|------------------------|--------|--------------------------------------|
| ``alpha``         | mean_abs/learned/none  | weight | α of eq. 6, learned, or none         |
| ``weight_gradient``| paper / ste           | weight | ∂C/∂W rule (§3.1) or clipped STE     |
| ``binary_gradient``| bool or a mode        | weight | binarize the gradient (§3.2)         |
| ``binary_gradient_for``| both/weights/inputs | weight | which backward products use it      |
| ``weight_bits``   | None or k ≥ 1          | weight | k-bit weights q_k instead of sign    |
| ``input_scaling`` | bool                   | input  | K (eq. 11) / β (eq. 10)              |
| ``input_bits``    | None or k ≥ 1          | input  | k-bit inputs q_k instead of sign     |
| ``block_order``   | bacp / cbap            | block  | Fig. 3's block order                 |

A None field means "not given": the precision's (or the layer's) default applies.
``binary_gradient`` is a switch with modes: False (off), True (the default mode,
`DEFAULT_BINARY_GRADIENT`) or one of `BINARY_GRADIENTS` (which sub-tensor shares one
scale max|g|; see `xnor_keras.quantizers.binary_gradient`). Its flag takes
``--binary_gradient``, ``--nobinary_gradient``, ``--binary_gradient=true`` or
``--binary_gradient=position``.

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

from absl import flags  # absl comes with TensorFlow

from xnor_keras.validation import one_of, positive_int

__all__ = ["BinaryOptions", "Scope", "check_option", "ALPHA_MODES", "WEIGHT_GRADIENTS",
           "BLOCK_ORDERS", "BINARY_GRADIENTS", "DEFAULT_BINARY_GRADIENT",
           "BINARY_GRADIENT_PRODUCTS", "binary_gradient_mode"]

ALPHA_MODES = ("mean_abs", "learned", "none")
WEIGHT_GRADIENTS = ("paper", "ste")
BLOCK_ORDERS = ("bacp", "cbap")
# Which sub-tensor of the gradient shares one scale max|g| (quantizers.binary_gradient).
BINARY_GRADIENTS = ("position", "example", "channel", "tensor")
DEFAULT_BINARY_GRADIENT = "position"  # what True means; why: quantizers.binary_gradient
# Which products of the backward pass take the binarized gradient: ∂C/∂I and ∂C/∂W
# ("both", the default), ∂C/∂W only, or ∂C/∂I only (xnor_keras.layers).
BINARY_GRADIENT_PRODUCTS = ("both", "weights", "inputs")


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
    (None means binary). A bool field with choices (a switch with modes) takes True,
    False or one of its choices.
    """
    meta = _FIELDS[name].metadata
    if value is None and (optional or meta["kind"] is int):
        return
    if meta["kind"] is bool and meta["choices"] is not None:
        if not isinstance(value, bool) and value not in meta["choices"]:
            raise ValueError(f"{name} must be True, False or one of {meta['choices']}. "
                             f"Received: {name}={value!r}")
        return
    if meta["kind"] is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")
    if meta["kind"] is int:
        positive_int(name, value, optional=True)
    if meta["choices"] is not None:
        one_of(name, value, meta["choices"])


@dataclasses.dataclass(frozen=True)
class BinaryOptions:
    """The binary options, each None (not given) or a valid value (see the module table)."""

    alpha: str | None = _option(str, "Weight scale: eq. 6, learned, or none.", Scope.WEIGHT,
                                ALPHA_MODES)
    block_order: str | None = _option(str, "B-A-C-P (paper) or C-B-A-P.", Scope.BLOCK,
                                      BLOCK_ORDERS)
    input_scaling: bool | None = _option(bool, "Use K / β (eqs. 10-11).", Scope.INPUT)
    binary_gradient: bool | str | None = _option(
        bool, f"Binarize the gradient into each binary layer (§3.2): true (= "
        f"{DEFAULT_BINARY_GRADIENT}), false, or the sub-tensor sharing one scale max|g|: "
        f"{', '.join(BINARY_GRADIENTS)}.", Scope.WEIGHT, BINARY_GRADIENTS)
    binary_gradient_for: str | None = _option(
        str, "Which backward products take the binary gradient: both (dC/dI and dC/dW), "
        "weights (dC/dW only) or inputs (dC/dI only).", Scope.WEIGHT, BINARY_GRADIENT_PRODUCTS)
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
        flag_values = flags.FLAGS if flag_values is None else flag_values
        for f in dataclasses.fields(BinaryOptions):
            kind, choices, help = (f.metadata[k] for k in ("kind", "choices", "help"))
            if kind is bool and choices is not None:
                # boolean=True: absl also takes the bare --name and --noname forms.
                flags.DEFINE_flag(flags.Flag(_SwitchParser(choices), None, f.name, None, help,
                                             boolean=True), flag_values=flag_values)
            elif choices is not None:
                flags.DEFINE_enum(f.name, None, list(choices), help, flag_values=flag_values)
            elif kind is bool:
                flags.DEFINE_boolean(f.name, None, help, flag_values=flag_values)
            else:
                flags.DEFINE_integer(f.name, None, help, flag_values=flag_values)


def binary_gradient_mode(value):
    """The mode a ``binary_gradient`` option means: None (off) or one of `BINARY_GRADIENTS`.

    >>> binary_gradient_mode(True), binary_gradient_mode(False), binary_gradient_mode("channel")
    ('position', None, 'channel')
    """
    check_option("binary_gradient", value, optional=True)
    if value is True:
        return DEFAULT_BINARY_GRADIENT
    return value or None


class _SwitchParser(flags.ArgumentParser):
    """Parses a switch with modes: true/false (any case, 1/0, yes/no) or one of its modes."""

    _WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def __init__(self, choices):
        self.choices = tuple(choices)

    def parse(self, argument):
        if isinstance(argument, bool) or argument in self.choices:
            return argument
        word = str(argument).lower()
        if word in self._WORDS:
            return self._WORDS[word]
        raise ValueError(f"must be true, false or one of {', '.join(self.choices)}. "
                         f"Received: {argument!r}")

    def flag_type(self):
        return "bool or mode"


_FIELDS = {f.name: f for f in dataclasses.fields(BinaryOptions)}
