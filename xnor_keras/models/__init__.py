"""The model zoo: the paper's architectures in every precision.

>>> from xnor_keras import models
>>> model = models.build("fashion_net", "xnor")
>>> model.output_shape
(None, 10)

``build(name, precision, **options)`` takes the ablation switches of `Policy`
(the fields of `xnor_keras.options.BinaryOptions`); ``input_shape`` and ``num_classes`` default to
the architecture's dataset.
"""

from typing import Callable, NamedTuple

from xnor_keras.models import architectures
from xnor_keras.models.policy import PRECISIONS, Policy
from xnor_keras.validation import one_of

__all__ = ["ARCHITECTURES", "Architecture", "PRECISIONS", "Policy", "build"]


class Architecture(NamedTuple):
    """One zoo entry: its builder and the defaults of the data set it is trained on."""

    builder: Callable
    input_shape: tuple
    num_classes: int
    dataset: str


ARCHITECTURES = {
    "alexnet": Architecture(architectures.alexnet, (224, 224, 3), 1000, "imagenet2012"),
    "resnet18": Architecture(architectures.resnet18, (224, 224, 3), 1000, "imagenet2012"),
    "googlenet": Architecture(architectures.googlenet, (224, 224, 3), 1000, "imagenet2012"),
    "cifar_net": Architecture(architectures.cifar_net, (32, 32, 3), 10, "cifar10"),
    "fashion_net": Architecture(architectures.fashion_net, (28, 28, 1), 10, "fashion_mnist"),
}


def build(name, precision="xnor", *, input_shape=None, num_classes=None, **options):
    """Builds architecture ``name`` in ``precision`` ("fp", "bwn", "xnor", "bc", "bnn")."""
    one_of("name", name, tuple(ARCHITECTURES))
    arch = ARCHITECTURES[name]
    return arch.builder(
        Policy(precision, **options),
        input_shape=tuple(input_shape or arch.input_shape),
        num_classes=num_classes or arch.num_classes,
    )
