"""The native delegate's fused glue (native/fusion*.h, issue 13 item 2) against the unfused
graph: the same .tflite run with ``fuse=False``, where TFLite's own kernels (XNNPACK) compute
the affine, ABS, MEAN, box CONV_2D and the MUL by K, is the oracle.

Every fused pattern of every zoo model (ImageNet models at reduced input sizes) is cut out
of the file as a submodel (its input: the tensor the pattern reads) and run both ways on
the same random input, on every ISA of this CPU: float outputs must agree to 1e-5 of the
output's largest magnitude. A single wrong sign bit of the bitpacked input (the fused
bitpacking must equal LceQuantize's) moves an output by 2·|α|·K, far more than that.
"""

import copy
import re

import numpy as np
import pytest
import tensorflow as tf

from deploy import native
from deploy.convert import convert_model
from deploy.errors import DeployError
from deploy.tflite_model import TFLiteModel
from tests.conftest import trained_like
from tests.test_native import (HOST_HAS_AVX2, HOST_HAS_AVX512, _assert_close,
                               batch_and_singles)
from xnor_keras import models

# The zoo at input sizes that convert in seconds (the layers are the same).
INPUTS = {"fashion_net": None, "cifar_net": None, "resnet18": (32, 32, 3),
          "googlenet": (32, 32, 3), "alexnet": (67, 67, 3)}
ISAS = ["portable"] + (["avx2"] if HOST_HAS_AVX2 else []) + (["avx512"] if HOST_HAS_AVX512 else [])


def _convert(name, *, scaling, seed=0):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    options = {"input_scaling": scaling}
    if INPUTS[name] is not None:
        options.update(input_shape=INPUTS[name], num_classes=10)
    model = trained_like(models.build(name, "xnor", **options), np.random.default_rng(seed))
    model._name = f"fusion_{model.name}"  # no data set is inferred for a reduced input
    return convert_model(model, target="x86_64").flatbuffer


class _Zoo(dict):
    """Converted on first use: ``zoo[(name, scaling)]`` -> flatbuffer."""

    def __missing__(self, key):
        self[key] = _convert(key[0], scaling=key[1])
        return self[key]


@pytest.fixture(scope="module")
def zoo():
    return _Zoo()


def _run(flatbuffer, x, **options):
    """Output and delegate report; ``x``: the input, or a list of them in input order."""
    interpreter = native.tflite_interpreter(flatbuffer, **options)
    for detail, value in zip(interpreter.get_input_details(), x if isinstance(x, list) else [x]):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return (interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
            native.delegate_report(interpreter.xnor_keras_delegate))


def _pattern_model(model, nodes):
    """The pattern's nodes alone: its activation inputs (what the affine reads, and a
    shortcut's residual) in, its last node's output out: ``(flatbuffer, [inputs])``."""
    ops = [model.ops[i] for i in nodes]
    written = {t for op in ops for t in op.outputs}
    inputs = sorted({t for op in ops for t in op.inputs
                     if t >= 0 and not model.tensors[t].constant and t not in written})
    assert 1 <= len(inputs) <= 2, inputs
    return model.submodel(nodes, inputs=inputs, outputs=[ops[-1].outputs[0]]), inputs


def _random_inputs(model, tensors, rng):
    return [rng.normal(size=model.tensors[t].shape).astype(np.float32) for t in tensors]


# Per zoo model with K: the float MAX_POOL_2D nodes that produce a K pattern's input
# (up to RESHAPEs), fused into it / not (ResNet-18's stem pool also feeds the shortcut).
POOLS_BEFORE_K = {"fashion_net": ([1, 10, 27], []), "cifar_net": ([9, 26, 43], []),
                  "resnet18": ([], [1]), "googlenet": ([1, 10, 43, 124], []),
                  "alexnet": ([2, 11, 36], [])}


def _pools_before_k(model, report):
    """(claimed, refused): MAX_POOL_2D nodes inside a fused pattern's nodes, and those whose
    output (up to RESHAPEs) is the input of a fused pattern that does not claim them."""
    producers = {t: op for op in model.ops for t in op.outputs}
    claimed, refused = [], []
    for pattern in report["fused"]:
        nodes = set(pattern["nodes"])
        pools = [i for i in nodes if model.ops[i].name == "MAX_POOL_2D"]
        assert len(pools) <= 1, pattern
        claimed += pools
        if pools:
            assert pattern["pool"] == pools[0]
            continue
        written = {t for i in nodes for t in model.ops[i].outputs}
        for t in {t for i in nodes for t in model.ops[i].inputs
                  if t >= 0 and not model.tensors[t].constant and t not in written}:
            op = producers.get(t)
            while op is not None and op.name == "RESHAPE":
                op = producers.get(op.inputs[0])
            if op is not None and op.name == "MAX_POOL_2D":
                refused.append(op.index)
    return sorted(claimed), sorted(set(refused))


def _edited(flatbuffer, change):
    """``flatbuffer`` with ``change(raw)`` applied to its object API model."""
    import flatbuffers

    from deploy.tflite_model import schema

    raw = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    change(raw)
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(raw.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _bconvs_scaled_by_k(model):
    """LceBconv2d nodes whose output is multiplied by a non-constant tensor (K)."""
    consumers = model.consumers()
    found = []
    for op in model.ops:
        if op.name != "LceBconv2d":
            continue
        readers = [model.ops[i] for i in consumers.get(op.outputs[0], [])]
        if len(readers) == 1 and readers[0].name == "MUL" and not any(
                model.tensors[t].constant for t in readers[0].inputs):
            found.append(op.index)
    return found


@pytest.mark.parametrize("scaling", [True, False], ids=["K", "no_K"])
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_fused_pattern_equals_the_unfused_graph(zoo, name, scaling):
    flatbuffer = zoo[(name, scaling)]
    model = TFLiteModel(flatbuffer)
    rng = np.random.default_rng(1)
    x = rng.normal(size=model.inputs[0].shape).astype(np.float32)
    _, report = _run(flatbuffer, x)
    # Not fused: only residual ADDs that TFLite would run between the pattern's nodes
    # (ResNet's projection shortcuts: the 1x1 CONV_2D of the residual comes after the MUL),
    # and pools whose output a shortcut reads too (ResNet's stem).
    assert report["fuse"] is True
    assert all((item["reason"].startswith("its residual ADD node ") and
                "would leave its delegate partition (a model output, or a node TFLite runs "
                "in between)" in item["reason"]) or
               re.fullmatch(r"its MAX_POOL_2D node \d+ is not fused: tensor \d+ is also read "
                            r"outside the pattern", item["reason"])
               for item in report["not_fused"]), report["not_fused"]
    claimed, refused = _pools_before_k(model, report)
    assert claimed == sorted(f["pool"] for f in report["fused"] if "pool" in f)
    assert (claimed, refused) == POOLS_BEFORE_K[name] if scaling else ([], [])
    expected = _bconvs_scaled_by_k(model)
    assert sorted(f["bconv"] for f in report["fused"]) == expected
    assert bool(expected) == scaling  # every XNOR layer with K, and only those
    residuals = 0
    for pattern in report["fused"]:
        names = [model.ops[i].name for i in pattern["nodes"]]
        assert {"ABS", "MEAN", "LceQuantize", "LceBconv2d"} <= set(names), names
        sub, inputs = _pattern_model(model, pattern["nodes"])
        u = _random_inputs(model, inputs, rng)
        residuals += len(inputs) - 1
        unfused, plain = _run(sub, u, fuse=False)
        assert plain["fused"] == []
        for isa in ISAS:
            fused, info = _run(sub, u, isa=isa)
            assert len(info["fused"]) == 1, (isa, info)
            _assert_close(fused, unfused)
    assert residuals == sum(model.ops[f["nodes"][-1]].name == "ADD" for f in report["fused"])
    if name == "resnet18" and scaling:  # the identity shortcuts' ADDs are fused too
        assert residuals >= 4 and len(report["not_fused"]) == 4, report["not_fused"]
    if not scaling:  # nothing to fuse: the same kernels, the same bytes
        np.testing.assert_array_equal(_run(flatbuffer, x)[0], _run(flatbuffer, x, fuse=False)[0])


def test_whole_model_fused_equals_unfused(zoo):
    """A shallow model end to end (in deep random models a 1e-7 change of K may flip a
    sign near 0 downstream, as XNNPACK against TFLite's builtin kernels does too)."""
    flatbuffer = zoo[("fashion_net", True)]
    x = np.random.default_rng(2).normal(size=(1, 28, 28, 1)).astype(np.float32)
    for isa in ISAS:
        fused, report = _run(flatbuffer, x, isa=isa)
        assert len(report["fused"]) == 4
        _assert_close(fused, _run(flatbuffer, x, isa=isa, fuse=False)[0])


def test_a_filter_that_is_not_a_box_is_not_fused_and_says_why(zoo):
    """K's CONV_2D with one filter value changed (its own copy of the constant) runs on
    TFLite; the delegate names the layer and the reason, and the others stay fused."""
    from deploy.tflite_model import schema

    flatbuffer = zoo[("fashion_net", True)]
    model = TFLiteModel(flatbuffer)
    fused = native.delegate_report(native.tflite_interpreter(flatbuffer).xnor_keras_delegate)
    first = fused["fused"][0]
    conv = next(i for i in first["nodes"] if model.ops[i].name == "CONV_2D")

    def change(raw):
        graph = raw.subgraphs[0]
        slot = graph.operators[conv].inputs[1]
        box = model.tensor_data(slot).copy()
        box.reshape(-1)[0] *= 2
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(box.tobytes(), np.uint8).copy()
        raw.buffers.append(buffer)
        tensor = copy.copy(graph.tensors[slot])
        tensor.buffer = len(raw.buffers) - 1
        graph.tensors.append(tensor)
        inputs = np.array(graph.operators[conv].inputs, np.int32)
        inputs[1] = len(graph.tensors) - 1
        graph.operators[conv].inputs = inputs

    edited = _edited(flatbuffer, change)
    x = np.random.default_rng(3).normal(size=(1, 28, 28, 1)).astype(np.float32)
    ours, report = _run(edited, x)
    assert [f["bconv"] for f in report["fused"]] == [f["bconv"] for f in fused["fused"][1:]]
    assert report["not_fused"] == [{"node": first["bconv"], "reason": f"CONV_2D node {conv}: "
                                    "the filter is not a constant box (its values differ)"}]
    _assert_close(ours, _run(edited, x, fuse=False)[0])
    assert f"not fused at LceBconv2d {first['bconv']}: CONV_2D node" in \
        native.describe_fusion(report)


def test_an_intermediate_that_is_a_model_output_is_not_fused(zoo):
    """A cut whose outputs include K (as deploy.certify's segments may) keeps the pattern
    unfused, so K is computed, and says so."""
    flatbuffer = zoo[("fashion_net", True)]
    model = TFLiteModel(flatbuffer)
    report = native.delegate_report(native.tflite_interpreter(flatbuffer).xnor_keras_delegate)
    nodes = report["fused"][0]["nodes"]
    sub, inputs = _pattern_model(model, nodes)
    root = inputs[0]
    mul = model.ops[nodes[-1]]
    bconv_output = model.ops[report["fused"][0]["bconv"]].outputs[0]
    k = next(t for t in mul.inputs if t != bconv_output)
    both = model.submodel(nodes, inputs=[root], outputs=[mul.outputs[0], k])
    interpreter = native.tflite_interpreter(both)
    info = native.delegate_report(interpreter.xnor_keras_delegate)
    assert info["fused"] == [] and len(info["not_fused"]) == 1
    assert info["not_fused"][0]["reason"].endswith(
        "would leave its delegate partition (a model output, or a node TFLite runs in between)")
    u = np.random.default_rng(4).normal(size=model.tensors[root].shape).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], u)
    interpreter.invoke()
    outputs = {d["name"]: interpreter.get_tensor(d["index"])
               for d in interpreter.get_output_details()}
    assert len(outputs) == 2
    single, _ = _run(sub, u)  # the same pattern fused
    out = [v for v in outputs.values() if v.shape == single.shape]
    _assert_close(out[0], single)


def test_pools_with_same_padding_and_activations_equal_the_unfused_graph(zoo):
    """The zoo's pools are VALID 2x2/3x3 without activation; fashion_net's three pools
    edited to SAME 4x3 with ReLU6 (1 padded row above, taps ignored), SAME 3x3 with
    ReLU-N1-to-1 (padding only after) and VALID 3x3 with ReLU (shapes unchanged) are
    claimed and every pattern, and the whole model, equals the unfused graph."""
    from deploy.tflite_model import schema

    P, A = schema.Padding, schema.ActivationFunctionType
    options = {1: (P.SAME, 4, 3, A.RELU6), 10: (P.SAME, 3, 3, A.RELU_N1_TO_1),
               27: (P.VALID, 3, 3, A.RELU)}

    def change(raw):
        for node, (padding, fh, fw, activation) in options.items():
            o = raw.subgraphs[0].operators[node].builtinOptions
            o.padding, o.filterHeight, o.filterWidth = padding, fh, fw
            o.fusedActivationFunction = activation

    edited = _edited(zoo[("fashion_net", True)], change)
    model = TFLiteModel(edited)
    assert all(model.ops[n].name == "MAX_POOL_2D" for n in options)
    x = np.random.default_rng(6).normal(size=(1, 28, 28, 1)).astype(np.float32)
    rng = np.random.default_rng(7)
    for isa in ISAS:
        ours, report = _run(edited, x, isa=isa)
        assert report["not_fused"] == [] and sorted(
            f["pool"] for f in report["fused"] if "pool" in f) == sorted(options)
        _assert_close(ours, _run(edited, x, isa=isa, fuse=False)[0])
    for pattern in report["fused"]:
        sub, inputs = _pattern_model(model, pattern["nodes"])
        u = _random_inputs(model, inputs, rng)
        unfused, _ = _run(sub, u, fuse=False)
        for isa in ISAS:
            _assert_close(_run(sub, u, isa=isa)[0], unfused)


def test_a_pool_whose_output_leaves_the_partition_is_not_fused(zoo):
    """A cut whose outputs include the pooled tensor u: the pattern is fused without its
    pool (TFLite computes u), with a line in not_fused; both outputs equal the unfused."""
    flatbuffer = zoo[("fashion_net", True)]
    model = TFLiteModel(flatbuffer)
    report = native.delegate_report(native.tflite_interpreter(flatbuffer).xnor_keras_delegate)
    pattern = report["fused"][1]
    pool = pattern["pool"]
    nodes = pattern["nodes"]
    v = model.ops[pool].inputs[0]
    u = model.ops[pool].outputs[0]
    both = model.submodel(nodes, inputs=[v], outputs=[model.ops[nodes[-1]].outputs[0], u])
    x = np.random.default_rng(7).normal(size=model.tensors[v].shape).astype(np.float32)
    outputs = {}
    for fuse in (True, False):
        interpreter = native.tflite_interpreter(both, fuse=fuse)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        outputs[fuse] = [interpreter.get_tensor(d["index"])
                         for d in interpreter.get_output_details()]
        if fuse:
            info = native.delegate_report(interpreter.xnor_keras_delegate)
    sub_pool = nodes.index(pool)  # the cut's nodes are renumbered from 0
    assert [f["bconv"] for f in info["fused"]] == [nodes.index(pattern["bconv"])]
    assert "pool" not in info["fused"][0] and sub_pool not in info["fused"][0]["nodes"]
    assert len(info["not_fused"]) == 1 and info["not_fused"][0]["reason"].startswith(
        f"its MAX_POOL_2D node {sub_pool} is not fused: tensor "), info["not_fused"]
    for fused, unfused in zip(outputs[True], outputs[False]):
        _assert_close(fused, unfused)


def test_batches_threads_and_profile_of_fused_kernels(zoo):
    """Batch resizes re-plan the fused kernels; 2 threads give the same bytes as 1; the
    profile lists every fused node with the LceBconv2d it ran in."""
    flatbuffer = zoo[("resnet18", True)]
    model = TFLiteModel(flatbuffer)
    x = np.random.default_rng(5).normal(size=(3, *model.inputs[0].shape[1:])).astype(np.float32)
    interpreter = native.tflite_interpreter(flatbuffer)
    batched, singles = batch_and_singles(interpreter, x)
    np.testing.assert_array_equal(batched, np.concatenate(singles))
    two = native.tflite_interpreter(flatbuffer, num_threads=2)
    two.set_tensor(two.get_input_details()[0]["index"], x[:1])
    two.invoke()
    np.testing.assert_array_equal(two.get_tensor(two.get_output_details()[0]["index"]),
                                  singles[0])
    report = native.delegate_report(interpreter.xnor_keras_delegate)
    profile = native.delegate_profile(interpreter.xnor_keras_delegate)
    fused_into = {entry["node"]: entry.get("fused_into") for entry in profile}
    for pattern in report["fused"]:
        for node in pattern["nodes"]:
            assert fused_into[node] == pattern["bconv"]
            assert [e["op"] for e in profile if e["node"] == node] == [model.ops[node].name]
    assert all(entry["runs"] == 4 for entry in profile)


def test_fuse_option_is_validated_and_described(zoo):
    flatbuffer = zoo[("fashion_net", True)]
    with pytest.raises(DeployError, match="^fuse must be True or False. Received: fuse='no'$"):
        native.tflite_interpreter(flatbuffer, fuse="no")
    runner = native.make_interpreter(flatbuffer)
    first = runner.kernels["fused"][0]
    assert first["nodes"] == list(range(first["nodes"][0], first["bconv"] + 2))  # consecutive
    assert runner.describe().endswith(")") and (
        f"; 4 K pattern(s) fused (LceBconv2d {first['bconv']}: nodes {first['nodes'][0]}-"
        f"{first['bconv'] + 1}; LceBconv2d ") in runner.describe()
    assert native.make_interpreter(flatbuffer, fuse=False).describe().endswith("fusion off")


@pytest.mark.parametrize("shape, fused", [([1, 1152], True), ([1152, -1], False)])
def test_a_reshape_is_fused_only_when_its_shape_gives_its_output(zoo, shape, fused):
    """fashion_net's RESHAPE between the last pool and the dense layer's pattern, its
    constant [-1, 1152] rewritten: [1, 1152] is the same relabeling (pool and RESHAPE
    stay fused, the output equals the unfused graph's); [1152, -1] makes TFLite's kernel
    compute [1152, 1], not the declared [1, 1152], and the unfused affine then broadcasts
    to [1152, 1152]: the pattern must not skip that RESHAPE, and it refuses an input of
    another shape than it was matched for with a one-line error rather than compute
    something else."""
    flatbuffer = zoo[("fashion_net", True)]
    model = TFLiteModel(flatbuffer)
    reshape = next(op for op in model.ops if op.name == "RESHAPE"
                   and model.tensor_data(op.inputs[1]).tolist() == [-1, 1152])

    def change(raw):
        raw.buffers[raw.subgraphs[0].tensors[reshape.inputs[1]].buffer].data = np.frombuffer(
            np.array(shape, np.int32).tobytes(), np.uint8).copy()

    edited = _edited(flatbuffer, change)
    x = np.random.default_rng(6).normal(size=(1, 28, 28, 1)).astype(np.float32)
    unfused = _run(edited, x, fuse=False)[0]
    if fused:
        ours, report = _run(edited, x)
        assert any(reshape.index in f["nodes"] for f in report["fused"]), report
        _assert_close(ours, unfused)
        return
    assert unfused.shape == (1152, 10)
    with pytest.raises(DeployError, match=r"^the native runtime cannot load this model: .*"
                       r"fused input \[1152, 1\] is not the \[1, 1152\] the pattern was "
                       r"matched for \(only its batch may change\)") as error:
        native.make_interpreter(edited)
    assert "\n" not in str(error.value)
