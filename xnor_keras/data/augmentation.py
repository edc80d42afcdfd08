"""Training augmentation recipes, keyed by architecture (§4.2 and the customary flip).

>>> AUGMENTATIONS["resnet18"].shorter_side
(256, 480)
"""

import dataclasses

__all__ = ["AUGMENTATIONS", "Augmentation", "resolve"]


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """A training augmentation recipe.

    The decoded image is first brought to the model's input the way evaluation does
    (`preprocess_eval`'s resize and centre crop) unless ``shorter_side`` is set, in
    which case its shorter side is resized to an integer drawn uniformly from
    ``shorter_side`` (inclusive) and a random ``input_size``² crop is taken. Then it
    is zero-padded by ``padding`` pixels and randomly cropped back, and flipped
    left-right with probability 1/2 if ``flip``.
    """

    input_size: int
    shorter_side: tuple | None = None
    padding: int = 0
    flip: bool = True
    source: str = ""


AUGMENTATIONS = {
    "alexnet": Augmentation(224, (256, 256),
                            source="§4.2 AlexNet: shorter side 256, random 224 crop; + flip"),
    "resnet18": Augmentation(224, (256, 480),
                             source="§4.2 ResNet-18: shorter side in [256, 480], random 224 "
                                    "crop; + flip"),
    "googlenet": Augmentation(224, (256, 320),
                              source="§4.2 GoogLeNet variant: shorter side in [256, 320], "
                                     "random 224 crop; + flip"),
    "cifar_net": Augmentation(32, padding=4,
                              source="BinaryConnect/BinaryNet CIFAR-10 net: 4 px pad, "
                                     "random 32 crop, flip"),
    "fashion_net": Augmentation(28, flip=False, source="no augmentation"),
    # Not an architecture's own: a choice for `TrainConfig.augmentation` (issue 15's screen).
    "fashion_net_pad_flip": Augmentation(28, padding=2,
                                         source="zero-pad 2 px, random 28 crop, flip"),
    "fashion_net_flip": Augmentation(28, source="left-right flip only"),
}


def resolve(recipe, spec):
    """The `Augmentation` of ``recipe``, checked against the spec's input size."""
    if isinstance(recipe, Augmentation):
        augmentation = recipe
    elif recipe in AUGMENTATIONS:
        augmentation = AUGMENTATIONS[recipe]
    else:
        raise ValueError(
            f"recipe must be one of {tuple(AUGMENTATIONS)} or an Augmentation. "
            f"Received: recipe={recipe!r}"
        )
    height, width, _ = spec["input_shape"]
    size = augmentation.input_size
    if (size, size) != (height, width):
        raise ValueError(
            f"recipe {recipe!r} makes {size}×{size} inputs but {spec['dataset']} needs "
            f"{height}×{width}. Received: recipe={recipe!r}"
        )
    return augmentation

