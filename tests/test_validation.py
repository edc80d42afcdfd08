"""Tests of xnor_keras.validation, the shared argument checks."""

import numpy as np
import pytest

from xnor_keras.validation import integer_at_least, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(1)])
def test_positive_int_returns_accepted_values(value):
    assert positive_int("batch_size", value) is value


@pytest.mark.parametrize("value", [0, -2, 1.0, 2.5, "3", True, False, None, np.float32(4)])
def test_positive_int_refuses_with_the_received_value(value):
    with pytest.raises(ValueError) as error:
        positive_int("batch_size", value)
    assert str(error.value) == (
        f"batch_size must be a positive integer. Received: batch_size={value!r}")


def test_optional_accepts_none_and_says_so_when_refusing():
    assert positive_int("limit", None, optional=True) is None
    with pytest.raises(ValueError, match=r"^limit must be None or a positive integer\. "
                                         r"Received: limit=-1$"):
        positive_int("limit", -1, optional=True)


def test_integer_at_least_uses_its_minimum():
    assert integer_at_least("--warmup", 0, 0) == 0
    with pytest.raises(ValueError, match=r"^--warmup must be an integer >= 0\. "
                                         r"Received: --warmup=-1$"):
        integer_at_least("--warmup", -1, 0)
    with pytest.raises(ValueError, match="Received: k=2"):
        integer_at_least("k", 2, 3)


def test_the_error_class_is_the_callers():
    class ToolError(RuntimeError):
        pass

    with pytest.raises(ToolError, match="Received: threads=0"):
        positive_int("threads", 0, error=ToolError)
