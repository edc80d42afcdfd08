"""Where the deploy tools keep what they build once per machine (kernels, Java classes).

``cache_dir("native", "XNOR_KERAS_NATIVE_CACHE")`` is ``$XNOR_KERAS_NATIVE_CACHE`` if
set, else ``$XDG_CACHE_HOME/xnor_keras/native`` (``~/.cache`` without XDG_CACHE_HOME).

>>> cache_dir("java", "XNOR_KERAS_JAVA_CACHE").name   # doctest: +SKIP
'java'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(kind: str, env_var: str) -> Path:
    """The cache directory for ``kind`` (not created), overridable by ``env_var``."""
    root = os.environ.get(env_var)
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "xnor_keras" / kind
