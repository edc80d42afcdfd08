"""Layer-wise certification: every piece of the converted file on Keras's own inputs.

For each `Segment` of the file (`deploy.certify.segments`), on every input image:

1. Keras's values at the segment's input cuts are fed to the file's own ops for that
   segment (`TFLiteModel.submodel`, on the chosen runtime) — a wrong value upstream
   cannot hide or cause a disagreement here (propagation is cut off);
2. the Keras layers between those cuts are evaluated in float64 with a per-element
   bound e on a float32 runtime's error (`deploy.certify.bounds`);
3. every element t of the runtime's output must satisfy |t − y₆₄| ≤ e + u·|y₆₄|.

At a *sign cut* (a bitpacked tensor, or sign(input) of a binary layer) the values are
±1: a disagreement with Keras's sign is **inside the band** when the check holds —
the float64 pre-activation v is within e of 0 (the runtime's rounding may flip it) or
Keras's own float32 rounding flipped it — and **outside** (a conversion error)
otherwise. A float cut passes only if every element is within its bound.

The certificate PASSes exactly when every element of every segment passes; otherwise
it names the first failing segment (execution order), the position and the values.

**int8 float layers** (``xnor-deploy convert --int8_float_layers``) are not certified:
a segment with an int8 op computes a quantized approximation of the Keras layer, whose
error is set by the calibrated ranges and the data, not by float rounding, so no bound
of this kind holds for it. Such a segment is not run; it is listed as "not certified:
int8 quantized (approximate by design)", and the verdict says so explicitly — "PASS"
then covers the certified segments only, which still run on Keras's values at their
inputs, so the binary layers after an int8 layer are certified as before. How much the
int8 layers cost is the end-to-end statistic of ``xnor-deploy verify``.

Example:

>>> cert = certify(model, flatbuffer, x, runtime="lce")      # doctest: +SKIP
>>> print(cert.format_verdict())                           # doctest: +SKIP
PASS (lce): 18 layer checks on 16 input(s), 269,312 sign decisions, 0 disagreements inside the rounding band, 0 elements outside
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from deploy.certify.bounds import U, CertifyError, Estimate, propagate, signs_of
from deploy.certify.executor import SegmentExecutor
from deploy.certify.segments import Segment, find_segments, quantized_ops
from deploy.tflite_model import TFLiteModel, bitpack, unpack

__all__ = ["LayerCheck", "Certificate", "certify", "NOT_CERTIFIED_INT8"]

NOT_CERTIFIED_INT8 = "not certified: int8 quantized (approximate by design)"

_BATCH_BYTES = 128 << 20  # Keras values kept per batch of images


@dataclasses.dataclass
class Offence:
    """The worst element of a failing check."""

    image: int
    position: tuple
    keras: float
    runtime: float
    exact: float
    bound: float

    def format(self) -> str:
        return (f"image {self.image}, position {self.position}: Keras {self.keras:.7g}, "
                f"runtime {self.runtime:.7g}, float64 {self.exact:.7g}, allowed ±{self.bound:.3g}")


@dataclasses.dataclass
class LayerCheck:
    """One segment's results over all images."""

    segment: str  # the Keras layers it computes, e.g. "conv2 → pool2 → sign(input of conv3)"
    layer: str    # the Keras layer its output stands for
    ops: str      # the file's ops in it, e.g. "LceBconv2d, MUL"
    sign: bool
    elements: int = 0
    disagreements_inside: int = 0
    outside: int = 0
    max_abs_diff: float = 0.0  # |runtime − Keras|
    max_bound_ratio: float = 0.0  # max |runtime − float64| / allowed
    offence: Offence | None = None
    not_certified: str | None = None  # why the segment is not checked (int8 ops)

    @property
    def certified(self) -> bool:
        return self.not_certified is None

    @property
    def passed(self) -> bool:
        """No element outside its bound (vacuously true for a segment not certified:
        see `Certificate.not_certified` and the verdict)."""
        return self.outside == 0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["passed"] = self.passed
        d["certified"] = self.certified
        return d


@dataclasses.dataclass
class Certificate:
    runtime: str
    images: int
    checks: list

    @property
    def passed(self) -> bool:
        """Every certified check passed (segments not certified are named in the verdict)."""
        return all(check.passed for check in self.checks)

    @property
    def not_certified(self) -> list:
        """The checks not certified (int8 segments)."""
        return [c for c in self.checks if not c.certified]

    @property
    def first_failure(self) -> LayerCheck | None:
        return next((c for c in self.checks if not c.passed), None)

    @property
    def sign_decisions(self) -> int:
        return sum(c.elements for c in self.checks if c.sign)

    @property
    def inside(self) -> int:
        return sum(c.disagreements_inside for c in self.checks)

    @property
    def outside(self) -> int:
        return sum(c.outside for c in self.checks)

    def format_verdict(self) -> str:
        """One line: PASS, or FAIL with the first offending layer and what was wrong."""
        skipped = self.not_certified
        certified = len(self.checks) - len(skipped)
        counts = (f"{certified} layer checks on {self.images} input(s), "
                  f"{self.sign_decisions:,} sign decisions, {self.inside:,} disagreements "
                  f"inside the rounding band, {self.outside:,} elements outside")
        if skipped:
            names = "; ".join(c.segment for c in skipped)
            counts += (f"; NOT CERTIFIED, int8 quantized (approximate by design): "
                       f"{len(skipped)} segment(s): {names}")
        failure = self.first_failure
        if failure is None:
            scope = " (certified segments only)" if skipped else ""
            return f"PASS{scope} ({self.runtime}): {counts}"
        what = "sign outside the rounding band" if failure.sign else "value outside its bound"
        return (f"FAIL ({self.runtime}): layer {failure.layer!r} [{failure.segment}; ops "
                f"{failure.ops}]: {failure.outside:,} element(s) with a {what}, worst at "
                f"{failure.offence.format()}; {counts}")

    def format_table(self) -> str:
        lines = ["| segment (Keras layers) | file ops | elements | sign | inside band | outside "
                 "| max |Δ| vs Keras | max error / bound |",
                 "|---|---|---|---|---|---|---|---|"]
        for c in self.checks:
            if not c.certified:
                lines.append(f"| {c.segment} | {c.ops} | | | | {c.not_certified} | | |")
                continue
            lines.append(f"| {c.segment} | {c.ops} | {c.elements:,} | {'yes' if c.sign else ''}"
                         f" | {c.disagreements_inside:,} | {c.outside:,} | {c.max_abs_diff:.3g}"
                         f" | {c.max_bound_ratio:.3g} |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return dict(runtime=self.runtime, images=self.images, passed=self.passed,
                    not_certified=[c.segment for c in self.not_certified],
                    verdict=self.format_verdict(), sign_decisions=self.sign_decisions,
                    inside=self.inside, outside=self.outside,
                    checks=[c.as_dict() for c in self.checks])


# ---------------------------------------------------------------------- Keras side
def _keras_tensor(model, layer_name, *, binarized_input):
    """The Keras tensor a cut stands for (``layer_name`` None: the model's input)."""
    if layer_name is None:
        return model.inputs[0]
    layer = model.get_layer(layer_name)
    return layer.input if binarized_input else layer.output


def _cut_tensor(model, cut):
    return _keras_tensor(model, None if cut.position < 0 else cut.layer,
                         binarized_input=cut.binarized_input)


def _chain(tensor, known: set) -> list:
    """The Keras nodes computing ``tensor`` from tensors in ``known`` (ids), in order."""
    order, seen = [], set()

    def visit(t):
        if id(t) in known:
            return
        layer, node_index, _ = t._keras_history
        node = layer._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        if node.is_input:
            raise CertifyError(f"cannot trace {t.name} back to the cut's inputs")
        for parent in node.keras_inputs:
            visit(parent)
        order.append(node)

    visit(tensor)
    return order


@dataclasses.dataclass
class _Plan:
    segment: Segment
    check: LayerCheck
    executor: SegmentExecutor | None  # None: not certified
    nodes: list
    inputs: list  # Keras tensors of the input cuts
    output: object  # Keras tensor of the output cut


def _describe(segment, nodes) -> str:
    names = [node.layer.name for node in nodes]
    if segment.output.binarized_input:
        names.append(f"sign(input of {segment.output.layer})")
    return " → ".join(names) or segment.output.describe()


def _prepare(model, tflite: TFLiteModel, plans, runtime, num_threads) -> list:
    def keras_size(position, binarized_input):
        tensor = _keras_tensor(model, None if position < 0 else plans[position].name,
                               binarized_input=binarized_input)
        return int(np.prod(tensor.shape[1:]))

    prepared = []
    for segment in find_segments(tflite, plans, keras_size=keras_size):
        inputs = [_cut_tensor(model, cut) for cut in segment.inputs]
        output = _cut_tensor(model, segment.output)
        nodes = [] if any(output is t for t in inputs) else _chain(output,
                                                                   {id(t) for t in inputs})
        part = tflite.submodel(list(segment.ops), [c.tensor for c in segment.inputs],
                               [segment.output.tensor])
        ops = ", ".join(dict.fromkeys(tflite.ops[i].name for i in segment.ops))
        check = LayerCheck(segment=_describe(segment, nodes), layer=segment.output.layer,
                           ops=ops, sign=segment.output.bitpacked
                           or segment.output.binarized_input)
        executor = None
        if quantized_ops(tflite, segment):
            check.not_certified = NOT_CERTIFIED_INT8
        else:
            executor = SegmentExecutor(part, runtime, num_threads=num_threads)
        prepared.append(_Plan(segment, check, executor, nodes, inputs, output))
    return prepared


def _as_cut(value, cut) -> np.ndarray:
    """A Keras value (one image) in the layout of the file's tensor for ``cut``."""
    if cut.binarized_input or cut.bitpacked:
        value = np.where(value >= 0, 1.0, -1.0).astype(np.float32)
    if cut.bitpacked:
        channels = value.size // int(np.prod(cut.shape[:-1]))
        words = bitpack(value.reshape(*cut.shape[:-1], channels))
        return words.astype(np.int32)
    return np.asarray(value, np.float32).reshape(cut.shape)


def _from_cut(raw, cut, shape) -> np.ndarray:
    """The runtime's output for ``cut`` in the layout of the Keras tensor (one image)."""
    if cut.bitpacked:
        return unpack(raw, int(np.prod(shape)) // int(np.prod(raw.shape[:-1]))).reshape(shape)
    return np.asarray(raw, np.float64).reshape(shape)


def _evaluate(plan: _Plan, values: dict) -> Estimate:
    """Float64 value and runtime error bound of the segment's output on a batch."""
    estimates = {id(t): Estimate.exact(values[id(t)]) for t in plan.inputs}
    for node in plan.nodes:
        args = [estimates[id(t)] for t in node.keras_inputs]
        estimates[id(tf.nest.flatten(node.outputs)[0])] = propagate(node.layer, args)
    result = estimates[id(plan.output)]
    if plan.segment.output.binarized_input:
        signs, uncertain = signs_of(result)
        result = Estimate(signs, 2.0 * uncertain)
    return result


def _record(check: LayerCheck, keras, runtime, estimate: Estimate, first_image: int):
    keras = np.asarray(keras, np.float64)
    if check.sign:
        keras = np.where(keras >= 0, 1.0, -1.0)
    allowed = estimate.error + U * np.abs(estimate.value)
    excess = np.abs(runtime - estimate.value) - allowed
    bad = excess > 0
    check.elements += keras.size
    check.max_abs_diff = max(check.max_abs_diff, float(np.max(np.abs(runtime - keras))))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(runtime - estimate.value) / allowed
    ratio = np.where(np.abs(runtime - estimate.value) == 0, 0.0, ratio)
    check.max_bound_ratio = max(check.max_bound_ratio, float(np.max(ratio)))
    if check.sign:
        check.disagreements_inside += int(np.sum((runtime != keras) & ~bad))
    if np.any(bad):
        check.outside += int(np.sum(bad))
        if check.offence is None:
            where = np.unravel_index(int(np.argmax(excess)), excess.shape)
            check.offence = Offence(
                image=first_image + int(where[0]), position=tuple(int(i) for i in where[1:]),
                keras=float(keras[where]), runtime=float(runtime[where]),
                exact=float(estimate.value[where]), bound=float(allowed[where]))


def certify(model, flatbuffer: bytes, x: np.ndarray, *, runtime: str = "lce",
            num_threads: int = 1, plans=None, progress=None) -> Certificate:
    """Certifies ``flatbuffer`` against Keras ``model`` layer by layer on images ``x``.

    ``plans``: the lowering's `LayerPlan` list (its scopes name the file's tensors);
    computed with `deploy.lowering.lower` if not given.
    """
    if plans is None:
        from deploy.lowering import lower

        plans = lower(model, allow_float_fallback=True).plans
    tflite = TFLiteModel(flatbuffer)
    prepared = _prepare(model, tflite, plans, runtime, num_threads)
    tensors, seen = [], set()
    for plan in prepared:
        for t in (*plan.inputs, plan.output):
            if id(t) not in seen:
                seen.add(id(t))
                tensors.append(t)
    probe = tf.keras.Model(model.inputs, tensors)
    per_image = sum(4 * int(np.prod(t.shape[1:])) for t in tensors)
    batch = max(1, min(64, _BATCH_BYTES // max(per_image, 1)))
    x = np.asarray(x, np.float32)
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        outputs = probe(chunk, training=False)
        outputs = [outputs] if len(tensors) == 1 else outputs
        values = {id(t): np.asarray(v) for t, v in zip(tensors, outputs)}
        for plan in prepared:
            if plan.executor is None:
                continue  # not certified (int8 ops): see the module docstring
            estimate = _evaluate(plan, values)
            shape = values[id(plan.output)].shape[1:]
            results = np.stack([
                _from_cut(plan.executor([_as_cut(values[id(t)][i], cut)
                                         for t, cut in zip(plan.inputs, plan.segment.inputs)]),
                          plan.segment.output, shape)
                for i in range(len(chunk))])
            _record(plan.check, values[id(plan.output)], results, estimate, start)
        if progress is not None:
            progress(len(chunk))
    return Certificate(runtime=runtime, images=len(x), checks=[p.check for p in prepared])
