"""The one error type the deploy tools report to users (exit code 2, one line)."""

__all__ = ["DeployError", "EXIT_BAD_INPUT", "EXIT_CHECK_FAILED"]

EXIT_BAD_INPUT = 2  # unusable input: missing/corrupt file, bad flag value, …
EXIT_CHECK_FAILED = 1  # the command ran but a check failed (verify beyond tolerance)


class DeployError(Exception):
    """A problem with the user's input or model, described in one line.

    The CLI prints ``error: <message>`` and exits with ``EXIT_BAD_INPUT``; library
    callers get the exception.
    """
