"""The IDX file format (MNIST, Fashion-MNIST): a validating reader.

Layout: magic number 0x0000TTNN (TT the element type, NN the number of
dimensions), NN big-endian uint32 sizes, then prod(sizes) big-endian elements.
Files may be gzipped (detected by their first two bytes).
"""

import gzip

import numpy as np

from xnor_keras.data.errors import DataUnavailableError

__all__ = ["read_idx", "read_idx_header"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
               0x0D: np.float32, 0x0E: np.float64}


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _idx_header(stream, path):
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataUnavailableError(
            f"{path} is not an IDX file: bad magic number 0x{magic.hex() or 'empty'} "
            "(expected 0x0000TTNN: type TT, NN dimensions). Delete it and get the data again."
        )
    dims = stream.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise DataUnavailableError(f"{path} is truncated: its IDX header ends early.")
    dtype = np.dtype(_IDX_DTYPES[magic[2]]).newbyteorder(">")
    return dtype, tuple(int(d) for d in np.frombuffer(dims, ">u4"))


def read_idx_header(path):
    """The (big-endian dtype, shape) of an IDX file, reading only its header."""
    with _open_maybe_gzip(path) as stream:
        try:
            return _idx_header(stream, path)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise DataUnavailableError(f"{path} is corrupt: {error}") from error


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a NumPy array in native byte order.

    The header is validated: magic number 0x0000TTNN (TT the element type, NN the
    number of dimensions), NN big-endian uint32 sizes, then exactly prod(sizes)
    elements. A bad header, a short or long payload, or a broken gzip stream raises
    `DataUnavailableError` naming the file.

    >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
    (10000,)
    """
    with _open_maybe_gzip(path) as stream:
        try:
            dtype, shape = _idx_header(stream, path)
            payload = stream.read()
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise DataUnavailableError(f"{path} is corrupt: {error}") from error
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(payload) != expected:
        raise DataUnavailableError(
            f"{path} is corrupt: its header announces shape {shape} ({expected} bytes of data) "
            f"but it holds {len(payload)} bytes."
        )
    return np.frombuffer(payload, dtype).reshape(shape).astype(dtype.newbyteorder("="))

