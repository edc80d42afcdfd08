"""Atomic file writes: a reader sees the old file or the new one, never a part.

The content goes to a temporary file in the target's own directory (so that the
final step stays on one file system), is flushed and ``fsync``-ed, and then
``os.replace`` puts it in place in one step. If anything fails before that, the
temporary file is removed and the target is untouched. The new file gets the
permissions a plain ``open(path, "w")`` would give it (``0o666`` less the umask).

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "report.md")
>>> atomic_write(path, "# Report\\n")
>>> with atomic_open(path, "w") as f:
...     _ = f.write("# Report\\n")
...     _ = f.write("more\\n")
>>> open(path).read()
'# Report\\nmore\\n'
"""

import contextlib
import os
import uuid

__all__ = ["atomic_open", "atomic_savefig", "atomic_write"]

_MODES = ("w", "wb")


@contextlib.contextmanager
def atomic_open(path, mode="w", *, encoding="utf-8"):
    """A context manager yielding a file whose content replaces ``path`` on success.

    ``mode``: ``"w"`` (text, in ``encoding``) or ``"wb"`` (bytes). On an
    exception inside the ``with`` block nothing is replaced and the exception
    propagates. A missing directory raises ``FileNotFoundError`` naming it.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}. Received: mode={mode!r}")
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    temporary = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: never write through someone else's file; 0o666: the umask applies.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    binary = "b" in mode
    try:
        with os.fdopen(descriptor, "wb" if binary else "w",
                       encoding=None if binary else encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def atomic_write(path, content, *, encoding="utf-8"):
    """Atomically replaces ``path`` by ``content`` (``str``: text in ``encoding``; ``bytes``).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.bin")
    >>> atomic_write(path, b"\\x00\\x01")
    >>> open(path, "rb").read()
    b'\\x00\\x01'
    """
    if isinstance(content, str):
        mode = "w"
    elif isinstance(content, (bytes, bytearray, memoryview)):
        mode = "wb"
    else:
        raise TypeError(
            f"content must be str or bytes. Received: content of type {type(content).__name__}"
        )
    with atomic_open(path, mode, encoding=encoding) as stream:
        stream.write(content)


def atomic_savefig(figure, path, **savefig_options):
    """Atomically writes a Matplotlib ``figure`` to ``path`` (``figure.savefig`` options).

    The format is the one of ``path``'s extension unless ``format=`` is given (the
    temporary file has none of its own). Closing the figure stays the caller's job.
    """
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".")
    savefig_options.setdefault("format", extension or None)
    with atomic_open(path, "wb") as stream:
        figure.savefig(stream, **savefig_options)


def _fsync_directory(directory):
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
