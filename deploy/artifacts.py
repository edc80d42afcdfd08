"""Reading the .tflite files the deploy tools write, with one-line errors."""

from __future__ import annotations

import os

from deploy.errors import DeployError
from deploy.tflite_model import TFLiteFormatError, TFLiteModel
from deploy.validation import METADATA_NAME, check_metadata, validate

__all__ = ["METADATA_NAME", "require_file", "load_tflite", "read_metadata"]



def require_file(path, what: str) -> str:
    """``path`` as a string if it names an existing file, else `DeployError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DeployError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        raise DeployError(f"{path}: is a directory, not {what}")
    return path


def load_tflite(path) -> tuple[TFLiteModel, bytes]:
    """Reads and validates a .tflite file: (parsed model, raw bytes).

    Every check of `deploy.validation` runs here, so no runtime sees a file that could
    crash it; a bad file raises `DeployError` (one line naming the node).
    """
    path = require_file(path, "a .tflite file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DeployError(f"{path}: cannot read ({error.strerror})") from None
    try:
        tflite = TFLiteModel(data)
    except TFLiteFormatError as error:
        raise DeployError(f"{path}: {error}") from None
    return validate(tflite, path=path), data


def read_metadata(tflite: TFLiteModel, path) -> dict | None:
    """The deploy metadata (a dict) of a converted model, or None if it has none.

    The metadata is checked against the schema its readers index
    (`deploy.validation.check_metadata`) even if ``tflite`` did not come through
    `load_tflite`, so a corrupt entry is a one-line `DeployError`, never a KeyError.
    """
    found = check_metadata(tflite)
    if found:
        raise DeployError(f"{path}: {found[0].format()}")
    return tflite.json_metadata(METADATA_NAME)
