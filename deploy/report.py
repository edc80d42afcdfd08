"""The per-layer conversion report: each Keras layer → the ops it became.

Ops are attributed to layers by the name scope (``L<i>/``) that `deploy.lowering`
puts around each layer's ops, which TFLite keeps in tensor names (for fused ops, the
earliest layer whose scope appears wins; binary layers found by their filter are
attributed exactly). Bytes are the constant data each op reads; MACs come from the
op shapes (`TFLiteModel.op_macs`). The float twin is the same model with float32
weights: 4 bytes per inference parameter (BatchNorm folded to scale + offset) and
the MACs of float convolutions / dense layers.

The report is rebuilt by ``xnor-deploy inspect`` from the flatbuffer alone (the layer
list is stored in its metadata).
"""

from __future__ import annotations

import collections
import dataclasses
import re

__all__ = ["Report", "LayerRow", "build", "attribute_ops", "layer_records", "human_bytes",
           "human_count"]

_SCOPE = re.compile(r"(?:^|[;/])L(\d+)/")
# A row's kind: a layer's role or outcome (`deploy.lowering.Role` / `Outcome` values), or
# "float-binary" for a binary layer LCE left in float. The records are JSON, read back
# here as plain strings: this module does not import deploy.lowering (TensorFlow).
KINDS = {
    "binary": "binary",
    "binary-weight": "1-bit weights, float MACs",
    "float": "float",
    "other": "",
    "fallback": "float (fallback)",
    "int8": "int8 (calibrated)",
}


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GiB"


def human_count(n: float) -> str:
    """1234567 → '1.23 M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)}"


@dataclasses.dataclass
class LayerRow:
    name: str
    class_name: str
    lowering: str
    ops: dict
    kind: str
    bytes: int
    binary_macs: int
    float_macs: int
    float_twin_bytes: int
    float_twin_macs: int
    notes: list


@dataclasses.dataclass
class Report:
    rows: list
    file_bytes: int = 0
    weight_bytes: int = 0
    problems: list = dataclasses.field(default_factory=list)
    target: str | None = None
    dataset: str | None = None
    dataset_source: str | None = None
    unattributed_ops: int = 0
    calibration: dict | None = None  # `deploy.calibration.Calibration.as_dict()`

    @property
    def int8_layers(self):
        """The float layers that became int8 ops (``--int8_float_layers``)."""
        return [r for r in self.rows if r.kind == "int8"]

    @property
    def binary_layers(self):
        return [r for r in self.rows if r.kind in ("binary", "binary-weight", "float-binary",
                                                   "fallback")]

    def summary(self) -> dict:
        """JSON-able totals (stored in the flatbuffer's metadata)."""
        binary = self.binary_layers
        return {
            "binary_layers": len(binary),
            "binary_layers_in_binary_ops": sum(r.kind == "binary" for r in binary),
            "binary_weight_layers": sum(r.kind == "binary-weight" for r in binary),
            "binary_layers_in_float": sum(r.kind in ("float-binary", "fallback") for r in binary),
            "weight_bytes": self.weight_bytes,
            "float_twin_bytes": sum(r.float_twin_bytes for r in self.rows),
            "binary_macs": sum(r.binary_macs for r in self.rows),
            "float_macs": sum(r.float_macs for r in self.rows),
            "float_twin_macs": sum(r.float_twin_macs for r in self.rows),
            "float_fallback_layers": [r.name for r in binary
                                      if r.kind in ("float-binary", "fallback")],
            "int8_layers": [r.name for r in self.int8_layers],
            "int8_macs": sum(r.float_macs for r in self.int8_layers),
        }

    def format(self) -> str:
        """The report as text: a table, totals and notes."""
        header = ("layer", "type", "lowered to", "ops", "kind", "bytes", "binary MACs",
                  "float MACs")
        lines = []
        for r in self.rows:
            if not r.ops and r.kind == "other" and not r.notes:
                continue
            ops = ", ".join(f"{name}×{n}" if n > 1 else name for name, n in r.ops.items()) or "—"
            kind = "FLOAT (binary layer!)" if r.kind == "float-binary" else KINDS.get(r.kind, r.kind)
            lines.append((r.name, r.class_name, r.lowering or "", ops, kind,
                          human_bytes(r.bytes) if r.bytes else "", human_count(r.binary_macs)
                          if r.binary_macs else "", human_count(r.float_macs)
                          if r.float_macs else ""))
        widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
        widths[3] = min(widths[3], 60)
        out = []
        for row in [header, *lines]:
            cells = [str(c) if len(str(c)) <= widths[i] else str(c)[:widths[i] - 1] + "…"
                     for i, c in enumerate(row)]
            out.append("  ".join(c.ljust(widths[i]) if i < 5 else c.rjust(widths[i])
                                 for i, c in enumerate(cells)).rstrip())
        out.insert(1, "-" * len(out[0]))
        s = self.summary()
        ratio = s["float_twin_bytes"] / self.file_bytes if self.file_bytes else float("nan")
        out.append("")
        out.append(f"size: {human_bytes(self.file_bytes)} file ({human_bytes(self.weight_bytes)} "
                   f"constants) vs float twin {human_bytes(s['float_twin_bytes'])} of float32 "
                   f"weights: {ratio:.1f}x smaller")
        out.append(f"compute: {human_count(s['binary_macs'])} binary MACs + "
                   f"{human_count(s['float_macs'])} float MACs (float twin: "
                   f"{human_count(s['float_twin_macs'])} float MACs)")
        out.append(f"binary layers: {s['binary_layers']} — {s['binary_layers_in_binary_ops']} in "
                   f"LCE binary ops (LceBconv2d), {s['binary_weight_layers']} binary-weight "
                   f"(BWN: 1-bit weights via LceDequantize, float MACs), "
                   f"{s['binary_layers_in_float']} in float")
        if self.int8_layers:
            out.append(f"int8 float layers: {', '.join(s['int8_layers'])} "
                       f"({human_count(s['int8_macs'])} of the float MACs run in int8; "
                       "approximate by design: see each layer's calibration note)")
        if self.dataset_source is not None:
            out.append(f"dataset: {self.dataset or 'none'} ({self.dataset_source})")
        notes = [(r.name, n) for r in self.rows for n in r.notes]
        if notes:
            out.append("notes:")
            out.extend(f"  {name}: {note}" for name, note in notes)
        for problem in self.problems:
            out.append(f"WARNING: {problem}")
        return "\n".join(out)


def attribute_ops(tflite, scopes: dict, owners: dict | None = None, default=None) -> dict:
    """Maps op index → layer name (see the module docstring).

    ``scopes``: scope (``"L7"``) → layer name; ``owners``: output tensor index → layer
    name for ops identified exactly; ``default``: layer for ops without a scope (the
    graph's last op is renamed after the model output).
    """
    owners = owners or {}
    result = {}
    for op in tflite.ops:
        owner = next((owners[t] for t in op.outputs if t in owners), None)
        if owner is None:
            indices = []
            for t in op.outputs:
                if t >= 0:
                    indices += [int(i) for i in _SCOPE.findall(tflite.tensors[t].name)
                                if f"L{i}" in scopes]
            owner = scopes[f"L{min(indices)}"] if indices else default
        result[op.index] = owner
    return result


def layer_records(plans) -> list:
    """The layer list stored in the flatbuffer metadata (enough to rebuild the report)."""
    return [{"name": p.name, "class": p.class_name, "scope": p.scope, "role": p.role,
             "outcome": p.outcome or p.role, "lowering": p.lowering, "notes": list(p.notes),
             "float_twin_params": int(p.float_twin_params),
             "float_twin_macs": int(p.float_twin_macs)} for p in plans]


def build(tflite, layers, owners: dict | None = None) -> Report:
    """The report of a converted model; ``layers`` as returned by `layer_records`."""
    scopes = {layer["scope"]: layer["name"] for layer in layers}
    default = layers[-1]["name"] if layers else None
    owner_of = attribute_ops(tflite, scopes, owners, default=default)
    ops_of = collections.defaultdict(collections.Counter)
    bytes_of = collections.Counter()
    macs_of = collections.defaultdict(lambda: [0, 0])
    seen = set()
    for op in tflite.ops:
        owner = owner_of[op.index]
        ops_of[owner][op.name] += 1
        for t in op.inputs:
            if t >= 0 and t not in seen and tflite.tensors[t].constant:
                seen.add(t)
                bytes_of[owner] += tflite.tensors[t].nbytes
        binary, floating = tflite.op_macs(op)
        macs_of[owner][0] += binary
        macs_of[owner][1] += floating
    rows = []
    for layer in layers:
        role, outcome = layer["role"], layer["outcome"]
        if role in ("binary", "binary-weight") and outcome == "float":
            kind = "float-binary"
        elif role == "fallback":
            kind = "fallback"
        else:
            kind = outcome
        name = layer["name"]
        rows.append(LayerRow(
            name=name, class_name=layer["class"], lowering=layer["lowering"],
            ops=dict(ops_of.get(name, {})), kind=kind, bytes=bytes_of.get(name, 0),
            binary_macs=macs_of[name][0] if name in macs_of else 0,
            float_macs=macs_of[name][1] if name in macs_of else 0,
            float_twin_bytes=4 * layer["float_twin_params"],
            float_twin_macs=layer["float_twin_macs"], notes=list(layer["notes"])))
    weight_bytes = sum(t.nbytes for t in tflite.tensors if t.constant)
    return Report(rows=rows, weight_bytes=weight_bytes)
