import inspect

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from xnor_keras import layers as xl
from xnor_keras import quantizers as xq
from tests import reference as ref

CONV_CASES = [
    # (input H, W, kernel, stride, padding, dilation)
    pytest.param(7, 7, 3, 1, "same", 1, id="odd-k3-s1-same"),
    pytest.param(8, 8, 3, 2, "same", 1, id="even-k3-s2-same"),
    pytest.param(9, 8, 3, 2, "valid", 1, id="odd-even-k3-s2-valid"),
    pytest.param(8, 9, 2, 1, "same", 1, id="even-k2-s1-same"),
    pytest.param(10, 10, 4, 2, "same", 1, id="even-k4-s2-same"),
    pytest.param(11, 11, 3, 1, "same", 2, id="odd-k3-d2-same"),
    pytest.param(12, 12, 3, 1, "valid", 2, id="even-k3-d2-valid"),
    pytest.param(9, 9, 5, 1, "valid", 1, id="odd-k5-s1-valid"),
]


def _conv(cls, kernel, stride, padding, dilation, **options):
    return cls(6, kernel, strides=stride, padding=padding, dilation_rate=dilation,
               use_bias=False, **options)


@pytest.mark.parametrize("h, w, kernel, stride, padding, dilation", CONV_CASES)
def test_xnor_conv_matches_eq11(rng, h, w, kernel, stride, padding, dilation):
    x = rng.normal(size=(2, h, w, 5)).astype(np.float32)
    x[0, 1, 1, :] = 0.0  # sign(0) = +1 while |0| adds nothing to K
    layer = _conv(xl.XnorConv2D, kernel, stride, padding, dilation)
    out = layer(x).numpy()
    expected = ref.xnor_conv(x, layer.kernel.numpy(), stride=stride, padding=padding,
                             dilation=dilation)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, w, kernel, stride, padding, dilation", CONV_CASES[:4])
def test_xnor_conv_without_input_scaling(rng, h, w, kernel, stride, padding, dilation):
    x = rng.normal(size=(2, h, w, 5)).astype(np.float32)
    layer = _conv(xl.XnorConv2D, kernel, stride, padding, dilation, input_scaling=False)
    out = layer(x).numpy()
    expected = ref.xnor_conv(x, layer.kernel.numpy(), stride=stride, padding=padding,
                             dilation=dilation, input_scaling=False)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, w, kernel, stride, padding, dilation", CONV_CASES)
def test_binary_weight_conv_matches_eq1(rng, h, w, kernel, stride, padding, dilation):
    x = rng.normal(size=(2, h, w, 5)).astype(np.float32)
    layer = _conv(xl.BinaryWeightConv2D, kernel, stride, padding, dilation)
    out = layer(x).numpy()
    expected = ref.bwn_conv(x, layer.kernel.numpy(), stride=stride, padding=padding,
                            dilation=dilation)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_scaling", [True, False])
def test_xnor_dense_matches_eq10(rng, input_scaling):
    x = rng.normal(size=(5, 33)).astype(np.float32)
    layer = xl.XnorDense(7, use_bias=False, input_scaling=input_scaling)
    expected = ref.xnor_dense(x, _built_kernel(layer, x), input_scaling)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def _built_kernel(layer, x):
    if not layer.built:
        layer.build(x.shape)
    return layer.kernel.numpy()


def test_binary_weight_dense_matches_eq1(rng):
    x = rng.normal(size=(4, 9)).astype(np.float32)
    layer = xl.BinaryWeightDense(3, use_bias=False)
    w = _built_kernel(layer, x)
    np.testing.assert_allclose(layer(x).numpy(), x @ (ref.sign(w) * ref.alpha(w)), rtol=1e-5, atol=1e-6)


def test_bias_and_activation_follow_the_scaling(rng):
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer = xl.XnorConv2D(4, 3, padding="same", activation="relu",
                          bias_initializer="random_normal")
    out = layer(x).numpy()
    expected = ref.xnor_conv(x, layer.kernel.numpy(), padding="same") + layer.bias.numpy()
    np.testing.assert_allclose(out, np.maximum(expected, 0), rtol=1e-5, atol=1e-5)


def test_learned_alpha_is_a_trainable_per_filter_scale(rng):
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer = xl.XnorConv2D(4, 3, padding="same", use_bias=False, alpha="learned",
                          input_scaling=False)
    layer.build(x.shape)
    scale = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    layer.alpha_scale.assign(scale)
    assert any(w is layer.alpha_scale for w in layer.trainable_weights)
    w = layer.kernel.numpy()
    # With learned α the binary filter is plain sign(W): undo eq. 6's α in the reference.
    expected = ref.xnor_conv(x, w, padding="same", input_scaling=False) / ref.alpha(w) * scale
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_alpha_none_is_plain_sign_weights(rng):
    x = rng.normal(size=(3, 8)).astype(np.float32)
    layer = xl.XnorDense(2, use_bias=False, alpha="none", input_scaling=False)
    w = _built_kernel(layer, x)
    np.testing.assert_array_equal(layer(x).numpy(), ref.sign(x) @ ref.sign(w))


def test_k_bit_weights_and_inputs(rng):
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    layer = xl.XnorConv2D(4, 3, use_bias=False, alpha="none", input_scaling=False,
                          weight_bits=2, input_bits=3)
    layer.build(x.shape)
    w = layer.kernel.numpy()
    expected = ref.conv(ref.q_k(x, 3), ref.q_k(w, 2))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert layer.input_quantizer.precision == 3 and layer.kernel_quantizer.precision == 2


def test_weight_gradient_is_the_papers(rng):
    x = tf.constant(rng.normal(size=(2, 6, 6, 3)).astype(np.float32))
    layer = xl.BinaryWeightConv2D(4, 3, use_bias=False)
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x) ** 2)
    grad = tape.gradient(y, layer.kernel).numpy()
    # Gradient w.r.t. W̃ by hand: the conv's weight gradient with W̃ = α·sign(W).
    w = layer.kernel.numpy()
    w_tilde = tf.Variable(ref.sign(w) * ref.alpha(w), dtype=tf.float32)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(tf.nn.conv2d(x, w_tilde, 1, "VALID") ** 2)
    g_tilde = tape.gradient(y, w_tilde).numpy()
    expected = g_tilde * (1.0 / 27 + ref.alpha(w) * (np.abs(w) <= 1))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


MODES = ["position", "example", "channel", "tensor"]


def _layer_grads(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    grad_x, grad_w = tape.gradient(y, [x, layer.kernel], output_gradients=tf.constant(upstream))
    return grad_x.numpy(), grad_w.numpy()


def _upstream_with_zeros(rng, shape):
    upstream = rng.normal(size=shape).astype(np.float32)
    upstream.reshape(-1)[::7] = 0.0
    upstream[0, ..., 1] = 0.0  # one output channel of one example without gradient
    return upstream


@pytest.mark.parametrize("mode", MODES)
def test_binary_gradient_feeds_both_conv_gradients(rng, mode):
    x = rng.normal(scale=0.8, size=(3, 6, 6, 3)).astype(np.float32)
    upstream = _upstream_with_zeros(rng, (3, 4, 4, 4))
    layer = xl.XnorConv2D(4, 3, use_bias=False, alpha="none", input_scaling=False,
                          binary_gradient=mode)
    layer.build(x.shape)
    w = layer.kernel.numpy()
    grad_x, grad_w = _layer_grads(layer, x, upstream)
    # By hand (NumPy): g_bin of §3.2 flows back through sign(I) ⊛ sign(W), then the STEs.
    g_bin = ref.binary_gradient(upstream, mode)
    dx, dw = ref.conv_backward(ref.sign(x), ref.sign(w), g_bin)
    np.testing.assert_allclose(grad_x, dx * (np.abs(x) <= 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, dw * (np.abs(w) <= 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [xl.XnorDense, xl.BinaryWeightDense])
def test_binary_gradient_feeds_both_dense_gradients(rng, mode, cls):
    x = rng.normal(scale=0.8, size=(5, 7)).astype(np.float32)
    upstream = _upstream_with_zeros(rng, (5, 4))
    options = {"input_scaling": False} if cls is xl.XnorDense else {}
    layer = cls(4, use_bias=False, alpha="none", binary_gradient=mode, **options)
    layer.build(x.shape)
    w = layer.kernel.numpy()
    grad_x, grad_w = _layer_grads(layer, x, upstream)
    g_bin = ref.binary_gradient(upstream, mode)  # dense "position" = one scale per example
    if mode == "position":
        np.testing.assert_allclose(g_bin, ref.binary_gradient(upstream, "example"))
    q_x = ref.sign(x) if cls is xl.XnorDense else x
    x_ste = (np.abs(x) <= 1) if cls is xl.XnorDense else 1.0
    np.testing.assert_allclose(grad_x, (g_bin @ ref.sign(w).T) * x_ste, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, (q_x.T @ g_bin) * (np.abs(w) <= 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("products", ["weights", "inputs"])
@pytest.mark.parametrize("mode", ["position", "channel"])
def test_binary_gradient_for_one_product_conv(rng, mode, products):
    x = rng.normal(scale=0.8, size=(3, 6, 6, 3)).astype(np.float32)
    upstream = _upstream_with_zeros(rng, (3, 4, 4, 4))
    layer = xl.XnorConv2D(4, 3, use_bias=False, alpha="none", input_scaling=False,
                          binary_gradient=mode, binary_gradient_for=products)
    layer.build(x.shape)
    w = layer.kernel.numpy()
    y = layer(x).numpy()
    grad_x, grad_w = _layer_grads(layer, x, upstream)
    # By hand: the binarized g of §3.2 feeds the named product only, the real-valued
    # upstream gradient the other.
    g_bin = ref.binary_gradient(upstream, mode)
    dx_bin, dw_bin = ref.conv_backward(ref.sign(x), ref.sign(w), g_bin)
    dx_real, dw_real = ref.conv_backward(ref.sign(x), ref.sign(w), upstream)
    dx, dw = (dx_real, dw_bin) if products == "weights" else (dx_bin, dw_real)
    np.testing.assert_allclose(grad_x, dx * (np.abs(x) <= 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, dw * (np.abs(w) <= 1), rtol=1e-5, atol=1e-5)
    # The forward pass is unchanged: sign(I) ⊛ sign(W) (by hand).
    np.testing.assert_allclose(y, ref.conv(ref.sign(x), ref.sign(w)), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("products", ["weights", "inputs"])
def test_binary_gradient_for_one_product_dense(rng, products):
    x = rng.normal(scale=0.8, size=(5, 7)).astype(np.float32)
    upstream = _upstream_with_zeros(rng, (5, 4))
    layer = xl.BinaryWeightDense(4, use_bias=False, alpha="none", binary_gradient="example",
                                 binary_gradient_for=products)
    layer.build(x.shape)
    w = layer.kernel.numpy()
    grad_x, grad_w = _layer_grads(layer, x, upstream)
    g_bin = ref.binary_gradient(upstream, "example")
    g_x, g_w = (upstream, g_bin) if products == "weights" else (g_bin, upstream)
    np.testing.assert_allclose(grad_x, g_x @ ref.sign(w).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_w, (x.T @ g_w) * (np.abs(w) <= 1), rtol=1e-5, atol=1e-5)


def test_binary_gradient_for_needs_binary_gradient():
    with pytest.raises(ValueError, match=r"binary_gradient_for='weights' needs binary_gradient "
                                         r"on\. Received: binary_gradient=False"):
        xl.XnorConv2D(4, 3, binary_gradient_for="weights")
    with pytest.raises(ValueError, match=r"binary_gradient_for must be one of \('both', "
                                         r"'weights', 'inputs'\)\. Received: "
                                         r"binary_gradient_for='w'"):
        xl.XnorConv2D(4, 3, binary_gradient=True, binary_gradient_for="w")


def test_binary_gradient_true_is_position_and_false_is_off(rng):
    x = rng.normal(scale=0.8, size=(2, 5, 5, 3)).astype(np.float32)
    upstream = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    grads = {}
    for value in (True, "position", False):
        tf.keras.utils.set_random_seed(3)
        layer = xl.XnorConv2D(4, 3, use_bias=False, alpha="none", input_scaling=False,
                              binary_gradient=value)
        layer.build(x.shape)
        grads[value] = _layer_grads(layer, x, upstream)[1]
        if value is False:
            _, dw = ref.conv_backward(ref.sign(x), ref.sign(layer.kernel.numpy()), upstream)
            np.testing.assert_allclose(grads[False], dw * (np.abs(layer.kernel.numpy()) <= 1),
                                       rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(grads[True], grads["position"])
    assert not np.allclose(grads[True], grads[False])


@pytest.mark.parametrize("value", [True, False, "channel"])
def test_binary_gradient_config_and_save_load_round_trip(rng, tmp_path, value):
    inp = tf.keras.Input((6, 6, 3))
    out = xl.XnorConv2D(4, 3, use_bias=False, binary_gradient=value)(inp)
    model = tf.keras.Model(inp, out)
    layer = model.layers[-1]
    assert xl.XnorConv2D.from_config(layer.get_config()).get_config() == layer.get_config()
    model.save(tmp_path / "model.keras")
    loaded = tf.keras.models.load_model(tmp_path / "model.keras").layers[-1]
    assert loaded.binary_gradient == value and type(loaded.binary_gradient) is type(value)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    upstream = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(_layer_grads(loaded, x, upstream)[1],
                               _layer_grads(layer, x, upstream)[1], rtol=1e-6)


PAIRS = [
    (xl.BinaryWeightConv2D, tf.keras.layers.Conv2D),
    (xl.XnorConv2D, tf.keras.layers.Conv2D),
    (xl.BinaryWeightDense, tf.keras.layers.Dense),
    (xl.XnorDense, tf.keras.layers.Dense),
]


@pytest.mark.parametrize("ours, keras", PAIRS)
def test_same_arguments_and_defaults_as_keras(ours, keras):
    ours_params = inspect.signature(ours.__init__).parameters
    keras_params = inspect.signature(keras.__init__).parameters
    positional = [p for p in ours_params.values() if p.kind != p.KEYWORD_ONLY]
    assert [(p.name, p.default, p.kind) for p in positional] == [
        (p.name, p.default, p.kind) for p in keras_params.values()
    ]
    extra = [p.name for p in ours_params.values() if p.kind == p.KEYWORD_ONLY]
    assert "alpha" in extra and "binary_gradient" in extra and "weight_bits" in extra


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": "l1"}, "alpha must be one of .* Received: alpha='l1'"),
        ({"weight_bits": 0, "alpha": "none"}, "Received: weight_bits=0"),
        ({"input_bits": 0}, "Received: input_bits=0"),
        ({"weight_bits": 2}, "Received: alpha='mean_abs', weight_bits=2"),
        ({"alpha": "none", "weight_gradient": "paper"}, "Received: weight_gradient='paper'"),
        ({"weight_gradient": "exact"}, "Received: weight_gradient='exact'"),
        ({"binary_gradient": 1}, "Received: binary_gradient=1"),
        ({"binary_gradient": "global"},
         r"binary_gradient must be True, False or one of \('position', 'example', 'channel', "
         r"'tensor'\)\. Received: binary_gradient='global'"),
        ({"data_format": "channels_first"}, "Received: data_format='channels_first'"),
        ({"groups": 2}, "Received: groups=2"),
    ],
)
def test_argument_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        xl.XnorConv2D(8, 3, **kwargs)


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        xl.XnorDense(4, None, True, "glorot_uniform", "zeros", None, None, None, None, None, "none")


def _small_model():
    inp = tf.keras.Input((12, 12, 3))
    h = tf.keras.layers.Conv2D(8, 3, padding="same")(inp)
    h = tf.keras.layers.BatchNormalization()(h)
    h = xl.XnorConv2D(16, 3, padding="same", use_bias=False)(h)
    h = tf.keras.layers.MaxPool2D()(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = xl.XnorConv2D(16, 3, strides=2, padding="same", use_bias=False, alpha="learned",
                      binary_gradient=True)(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = xl.BinaryWeightConv2D(16, 3, padding="valid", use_bias=False, dilation_rate=1)(h)
    h = tf.keras.layers.Flatten()(h)
    h = xl.XnorDense(16, input_scaling=True)(h)
    h = xl.BinaryWeightDense(10, alpha="none", weight_bits=3)(h)
    return tf.keras.Model(inp, h)


def test_model_fit_learns(rng):
    x = rng.normal(size=(256, 12, 12, 3)).astype(np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(np.int32)
    model = _small_model()
    model.compile(tf.keras.optimizers.Adam(1e-2),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_larq_summary_precision_columns(capsys):
    model = _small_model()
    lq.models.summary(model)
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        parts = line.strip("|").split()
        if parts:
            rows[parts[0]] = parts
    # Columns: name, input precision, output shape..., # 1-bit, # 3-bit, # 32-bit, ...
    assert rows["xnor_conv2d"][1] == "1"
    assert rows["xnor_dense"][1] == "1"
    assert rows["binary_weight_conv2d"][1] == "-"  # float inputs
    assert rows["xnor_conv2d"][-6] == str(3 * 3 * 8 * 16)  # 1-bit weights
    assert rows["xnor_conv2d_1"][-4] == "16"  # the learned α is float
    assert rows["binary_weight_dense"][-5] == str(16 * 10)  # 3-bit weights


# HDF5 is tested on purpose: users still load legacy .h5 files.
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
@pytest.mark.parametrize("fmt", ["model.keras", "model.h5", "saved_model"])
def test_round_trip_without_custom_object_scope(rng, tmp_path, fmt):
    model = _small_model()
    x = rng.normal(size=(4, 12, 12, 3)).astype(np.float32)
    before = model(x).numpy()
    path = str(tmp_path / fmt)
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), before, rtol=1e-6, atol=1e-6)
    if fmt != "saved_model":
        original = {l.name: l.get_config() for l in model.layers}
        for layer in loaded.layers:
            assert layer.get_config() == original[layer.name]
            assert type(layer) is type(model.get_layer(layer.name))


def _ops_and_tensors(flatbuffer):
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append((code.customCode.decode() if code.customCode else
                    max(code.builtinCode, code.deprecatedBuiltinCode), op))

    def constant(index):
        data = model.buffers[graph.tensors[index].buffer].data
        return None if data is None else np.frombuffer(bytes(data), np.float32)

    return ops, constant


@pytest.mark.parametrize("input_scaling", [False, True])
def test_lce_converts_to_bconv_with_alpha_fused(rng, input_scaling):
    inp = tf.keras.Input((10, 10, 4))
    first = xl.XnorConv2D(8, 3, padding="same", use_bias=False, input_scaling=input_scaling)
    second = xl.XnorConv2D(6, 3, strides=2, padding="valid", use_bias=False,
                           input_scaling=input_scaling)
    h = tf.keras.layers.Flatten()(second(first(inp)))
    model = tf.keras.Model(inp, h)
    ops, constant = _ops_and_tensors(lce.convert_keras_model(model))
    bconvs = [op for name, op in ops if name == "LceBconv2d"]
    assert len(bconvs) == 2
    for layer, op in zip([first, second], bconvs):
        # LceBconv2d inputs: data, packed filter, output multiplier, output bias.
        np.testing.assert_allclose(constant(op.inputs[2]),
                                   ref.alpha(layer.kernel.numpy()), rtol=1e-6)
    muls = [op for name, op in ops if name == 18]  # BuiltinOperator.MUL
    # α is fused; the only multiplies left are K of eq. 11, one per layer.
    assert len(muls) == (2 if input_scaling else 0)
    for op in muls:
        assert all(constant(i) is None for i in op.inputs)  # K is computed, not constant
