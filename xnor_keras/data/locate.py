"""Finds a data set's source on this machine: TFDS data, IDX files or an image folder.

Prepared TFDS data is looked up in ``data_dir``, else ``$TFDS_DATA_DIR``, else
``~/tensorflow_datasets``; MNIST and Fashion-MNIST then fall back to IDX files
(Fashion-MNIST also to the Debian package). TFDS downloads only if asked to.
"""

import os

from xnor_keras.data import registry
from xnor_keras.data.errors import DataUnavailableError
from xnor_keras.data.idx_files import IdxFiles
from xnor_keras.data.image_folder import ImageFolder
from xnor_keras.data.tfds_prepared import TfdsPrepared

__all__ = ["locate", "tfds_dirs"]


def tfds_dirs(data_dir):
    """The directories searched for prepared TFDS data."""
    if data_dir is not None:
        return [os.path.expanduser(os.fspath(data_dir))]
    default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return [os.path.expanduser(default)]


def locate(name, *, data_dir, download):
    """The source of ``name``'s data on this machine, or `DataUnavailableError`."""
    entry = registry.lookup(name)
    if entry is registry.FOLDER:
        return ImageFolder(name)
    looked = []
    for directory in tfds_dirs(data_dir):
        path = TfdsPrepared.find(directory, name)
        if path:
            return TfdsPrepared(path, name)
        looked.append(f"TFDS data in {os.path.join(directory, name)}")
    if name in ("mnist", "fashion_mnist"):
        directories = []
        if data_dir is not None:
            directories += [os.fspath(data_dir), os.path.join(os.fspath(data_dir), name)]
        if name == "fashion_mnist":
            directories.append(registry.FASHION_MNIST_DEBIAN_DIR)
        for directory in directories:
            source = IdxFiles.find(os.path.expanduser(directory), name)
            if source:
                return source
            looked.append(f"IDX files in {directory}")
    if download:
        return _download(name, tfds_dirs(data_dir)[0])
    raise DataUnavailableError(
        f"{name} is not on this machine (looked for {'; '.join(looked)}). "
        + entry.how_to_get.format(data_dir=tfds_dirs(data_dir)[0])
    )


def _download(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        tfds.builder(name, data_dir=data_dir).download_and_prepare()
    except Exception as error:  # TFDS raises many kinds; all mean "no data".
        raise DataUnavailableError(
            f"preparing {name} in {data_dir} failed: {error}. "
            + registry.DATASETS[name].how_to_get.format(data_dir=data_dir)
        ) from error
    return TfdsPrepared(TfdsPrepared.find(data_dir, name), name)

