"""Importing xnor_keras activates legacy Keras, or refuses clearly."""

import os
import subprocess
import sys

import pytest


def _python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_import_activates_legacy_keras():
    result = _python("import xnor_keras, tensorflow as tf; print(tf.keras.Model.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


@pytest.mark.parametrize("code", [
    "import tensorflow as tf; import xnor_keras",
    "import keras; import xnor_keras",
])
def test_import_refuses_keras3_already_active(code):
    result = _python(code)
    assert result.returncode != 0
    assert "Keras 3 is active" in result.stderr.splitlines()[-1]


def test_import_after_tensorflow_with_the_switch_is_fine():
    result = _python("import tensorflow as tf; import xnor_keras; print(tf.keras.Model.__module__)",
                     TF_USE_LEGACY_KERAS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


@pytest.mark.parametrize("value", ["0", "false"])
def test_import_refuses_explicit_keras3_switch(value):
    result = _python("import xnor_keras", TF_USE_LEGACY_KERAS=value)
    assert result.returncode != 0
    assert f"Received: TF_USE_LEGACY_KERAS='{value}'" in result.stderr
