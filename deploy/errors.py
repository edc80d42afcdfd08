"""The one error type the deploy tools report to users (exit code 2, one line)."""

__all__ = ["DeployError", "EXIT_BAD_INPUT", "EXIT_CHECK_FAILED", "first_line"]

EXIT_BAD_INPUT = 2  # unusable input: missing/corrupt file, bad flag value, …
EXIT_CHECK_FAILED = 1  # the command ran but a check failed (verify beyond tolerance)


class DeployError(Exception):
    """A problem with the user's input or model, described in one line.

    The CLI prints ``error: <message>`` and exits with ``EXIT_BAD_INPUT``; library
    callers get the exception.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), for
    one-line `DeployError` messages."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
