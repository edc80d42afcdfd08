import numpy as np
import pytest
import tensorflow as tf

from xnor_keras import layers as xl
from xnor_keras.blocks import binary_block
from tests import reference as ref


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers[1:]]


def test_bacp_order_and_output(rng):
    x = tf.keras.Input((8, 8, 4))
    conv = xl.XnorConv2D(6, 3, padding="same", use_bias=False)
    y = binary_block(x, conv, order="bacp", pool=tf.keras.layers.MaxPool2D(), relu=True)
    model = tf.keras.Model(x, y)
    assert _layer_types(model) == ["BatchNormalization", "XnorConv2D", "ReLU", "MaxPooling2D"]
    data = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    # Inference-mode BN with fresh statistics is x / sqrt(1 + eps).
    normalized = data / np.sqrt(1.0 + model.layers[1].epsilon)
    conv_out = np.maximum(ref.xnor_conv(normalized, conv.kernel.numpy(), padding="same"), 0)
    pooled = conv_out.reshape(2, 4, 2, 4, 2, 6).max(axis=(2, 4))
    np.testing.assert_allclose(model(data, training=False).numpy(), pooled, rtol=1e-5, atol=1e-5)


def test_cbap_pools_binary_values(rng):
    x = tf.keras.Input((8, 8, 4))
    y = binary_block(x, xl.XnorConv2D(6, 3), order="cbap", pool=tf.keras.layers.MaxPool2D())
    model = tf.keras.Model(x, y)
    assert _layer_types(model) == ["XnorConv2D", "BatchNormalization", "BinaryInput",
                                   "MaxPooling2D"]
    out = model(rng.normal(size=(2, 8, 8, 4)).astype(np.float32), training=False).numpy()
    assert set(np.unique(out)) <= {-1.0, 1.0}


def test_cbap_relu_is_the_standard_float_block():
    x = tf.keras.Input((8,))
    model = tf.keras.Model(x, binary_block(x, tf.keras.layers.Dense(4), order="cbap",
                                           activation="relu", name="fc"))
    assert _layer_types(model) == ["Dense", "BatchNormalization", "ReLU"]
    assert model.get_layer("fc_bn") is model.layers[2]


@pytest.mark.parametrize("kwargs, message", [
    ({"order": "abcp"}, "Received: order='abcp'"),
    ({"activation": "tanh"}, "Received: activation='tanh'"),
    ({"order": "cbap", "relu": True}, "Received: relu=True, order='cbap'"),
])
def test_block_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        binary_block(tf.keras.Input((8, 8, 4)), xl.XnorConv2D(6, 3), **kwargs)
