"""Argument checks shared by the whole project, with Keras-style messages.

Every check names the argument and ends in ``Received: name=value``, so a caller
sees at once which argument was wrong and what it was:

>>> positive_int("batch_size", 32)
32
>>> positive_int("batch_size", 0)
Traceback (most recent call last):
...
ValueError: batch_size must be a positive integer. Received: batch_size=0

Integers are Python or NumPy integers (anything `numbers.Integral`), never ``bool``
(``True`` is an ``int`` in Python, but passing it for a count is a mistake).
"""

import numbers

__all__ = ["integer_at_least", "positive_int", "one_of"]


def one_of(name, value, choices, *, error=ValueError):
    """Returns ``value`` if it is among ``choices``; raises ``error`` otherwise.

    >>> one_of("schedule", "step", ("step", "cosine"))
    'step'
    >>> one_of("schedule", "linear", ("step", "cosine"))
    Traceback (most recent call last):
    ...
    ValueError: schedule must be one of ('step', 'cosine'). Received: schedule='linear'
    """
    if value not in choices:
        raise error(f"{name} must be one of {choices}. Received: {name}={value!r}")
    return value


def integer_at_least(name, value, minimum, *, optional=False, error=ValueError):
    """Returns ``value`` if it is an integer ``>= minimum``; raises ``error`` otherwise.

    Args:
      name: the argument's name as the caller knows it (``"batch_size"``, ``"--runs"``).
      value: the value to check.
      minimum: the smallest accepted integer.
      optional: also accept ``None`` (returned unchanged).
      error: the exception class to raise (``ValueError``, or a project error type).

    >>> integer_at_least("warmup", 0, 0)
    0
    >>> integer_at_least("warmup", -1, 0)
    Traceback (most recent call last):
    ...
    ValueError: warmup must be an integer >= 0. Received: warmup=-1
    """
    if optional and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if optional:
            kind = f"None or {kind}"
        raise error(f"{name} must be {kind}. Received: {name}={value!r}")
    return value


def positive_int(name, value, *, optional=False, error=ValueError):
    """Returns ``value`` if it is an integer ``>= 1``; see `integer_at_least`.

    >>> positive_int("limit", None, optional=True) is None
    True
    """
    return integer_at_least(name, value, 1, optional=optional, error=error)
