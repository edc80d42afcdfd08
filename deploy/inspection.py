"""``xnor-deploy inspect``: what a .tflite file computes and stores, without running it.

Reads the flatbuffer only (no TensorFlow import): op census, binary vs float MACs,
bitpacked binary outputs, file and weight sizes, the deploy metadata (target,
input spec, preprocessing, labels) and, for files written by ``xnor-deploy convert``,
the per-layer report rebuilt from the layer list stored in the metadata.

Example:

>>> print(inspect_file("model.tflite").format())     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os

from deploy import report as report_lib
from deploy.artifacts import load_tflite, read_metadata

__all__ = ["Inspection", "inspect_file", "inspect_model"]


@dataclasses.dataclass
class Inspection:
    path: str
    file_bytes: int
    weight_bytes: int
    census: dict
    binary_macs: int
    float_macs: int
    bitpacked_outputs: int
    inputs: list
    outputs: list
    metadata: dict | None
    report: report_lib.Report | None
    int8_ops: dict = dataclasses.field(default_factory=dict)  # op name → ops with int8 weights

    def as_dict(self) -> dict:
        """JSON-able summary (``--json``)."""
        metadata = dict(self.metadata or {})
        metadata.pop("keras_config", None)
        metadata.pop("layers", None)
        return {
            "path": self.path, "file_bytes": self.file_bytes, "weight_bytes": self.weight_bytes,
            "op_census": self.census, "binary_macs": self.binary_macs,
            "float_macs": self.float_macs, "bitpacked_bconv_outputs": self.bitpacked_outputs,
            "int8_weight_ops": self.int8_ops,
            "inputs": self.inputs, "outputs": self.outputs, "metadata": metadata,
        }

    def format(self) -> str:
        lines = [f"file: {self.path} ({report_lib.human_bytes(self.file_bytes)}; "
                 f"constants {report_lib.human_bytes(self.weight_bytes)})"]
        meta = self.metadata
        if meta:
            source = meta.get("source") or {}
            versions = meta.get("versions") or {}
            lines.append(f"target: {meta.get('target')} (LCE {meta.get('lce_target')!r} graph), "
                         f"from {source.get('path')} ({source.get('model_name')}), LCE "
                         f"{versions.get('larq_compute_engine')}, TF {versions.get('tensorflow')}")
        else:
            lines.append("metadata: none from xnor-deploy (not converted by xnor-deploy convert)")
        for tensor in self.inputs:
            lines.append(f"input: {tensor['name']} {tensor['dtype']} {tensor['shape']}")
        for tensor in self.outputs:
            lines.append(f"output: {tensor['name']} {tensor['dtype']} {tensor['shape']}")
        if meta:
            spec = meta.get("preprocessing")
            if spec:
                lines.append(
                    f"preprocessing: {spec.get('dataset')}: {spec.get('color')}, shorter side → "
                    f"{spec.get('resize_shorter_side')} ({spec.get('resize')}), "
                    f"{spec.get('crop')} crop {spec.get('input_shape')[:2]}, "
                    f"{spec.get('formula')} with mean={spec.get('mean')} std={spec.get('std')}")
            else:
                lines.append("preprocessing: none recorded (convert with --dataset)")
            labels = meta.get("labels")
            if labels:
                shown = ", ".join(labels[:5]) + (", …" if len(labels) > 5 else "")
                lines.append(f"labels: {len(labels)} ({shown})")
        census = ", ".join(f"{name}×{n}" for name, n in sorted(self.census.items(),
                                                               key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"ops ({sum(self.census.values())}): {census}")
        total = self.binary_macs + self.float_macs
        share = 100.0 * self.binary_macs / total if total else 0.0
        lines.append(f"MACs: {report_lib.human_count(self.binary_macs)} binary + "
                     f"{report_lib.human_count(self.float_macs)} float ({share:.1f}% binary); "
                     f"bitpacked LceBconv2d outputs: {self.bitpacked_outputs}, LceBMaxPool2d: "
                     f"{self.census.get('LceBMaxPool2d', 0)}")
        if self.int8_ops:
            lines.append("int8 ops (int8 weights, int8 activations): " + ", ".join(
                f"{name}×{n}" for name, n in sorted(self.int8_ops.items())))
        if self.report is not None:
            lines.append("")
            lines.append(self.report.format())
        return "\n".join(lines)


def inspect_model(tflite, path="<memory>", file_bytes=None) -> Inspection:
    """Inspects a parsed `TFLiteModel`."""
    binary = floating = 0
    bitpacked = 0
    int8_ops = {}
    for op in tflite.ops:
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and not op.custom and \
                tflite.tensors[op.inputs[1]].dtype == "INT8":
            int8_ops[op.name] = int8_ops.get(op.name, 0) + 1
        b, f = tflite.op_macs(op)
        binary += b
        floating += f
        if op.name == "LceBconv2d" and tflite.tensors[op.outputs[0]].dtype == "INT32":
            bitpacked += 1
    metadata = read_metadata(tflite, path)
    report = None
    if metadata and metadata.get("layers"):
        report = report_lib.build(tflite, metadata["layers"])
        report.file_bytes = file_bytes or 0
        report.dataset = metadata.get("dataset")
    return Inspection(
        path=os.fspath(path), file_bytes=file_bytes or 0,
        weight_bytes=sum(t.nbytes for t in tflite.tensors if t.constant),
        census=dict(tflite.op_census()), binary_macs=binary, float_macs=floating,
        bitpacked_outputs=bitpacked,
        inputs=[_tensor(t) for t in tflite.inputs], outputs=[_tensor(t) for t in tflite.outputs],
        metadata=metadata, report=report, int8_ops=int8_ops)


def _tensor(tensor):
    return {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape)}


def inspect_file(path) -> Inspection:
    """Inspects the .tflite file at ``path`` (`DeployError` if it is not one)."""
    tflite, data = load_tflite(path)
    return inspect_model(tflite, path, file_bytes=len(data))

