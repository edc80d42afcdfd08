"""The one error the data pipelines raise for missing or corrupt data."""

__all__ = ["DataUnavailableError"]


class DataUnavailableError(RuntimeError):
    """The data set is not on this machine, or its files are corrupt.

    The message says where it looked and how to get the data.
    """
