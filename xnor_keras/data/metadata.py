"""What a data set is: its input shape, class names, and (`info`) what is on disk."""

import importlib.util
import os

from xnor_keras.data import registry
from xnor_keras.data.image_folder import ImageFolder
from xnor_keras.data.locate import locate

__all__ = ["class_names", "info", "input_shape", "num_classes"]


def input_shape(name):
    """The model input (height, width, channels) of data set ``name``.

    >>> input_shape("cifar10")
    (32, 32, 3)
    """
    return registry.lookup(name).input_shape


def class_names(name):
    """The class names of ``name``, in label order.

    ImageNet's are the WordNet ids of TFDS's label file; an image folder's are its
    sorted class directory names.

    >>> class_names("fashion_mnist")[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    entry = registry.lookup(name)
    if entry is registry.FOLDER:
        return ImageFolder(name).class_names
    if entry.class_names is None:
        return _tfds_label_file(os.path.join("datasets", name, "labels.txt"))
    return entry.class_names


def num_classes(name):
    """The number of classes of ``name``.

    >>> num_classes("imagenet2012")
    1000
    """
    return len(class_names(name))


def _tfds_label_file(relative):
    # Read from the installed package without importing it (that takes seconds).
    spec = importlib.util.find_spec("tensorflow_datasets")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    with open(path) as f:
        return tuple(line.strip() for line in f if line.strip())


def info(name, *, data_dir=None):
    """Locates the data of ``name`` and describes it.

    Returns a dict with ``name``, ``input_shape``, ``num_classes``, ``class_names``,
    ``splits`` (split name → number of examples) and ``source`` (where the data was
    found). Raises `DataUnavailableError` when the data is not on this machine.

    >>> info("fashion_mnist")["splits"]
    {'train': 60000, 'test': 10000}
    """
    source = locate(name, data_dir=data_dir, download=False)
    return {
        "name": str(name),
        "input_shape": input_shape(name),
        "num_classes": num_classes(name),
        "class_names": list(class_names(name)),
        "splits": {split: source.num_examples(split) for split in source.splits},
        "source": source.description,
    }

