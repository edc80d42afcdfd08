"""The model zoo: the paper's architectures in every precision.

>>> from xnor_keras import models
>>> model = models.build("fashion_net", "xnor")
>>> model.output_shape
(None, 10)

``build(name, precision, **options)`` takes the ablation switches of `Policy`
(``alpha``, ``block_order``, ``input_scaling``, ``binary_gradient``, ``weight_bits``,
``input_bits``, ``weight_gradient``); ``input_shape`` and ``num_classes`` default to
the architecture's dataset.
"""

from xnor_keras.models import architectures
from xnor_keras.models.policy import PRECISIONS, Policy

__all__ = ["ARCHITECTURES", "PRECISIONS", "Policy", "build"]

# name -> (builder, default input shape, default number of classes, dataset)
ARCHITECTURES = {
    "alexnet": (architectures.alexnet, (224, 224, 3), 1000, "imagenet2012"),
    "resnet18": (architectures.resnet18, (224, 224, 3), 1000, "imagenet2012"),
    "googlenet": (architectures.googlenet, (224, 224, 3), 1000, "imagenet2012"),
    "cifar_net": (architectures.cifar_net, (32, 32, 3), 10, "cifar10"),
    "fashion_net": (architectures.fashion_net, (28, 28, 1), 10, "fashion_mnist"),
}


def build(name, precision="xnor", *, input_shape=None, num_classes=None, **options):
    """Builds architecture ``name`` in ``precision`` ("fp", "bwn", "xnor", "bc", "bnn")."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"name must be one of {tuple(ARCHITECTURES)}. Received: name={name!r}"
        )
    builder, default_shape, default_classes, _ = ARCHITECTURES[name]
    return builder(
        Policy(precision, **options),
        input_shape=tuple(input_shape or default_shape),
        num_classes=num_classes or default_classes,
    )
