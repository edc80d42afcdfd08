"""Distribution strategies for training: one device, several local devices, several workers, a TPU.

`make_strategy` turns the ``--strategy`` choice of ``xnor-train`` into a
`tf.distribute.Strategy`; `xnor_keras.training.train` builds the model and the optimizer
in its scope, so ``model.fit`` runs each step on every replica and all-reduces the
gradients.

Batch and learning rate. ``batch_size`` is the batch of one replica; the global batch
is ``batch_size × replicas`` (`global_batch`). The learning rate follows the linear
scaling rule (Goyal et al., 2017): the recipe's rate is for the recipe's batch, and a
global batch r times larger starts at r times the rate (`scaled_learning_rate`), so one
epoch moves the weights about as far on any number of replicas.

What the binary layers mean across replicas:

- The paper's weight gradient (eq. 6's α term, ``weight_gradient="paper"``) and the
  input scaling K (eq. 11) are per weight and per example respectively: each replica
  computes them on its shard, and the all-reduced sum equals the single-device
  gradient of the global batch.
- BatchNorm normalizes with its replica's batch statistics unless ``sync_batchnorm``
  is set, which all-reduces mean and variance (`synchronize_batchnorm`): with it,
  training on R replicas with per-replica batch B computes what one device computes
  with batch R·B (up to float summation order); without it, like R devices with
  batch B each.
- The binary gradient (§3.2) scales sign(g) by a maximum of |g|; that maximum is taken
  over the gradient tensor of the replica's own shard (no all-reduce): a scale over the
  whole global batch would be a cross-replica communication inside every binary layer's
  backward pass, and the paper's binarization of a gradient is local to the tensor a
  layer sees. With the whole-tensor reading the result therefore depends on the number of
  replicas; per-example or per-position readings do not.

Example:

>>> strategy = make_strategy(StrategyKind.DEFAULT)
>>> strategy.num_replicas_in_sync
1
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import socket
import time

import tensorflow as tf

from xnor_keras.validation import positive_int

__all__ = ["StrategyKind", "DistributeError", "ClusterSpec", "parse_tf_config", "make_strategy",
           "global_batch", "scaled_learning_rate", "split_cpu", "synchronize_batchnorm", "wait_for_workers"]


class DistributeError(ValueError):
    """A strategy cannot be set up (bad TF_CONFIG, unreachable worker, no TPU); one line."""


class StrategyKind(enum.Enum):
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"
    TPU = "tpu"

    @classmethod
    def parse(cls, value) -> "StrategyKind":
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise DistributeError(f"strategy must be one of {[k.value for k in cls]}. "
                                  f"Received: strategy={value!r}") from None


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """The parts of ``TF_CONFIG`` this project relies on."""

    workers: tuple[str, ...]   # "host:port" of every worker, index order
    task_type: str
    task_index: int

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(a for i, a in enumerate(self.workers) if i != self.task_index)

    @property
    def is_chief(self) -> bool:
        return self.task_index == 0


def _address(text, where):
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributeError(f"TF_CONFIG: {where} must be 'host:port'. Received: {text!r}")
    return f"{host}:{int(port)}"


def parse_tf_config(text: str | None) -> ClusterSpec:
    """Validates a ``TF_CONFIG`` JSON string for multi-worker training.

    Needs ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
    "index": i}}`` with 0 ≤ i < number of workers (worker 0 is the chief).

    >>> parse_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}, '
    ...                 '"task": {"type": "worker", "index": 0}}').workers
    ('127.0.0.1:2222',)
    """
    if not text:
        raise DistributeError("strategy 'multi_worker' needs TF_CONFIG (JSON with cluster.worker "
                              "and task) in the environment")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({error.msg} at character "
                              f"{error.pos})") from None
    if not isinstance(config, dict):
        raise DistributeError(f"TF_CONFIG must be a JSON object. Received: {text[:60]!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker"), list) \
            or not cluster["worker"]:
        raise DistributeError("TF_CONFIG: cluster.worker must be a non-empty list of 'host:port'")
    extra = sorted(set(cluster) - {"worker", "chief"})
    if extra or "chief" in cluster:
        raise DistributeError(f"TF_CONFIG: only a 'worker' cluster is supported (worker 0 is the "
                              f"chief). Received cluster keys: {sorted(cluster)}")
    workers = tuple(_address(a, f"cluster.worker[{i}]") for i, a in enumerate(cluster["worker"]))
    if len(set(workers)) != len(workers):
        raise DistributeError(f"TF_CONFIG: cluster.worker lists an address twice: {list(workers)}")
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise DistributeError(f"TF_CONFIG: task must be {{'type': 'worker', 'index': i}}. "
                              f"Received: task={task!r}")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise DistributeError(f"TF_CONFIG: task.index must be an integer in [0, {len(workers)}). "
                              f"Received: index={index!r}")
    return ClusterSpec(workers, "worker", index)


def _reachable(address: str, deadline: float) -> bool:
    """Whether ``host:port`` accepts a TCP connection before ``deadline`` (monotonic s)."""
    host, _, port = address.rpartition(":")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def wait_for_workers(spec: ClusterSpec, *, timeout: float) -> None:
    """Blocks until every peer worker accepts TCP connections, or raises after ``timeout`` s.

    MultiWorkerMirroredStrategy's constructor waits for missing peers without a limit;
    this rendezvous before it turns an unreachable worker into an error. While waiting,
    this worker listens on its own address, so that peers running the same check find it
    before its TensorFlow server exists (which replaces the listener right after).
    """
    own = spec.workers[spec.task_index]
    host, _, port = own.rpartition(":")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, int(port)))
        listener.listen(16)
    except OSError as error:
        listener.close()
        raise DistributeError(f"worker {spec.task_index} cannot listen on {own} "
                              f"({error.strerror})") from None
    try:
        deadline = time.monotonic() + timeout
        for index, address in enumerate(spec.workers):
            if index != spec.task_index and not _reachable(address, deadline):
                raise DistributeError(f"worker {index} at {address} is unreachable after "
                                      f"{timeout:g} s")
    finally:
        listener.close()


def split_cpu(devices: int) -> None:
    """Splits the host CPU into ``devices`` logical devices (one replica each under
    ``mirrored``); must run before TensorFlow initializes its devices."""
    positive_int("cpu_devices", devices, error=DistributeError)
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != devices:
            raise DistributeError("cpu_devices must be set before TensorFlow initializes its "
                                  "devices (start a new process)") from None


def make_strategy(kind, *, tpu: str | None = None, worker_timeout: float = 60.0,
                  cpu_devices: int | None = None):
    """The `tf.distribute.Strategy` of ``kind`` (a `StrategyKind` or its value).

    - ``default``: TensorFlow's default (one device).
    - ``mirrored``: one replica per local GPU, or per logical CPU device if any were
      configured (`tf.config.set_logical_device_configuration`), else the one CPU.
    - ``multi_worker``: one process per worker, described by ``TF_CONFIG`` (validated by
      `parse_tf_config`); waits at most ``worker_timeout`` s for the other workers.
    - ``tpu``: the TPU at ``tpu`` (a name or grpc:// address, waited for at most
      ``worker_timeout`` s; None: the local one).

    ``cpu_devices``: first split the CPU into that many logical devices (`split_cpu`).
    """
    kind = StrategyKind.parse(kind)
    if cpu_devices is not None:
        split_cpu(cpu_devices)
    if tpu is not None and kind is not StrategyKind.TPU:
        raise DistributeError(f"--tpu goes with --strategy=tpu. Received: strategy={kind.value!r}")
    if kind is StrategyKind.DEFAULT:
        return tf.distribute.get_strategy()
    if kind is StrategyKind.MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind is StrategyKind.MULTI_WORKER:
        spec = parse_tf_config(os.environ.get("TF_CONFIG"))
        wait_for_workers(spec, timeout=worker_timeout)
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=max(worker_timeout, 1.0) * 10)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if tpu is not None and tpu.startswith("grpc://"):
        # TensorFlow retries an unreachable TPU address without a limit.
        address = _address(tpu[len("grpc://"):], "--tpu")
        if not _reachable(address, time.monotonic() + worker_timeout):
            raise DistributeError(f"no TPU at {tpu}: nothing answers after {worker_timeout:g} s")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DistributeError(f"no TPU at {tpu or 'the local host'}: {first}") from None
    return tf.distribute.TPUStrategy(resolver)


def global_batch(per_replica: int, strategy) -> int:
    """The batch of one step over all replicas: per-replica batch × replicas."""
    return per_replica * strategy.num_replicas_in_sync


def scaled_learning_rate(rate: float, *, global_batch_size: int, recipe_batch_size: int) -> float:
    """The linear scaling rule: ``rate × global_batch_size / recipe_batch_size``."""
    return rate * global_batch_size / recipe_batch_size


def synchronize_batchnorm(model) -> int:
    """Makes every BatchNormalization layer of ``model`` all-reduce its batch statistics.

    Call it before the model first runs. Keras' fused BatchNorm kernel has no
    synchronized form, so these layers also run unfused. Returns the number changed.
    """
    count = 0
    for layer in model.submodules:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.synchronized = True
            layer.fused = False
            count += 1
    return count
