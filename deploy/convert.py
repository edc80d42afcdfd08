"""``xnor-deploy convert``: Keras model → LCE .tflite, never silently float.

`convert_file` loads a model (``.keras``, ``.h5`` or SavedModel of xnor_keras or larq
layers), lowers it (`deploy.lowering`), converts it with larq-compute-engine,
stores the binary weights of BWN layers in 1 bit, checks that **every** binary layer
landed in a binary op, records metadata (target, input spec, preprocessing, labels,
the Keras architecture) in the flatbuffer, and writes the file atomically.

The check works on the converted file, not on what the lowering intended: each
binary layer's ±1 filter (up to per-channel negation) must be found as an
``LceBconv2d`` filter (XNOR / BNN layers) or as a ±s_c float constant that is then
stored bitpacked (BWN layers). A binary layer found as float32 weights, or not found,
is a float fallback: an error naming the layer unless ``allow_float_fallback``.

With ``int8_float_layers`` the float convolutions and dense layers (stem, shortcut
projections, head) are calibrated on real images (`deploy.calibration`) and lowered
between fake-quant ops (`deploy.lowering.quantize`), which the converter turns into
int8 ops; each such layer must then be found as an op with int8 weights in the file,
or conversion fails naming it. Binary layers are converted exactly as without it.

Example:

>>> result = convert_file("runs/default/model.keras", "out/model.tflite",
...                       target="arm64")                      # doctest: +SKIP
>>> print(result.report.format())                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile

import numpy as np

from deploy import report as report_lib
from deploy.artifacts import METADATA_NAME
from deploy.errors import DeployError, first_line
from deploy.keras_model import load_keras_model
from deploy.tflite_model import TFLiteModel
from deploy.validation import METADATA_FORMAT

__all__ = [
    "TARGETS",
    "METADATA_NAME",
    "ConversionResult",
    "convert_model",
    "convert_file",
    "load_keras_model",
]

# User-facing target → LCE converter target.
TARGETS = {"arm64": "arm", "x86_64": "arm", "xcore": "xcore"}


@dataclasses.dataclass
class ConversionResult:
    """The converted flatbuffer, its report and the metadata stored in it."""

    flatbuffer: bytes
    report: report_lib.Report
    metadata: dict


def _infer_dataset(model, sidecar):
    """(dataset name or None, how it was found)."""
    if sidecar.get("dataset"):
        return sidecar["dataset"], "model.json next to the model"
    from xnor_keras import models

    base = re.sub(rf"_({'|'.join(models.PRECISIONS)})$", "", model.name)
    for name, arch in models.ARCHITECTURES.items():
        if base in (name, name.removesuffix("_net")):
            return arch.dataset, f"model name {model.name!r}"
    by_shape = {tuple(a.input_shape): a.dataset for a in models.ARCHITECTURES.values()}
    shape = tuple(model.inputs[0].shape[1:])
    if shape in by_shape:
        return by_shape[shape], f"input shape {shape} (pass --dataset to override)"
    return None, "unknown (pass --dataset to record preprocessing and labels)"


def _read_sidecar(model_path):
    if model_path is None:
        return {}
    directory = os.path.dirname(os.path.abspath(os.fspath(model_path)))
    path = os.path.join(directory, "model.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_labels(path):
    try:
        with open(path, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    except OSError as error:
        raise DeployError(f"{path}: cannot read labels ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DeployError(f"{path}: labels file is not UTF-8 text") from None
    if not labels:
        raise DeployError(f"{path}: labels file is empty")
    return labels


def _dataset_info(model, dataset, labels_path, sidecar):
    """(dataset, dataset source, preprocessing spec or None, labels or None)."""
    from xnor_keras import data

    if dataset is not None:
        source = "--dataset"
    else:
        dataset, source = _infer_dataset(model, sidecar)
    spec = labels = None
    if dataset is not None:
        try:
            spec = sidecar.get("preprocessing") if source.startswith("model.json") else None
            spec = spec or data.preprocessing_spec(dataset)
            labels = sidecar.get("class_names") or list(data.class_names(dataset))
        except (ValueError, data.DataUnavailableError, OSError) as error:
            raise DeployError(f"--dataset {dataset!r}: {first_line(error)}") from None
        shape = list(model.inputs[0].shape[1:])
        if list(spec["input_shape"]) != shape:
            raise DeployError(f"dataset {dataset!r} has inputs {spec['input_shape']} but the "
                              f"model expects {shape}")
    classes = model.outputs[0].shape[-1]
    if source != "--dataset" and labels is not None and len(labels) != classes:
        # An inferred data set whose classes do not match the outputs is a wrong guess.
        dataset, spec, labels = None, None, None
        source = f"none: the inferred data set has a different number of classes than the " \
                 f"{classes} model outputs (pass --dataset)"
    if labels_path is not None:
        labels = _read_labels(labels_path)
    if labels is not None and classes is not None and len(labels) != classes:
        raise DeployError(f"{len(labels)} labels for a model with {classes} outputs")
    return dataset, source, spec, labels


def _signature(signs):
    from deploy.lowering import canonical_signs

    canonical = canonical_signs(np.asarray(signs))
    return canonical.shape, np.packbits(canonical.reshape(-1) < 0).tobytes()


def _binary_constant_signs(values):
    """±1 signs (C_out first) if ``values`` is ±s_c per output channel, else None."""
    if values is None or values.dtype != np.float32 or values.ndim < 2:
        return None
    per_channel = np.abs(values.reshape(values.shape[0], -1))
    scale = per_channel[:, :1]
    if np.any(scale == 0) or not np.all(per_channel == scale):
        return None
    return np.where(values < 0, -1.0, 1.0)


def _find_binary_layers(tflite, plans):
    """Matches binary / binary-weight plans to ops of the converted model.

    Returns {plan name: (op index, "bconv" | "float-binary-constant")}.
    """
    candidates = {}
    for op in tflite.ops:
        if op.name == "LceBconv2d":
            signs = tflite.bconv_filter(op)
            kind = "bconv"
        elif op.name in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1:
            signs = _binary_constant_signs(tflite.tensor_data(op.inputs[1]))
            kind = "float-binary-constant"
        else:
            continue
        if signs is not None:
            candidates.setdefault(_signature(signs), []).append((op.index, kind))
    found = {}
    for plan in plans:
        if not plan.role.binary or plan.filter_signs is None:
            continue
        matches = candidates.get(_signature(plan.filter_signs))
        if matches:
            found[plan.name] = matches.pop(0)
    return found


def _check_binary_layers(tflite, plans, found, *, allow_float_fallback):
    """Marks each plan's outcome; raises for a binary layer that ended up in float."""
    from deploy.lowering import Outcome, Role

    problems = []
    for plan in plans:
        if plan.role is Role.BINARY:
            match = found.get(plan.name)
            if match and match[1] == "bconv":
                plan.outcome = Outcome.BINARY
            else:
                why = ("its ±1 filter is stored as float32 weights of a float op"
                       if match else "no LceBconv2d with its filter exists in the converted "
                       "model")
                plan.outcome = Outcome.FLOAT
                problems.append(f"layer {plan.name!r} ({plan.class_name}) was not converted to "
                                f"a binary op: {why}")
        elif plan.role is Role.BINARY_WEIGHT:
            match = found.get(plan.name)
            if match:
                plan.outcome = Outcome.BINARY_WEIGHT
            else:
                plan.outcome = Outcome.FLOAT
                problems.append(f"layer {plan.name!r} ({plan.class_name}): its binary weights "
                                "were not found as a ±α constant in the converted model")
        elif plan.role is Role.FALLBACK:
            plan.outcome = Outcome.FLOAT
        else:
            plan.outcome = Outcome(plan.role)  # FLOAT or OTHER: what it was
    if problems and not allow_float_fallback:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DeployError(f"{problems[0]}{more}; pass --allow-float-fallback to accept")
    for plan in plans:
        if plan.outcome is Outcome.FLOAT and plan.role.binary:
            plan.notes.append("FLOAT FALLBACK (accepted with --allow-float-fallback)")
    return problems


_INT8_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _check_int8_layers(tflite, plans):
    """Marks each int8 plan `Outcome.INT8` if an op of its scope has int8 weights;
    raises for one the converter left in float."""
    from deploy.lowering import Outcome

    scoped = {}
    for op in tflite.ops:
        if op.name in _INT8_OPS and len(op.inputs) > 1 and \
                tflite.tensors[op.inputs[1]].dtype == "INT8":
            for t in op.outputs:
                for scope in re.findall(r"(?:^|[;/])(L\d+)/", tflite.tensors[t].name):
                    scoped.setdefault(scope, op.index)
    for plan in plans:
        if not plan.int8:
            continue
        if plan.scope not in scoped:
            raise DeployError(f"layer {plan.name!r} ({plan.class_name}) was lowered for int8 "
                              "but the converted file computes it in float (no int8 op of "
                              "its scope)")
        plan.outcome = Outcome.INT8


def _calibrate(model, *, calibration_data, calibration_n, dataset, spec):
    from deploy.calibration import calibrate, calibration_images

    images, source = calibration_images(
        calibration_data if calibration_data is not None else dataset, n=calibration_n,
        input_shape=model.inputs[0].shape[1:], spec=spec)
    return calibrate(model, images, source=source)


def _lce_convert(lowered, lce_target):
    import larq_compute_engine as lce
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="xnor-deploy-") as directory:
        tf.saved_model.save(lowered.module, directory,
                            signatures={"serving_default": lowered.function})
        try:
            return lce.convert_saved_model(directory, target=lce_target)
        except Exception as error:
            raise DeployError(f"larq-compute-engine could not convert the model: "
                              f"{first_line(error)}") from None


def convert_model(model, *, target="arm64", allow_float_fallback=False, dataset=None,
                  labels_path=None, source=None, sidecar=None, int8_float_layers=False,
                  calibration_data=None, calibration_n=None) -> ConversionResult:
    """Converts a loaded Keras model; see the module docstring.

    ``target``: ``"arm64"`` / ``"x86_64"`` (LCE's "arm" graph) or ``"xcore"``.
    ``dataset``: the data set whose preprocessing and labels to record (default:
    inferred from ``model.json`` beside the model, the model name or its input shape).
    ``int8_float_layers``: quantize the float conv/dense layers to int8, calibrated on
    ``calibration_n`` (default 256) images of ``calibration_data`` (a data set name or
    an image directory; default: the model's data set, its train split).
    """
    _check_int8_options(int8_float_layers, calibration_data, calibration_n)
    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    import xnor_keras  # its __version__ goes into the metadata
    from deploy.lowering import Role, lower
    import larq_compute_engine as lce
    import tensorflow as tf

    dataset, dataset_source, spec, labels = _dataset_info(model, dataset, labels_path,
                                                          sidecar or {})
    calibration = None
    if int8_float_layers:
        from deploy.calibration import DEFAULT_IMAGES

        calibration = _calibrate(model, calibration_data=calibration_data,
                                 calibration_n=calibration_n or DEFAULT_IMAGES,
                                 dataset=dataset, spec=spec)
    lowered = lower(model, allow_float_fallback=allow_float_fallback,
                    int8_ranges=None if calibration is None else calibration.ranges)
    flatbuffer = _lce_convert(lowered, TARGETS[target])
    tflite = TFLiteModel(flatbuffer)
    found = _find_binary_layers(tflite, lowered.plans)
    problems = _check_binary_layers(tflite, lowered.plans, found,
                                    allow_float_fallback=allow_float_fallback)
    _check_int8_layers(tflite, lowered.plans)
    if calibration is not None:
        for plan in lowered.plans:
            if plan.int8:
                r = calibration.ranges[plan.name]
                plan.notes.append(
                    f"int8, per-channel symmetric weights; activation ranges input "
                    f"[{r.input.lo:.4g}, {r.input.hi:.4g}], output [{r.output.lo:.4g}, "
                    f"{r.output.hi:.4g}] ({calibration.method} over {calibration.source})")
    owners = {}
    for plan in lowered.plans:
        match = found.get(plan.name)
        if match:
            owners[tflite.ops[match[0]].outputs[0]] = plan.name
    bwn = sorted((match[0], name) for name, match in found.items()
                 if match[1] == "float-binary-constant"
                 and any(p.name == name and p.role is Role.BINARY_WEIGHT for p in lowered.plans))
    scope_of = {plan.name: plan.scope for plan in lowered.plans}
    for op_index, name in reversed(bwn):
        tflite.binarize_constant(op_index, 1, scale_axis=0,
                                 name=f"{scope_of[name]}/binary_weights")
    records = report_lib.layer_records(lowered.plans)
    report = report_lib.build(tflite, records, owners=owners)
    report.problems = problems
    report.target = target
    report.dataset = dataset
    report.dataset_source = dataset_source
    report.calibration = None if calibration is None else calibration.as_dict()
    metadata = {
        "format": METADATA_FORMAT,
        "target": target,
        "lce_target": TARGETS[target],
        "source": {"path": None if source is None else os.path.basename(os.fspath(source)),
                   "model_name": model.name},
        "versions": {"larq_compute_engine": lce.__version__, "tensorflow": tf.__version__,
                     "xnor_keras": xnor_keras.__version__},
        "input": {"shape": [1, *lowered.input_shape], "dtype": "float32"},
        "output": {"shape": [1, *[int(d) for d in model.outputs[0].shape[1:]]]},
        "dataset": dataset,
        "preprocessing": spec,
        "labels": labels,
        "keras_config": model.to_json(),
        "summary": report.summary(),
        "layers": records,
        "int8_calibration": report.calibration,
    }
    tflite.set_metadata(METADATA_NAME, json.dumps(metadata).encode("utf-8"))
    data = tflite.to_bytes()
    report.file_bytes = len(data)
    return ConversionResult(flatbuffer=data, report=report, metadata=metadata)


def _check_int8_options(int8_float_layers, calibration_data, calibration_n):
    from xnor_keras.validation import positive_int

    if not isinstance(int8_float_layers, bool):
        raise DeployError(f"int8_float_layers must be True or False. Received: "
                          f"int8_float_layers={int8_float_layers!r}")
    if calibration_n is not None:
        positive_int("--calibration_n", calibration_n, error=DeployError)
    if not int8_float_layers and (calibration_data is not None or calibration_n is not None):
        raise DeployError("--calibration_data / --calibration_n calibrate the int8 float "
                          "layers: pass --int8_float_layers too")


def convert_file(model_path, out_path, *, target="arm64", allow_float_fallback=False,
                 dataset=None, labels_path=None, int8_float_layers=False,
                 calibration_data=None, calibration_n=None) -> ConversionResult:
    """Loads ``model_path``, converts it and writes ``out_path`` atomically (see
    `convert_model` for the options)."""
    _check_int8_options(int8_float_layers, calibration_data, calibration_n)
    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r}: expected one of {', '.join(TARGETS)}")
    out_dir = os.path.dirname(os.path.abspath(os.fspath(out_path)))
    if not os.path.isdir(out_dir):
        raise DeployError(f"cannot write {out_path}: directory {out_dir} does not exist")
    if os.path.isdir(out_path):
        raise DeployError(f"cannot write {out_path}: it is a directory")
    if labels_path is not None:
        _read_labels(labels_path)
    model = load_keras_model(model_path)
    result = convert_model(model, target=target, allow_float_fallback=allow_float_fallback,
                           dataset=dataset, labels_path=labels_path, source=model_path,
                           sidecar=_read_sidecar(model_path),
                           int8_float_layers=int8_float_layers,
                           calibration_data=calibration_data, calibration_n=calibration_n)
    from xnor_keras.io import atomic_write

    atomic_write(out_path, result.flatbuffer)
    return result
