"""Running pieces of a converted file on the Android demo's pure-Java interpreter.

`deploy.certify` certifies a .tflite on each runtime that executes it; the Android app
executes it with its own Java interpreter (``android_demo/interpreter/src``, package
``xnor.tflite``). This module runs that interpreter on the host JVM as one long-lived
process (``xnor.tflite.SegmentServer``) that loads each piece of the file once and then
runs it on as many inputs as the certificate needs, so a certify run costs one JVM start,
not one per piece and image. Its Java kernels run (``-Dxnor.native=off``), not the JNI
library, so the certificate is about the Java code.

The sources are compiled on first use with ``javac --release 8`` (the bytecode level of
the app, as tests/test_android_demo.py does) into ``$XNOR_KERAS_JAVA_CACHE`` (default
``~/.cache/xnor_keras/java``), keyed by a digest of the sources and the ``javac``
version. A missing ``java``/``javac``, a compile error, an error reported by the
interpreter (naming the operator) and a request that takes longer than ``timeout``
seconds (the JVM is then stopped) all raise a one-line `DeployError`.

Example:

>>> run = JavaSegment(part)                     # part: TFLiteModel.submodel(...) bytes  # doctest: +SKIP
>>> run([bits, floats]).shape                   # int32 bitpacked + float32 inputs       # doctest: +SKIP
(1, 14, 14, 64)
"""

from __future__ import annotations

import atexit
import collections
import fcntl
import hashlib
import os
import select
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

import numpy as np

from deploy.cache import cache_dir
from deploy.errors import DeployError

__all__ = ["INTERPRETER_SOURCES", "REQUEST_TIMEOUT", "build_classes", "JavaServer",
           "JavaSegment", "shared_server"]

INTERPRETER_SOURCES = Path(__file__).resolve().parents[2] / "android_demo" / "interpreter" / "src"
REQUEST_TIMEOUT = 120.0  # seconds for one load or run before the JVM counts as hung
JVM_OPTIONS = ("-Dxnor.native=off", "-XX:+UseSerialGC", "-Xshare:auto")
_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2}  # TFLite TensorType codes
_DTYPES = {code: dtype for dtype, code in _TYPES.items()}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DeployError(f"the java runtime needs a JDK ({name!r} not found on PATH); "
                          "install one, e.g. apt-get install openjdk-17-jdk-headless")
    return path


def _cache_dir() -> Path:
    return cache_dir("java", "XNOR_KERAS_JAVA_CACHE")


def _sources() -> list[Path]:
    files = sorted(INTERPRETER_SOURCES.rglob("*.java"))
    if not any(p.name == "SegmentServer.java" for p in files):
        raise DeployError(f"the Java interpreter's sources are missing in {INTERPRETER_SOURCES}")
    return files


_built: dict = {}  # this process's compiled classes, once found or built


def build_classes() -> Path:
    """The directory of the compiled interpreter classes, compiling them first if needed.

    Concurrent callers (processes) wait for one build; the directory appears atomically.

    >>> (build_classes() / "xnor" / "tflite" / "SegmentServer.class").is_file()  # doctest: +SKIP
    True
    """
    javac = _tool("javac")
    _tool("java")
    version = subprocess.run([javac, "-version"], capture_output=True, text=True)
    h = hashlib.sha256((version.stdout + version.stderr).encode() + b"\0")
    sources = _sources()
    for path in sources:
        h.update(str(path.relative_to(INTERPRETER_SOURCES)).encode() + b"\0"
                 + path.read_bytes() + b"\0")
    digest = h.hexdigest()[:16]
    if _built.get("digest") == digest:
        return _built["path"]
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"classes-{digest}"
    if not target.is_dir():
        with open(cache / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_dir():
                work = Path(tempfile.mkdtemp(dir=cache, prefix="build-"))
                result = subprocess.run([javac, "-nowarn", "--release", "8", "-encoding", "UTF-8",
                                         "-d", str(work), *map(str, sources)],
                                        capture_output=True, text=True, timeout=600)
                if result.returncode != 0:
                    shutil.rmtree(work, ignore_errors=True)
                    log = cache / "build-error.log"
                    log.write_text(result.stdout + result.stderr)
                    first = next((line for line in (result.stderr + result.stdout).splitlines()
                                  if line.strip()), f"exit status {result.returncode}")
                    raise DeployError(f"javac failed on the Java interpreter: {first} "
                                      f"(full log: {log})")
                os.replace(work, target)
    _built.update(digest=digest, path=target)
    return target


class JavaServer:
    """One ``xnor.tflite.SegmentServer`` JVM: ``load`` models, ``run`` them on tensors.

    Requests are serialized (a lock); each must be answered within ``timeout`` seconds
    or the JVM is killed and `DeployError` raised. `close` (also run at exit) stops it.

    >>> server = JavaServer()                                  # doctest: +SKIP
    >>> handle, inputs, outputs = server.load(flatbuffer)     # doctest: +SKIP
    >>> [y.shape for y in server.run(handle, [x])]            # doctest: +SKIP
    [(1, 10)]
    """

    def __init__(self, *, timeout: float = REQUEST_TIMEOUT):
        self.timeout = float(timeout)
        classes = build_classes()
        self._stderr = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self._to_free = collections.deque()
        try:
            self._process = subprocess.Popen(
                [_tool("java"), *JVM_OPTIONS, "-cp", str(classes), "xnor.tflite.SegmentServer"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as error:
            raise DeployError(f"cannot start the Java interpreter: {error}") from None
        os.set_blocking(self._process.stdin.fileno(), False)
        atexit.register(self.close)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    # ------------------------------------------------------------------ requests
    def load(self, flatbuffer: bytes):
        """Loads a .tflite file: ``(handle, inputs, outputs)``, each signature a list of
        ``(dtype, shape)``. An unloadable file raises `DeployError` with the
        interpreter's one-line reason (e.g. the unsupported operator)."""
        data = bytes(flatbuffer)

        def parse(reply):
            (handle,) = struct.unpack("<I", reply.read(4))
            return handle, reply.signature(), reply.signature()

        return self._exchange(b"L" + struct.pack("<I", len(data)) + data, "loading a model",
                              "the Java interpreter cannot load a piece of this model", parse)

    def run(self, handle: int, inputs) -> list:
        """Runs model ``handle`` on ``inputs`` (float32 / int32 arrays of its input
        shapes); returns its outputs as arrays."""
        parts = [b"R", struct.pack("<II", handle, len(inputs))]
        for x in inputs:
            x = np.asarray(x)
            if x.dtype not in _TYPES:
                raise DeployError(f"the java runtime takes float32 and int32 (bitpacked) "
                                  f"tensors. Received: dtype={x.dtype}")
            parts += [struct.pack(f"<BB{x.ndim}i", _TYPES[x.dtype], x.ndim, *x.shape),
                      np.ascontiguousarray(x, x.dtype.newbyteorder("<")).tobytes()]

        def parse(reply):
            (count,) = struct.unpack("<I", reply.read(4))
            outputs = []
            for _ in range(count):
                dtype, shape = reply.tensor_header()
                size = int(np.prod(shape, dtype=np.int64))
                outputs.append(np.frombuffer(reply.read(4 * size), dtype.newbyteorder("<"))
                               .astype(dtype).reshape(shape))
            return outputs

        return self._exchange(b"".join(parts), "running a piece of the model",
                              "java failed on a piece of this model", parse)

    def free(self, handle: int) -> None:
        """Forgets model ``handle``: sent (no reply) before the next request. It never
        blocks, so a garbage collector's finalizer may call it in the middle of one."""
        self._to_free.append(handle)

    def close(self) -> None:
        """Stops the JVM (asks it to quit, then kills it after a second)."""
        process = self._process
        if process.poll() is None:
            try:
                os.set_blocking(process.stdin.fileno(), True)
                process.stdin.write(b"Q")
                process.stdin.close()
                process.wait(timeout=1.0)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        atexit.unregister(self.close)

    # ------------------------------------------------------------------ transport
    def _exchange(self, payload: bytes, what: str, failure: str, parse):
        """One request and its parsed reply. Anything but the server's own error reply
        (a timeout, the JVM's death, an interrupt half-way) leaves the stream out of step,
        so the JVM is stopped; `shared_server` then starts a new one."""
        with self._lock:
            try:
                return parse(self._request(payload, what, failure))
            except _Refused:
                raise
            except BaseException:
                if self.alive:
                    self._process.kill()
                    self._process.wait()
                raise

    def _request(self, payload: bytes, what: str, failure: str) -> "_Reply":
        if not self.alive:
            raise DeployError(f"the Java interpreter has stopped{self._last_words()}")
        deadline = time.monotonic() + self.timeout
        freed = []
        while self._to_free:
            freed.append(b"F" + struct.pack("<I", self._to_free.popleft()))
        self._send(b"".join(freed) + payload, what, deadline)
        reply = _Reply(self, what, deadline)
        status = reply.read(1)[0]
        if status != 0:
            (n,) = struct.unpack("<I", reply.read(4))
            message = reply.read(n).decode("utf-8", "replace").strip()
            raise _Refused(f"{failure}: {message}")
        return reply

    def _send(self, payload: bytes, what: str, deadline: float | None = None) -> None:
        deadline = time.monotonic() + self.timeout if deadline is None else deadline
        fd, view = self._process.stdin.fileno(), memoryview(payload)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                self._hung(what)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self._process.wait()
                raise DeployError(f"the Java interpreter stopped while {what}"
                                  f"{self._last_words()}") from None

    def _read(self, n: int, what: str, deadline: float) -> bytes:
        fd, chunks, got = self._process.stdout.fileno(), [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self._hung(what)
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                self._process.wait()
                raise DeployError(f"the Java interpreter stopped while {what}"
                                  f"{self._last_words()}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _hung(self, what: str):
        self._process.kill()
        self._process.wait()
        raise DeployError(f"the Java interpreter did not answer within {self.timeout:g} s while "
                          f"{what}; its JVM was stopped")

    def _last_words(self) -> str:
        code = self._process.returncode
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().decode("utf-8", "replace").splitlines()
                 if line.strip()]
        return f" (exit status {code}{': ' + lines[-1].strip() if lines else ''})"


class _Refused(DeployError):
    """The server's error reply (the stream is still in step)."""


class _Reply:
    """Reads one reply's fields from the server within the request's deadline."""

    def __init__(self, server: JavaServer, what: str, deadline: float):
        self._server, self._what, self._deadline = server, what, deadline

    def read(self, n: int) -> bytes:
        return self._server._read(n, self._what, self._deadline)

    def tensor_header(self):
        code, rank = struct.unpack("<BB", self.read(2))
        shape = struct.unpack(f"<{rank}i", self.read(4 * rank)) if rank else ()
        return _DTYPES[code], tuple(shape)

    def signature(self) -> list:
        (count,) = struct.unpack("<I", self.read(4))
        return [self.tensor_header() for _ in range(count)]


_shared: dict = {}
_shared_lock = threading.Lock()


def shared_server() -> JavaServer:
    """This process's JVM, started on first use (and again if it has stopped): every
    `JavaSegment` of a certify run shares it."""
    with _shared_lock:
        server = _shared.get("server")
        if server is None or not server.alive:
            server = _shared["server"] = JavaServer()
        return server


class JavaSegment:
    """``segment(inputs) -> output``: a piece of a file (several inputs, one output) on the
    Java interpreter, loaded once into `shared_server` (or ``server``).

    >>> JavaSegment(part)([np.zeros((1, 14, 14, 2), np.int32)]).dtype  # doctest: +SKIP
    dtype('float32')
    """

    def __init__(self, flatbuffer: bytes, server: JavaServer | None = None):
        self._server = server or shared_server()
        self._handle, self.inputs, self.outputs = self._server.load(flatbuffer)
        self._finalizer = weakref.finalize(self, self._server.free, self._handle)

    def __call__(self, inputs) -> np.ndarray:
        if len(inputs) != len(self.inputs):
            raise DeployError(f"this piece has {len(self.inputs)} input(s). "
                              f"Received: {len(inputs)}")
        converted = []
        for i, (x, (dtype, shape)) in enumerate(zip(inputs, self.inputs)):
            x = np.asarray(x)
            if x.dtype != dtype or tuple(x.shape) != shape:
                raise DeployError(f"input {i} of this piece is {dtype}{list(shape)}. "
                                  f"Received: {x.dtype}{list(x.shape)}")
            converted.append(x)
        return self._server.run(self._handle, converted)[0]

    def close(self) -> None:
        """Frees the model in the JVM now (otherwise when this object is collected)."""
        self._finalizer()
