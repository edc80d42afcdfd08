"""The paper's architectures (§4.2) and the offline default, each for any `Policy`.

Every builder takes ``(policy, input_shape, num_classes)`` and returns a
`tf.keras.Model` producing logits. First and last layers are full precision.
"""

import tensorflow as tf

from xnor_keras.models.policy import classifier

__all__ = ["alexnet", "resnet18", "googlenet", "cifar_net", "fashion_net"]

L = tf.keras.layers


def alexnet(policy, input_shape=(224, 224, 3), num_classes=1000):
    """AlexNet with BatchNorm and no LRN (Table 1; 61 M parameters at 224², 1000 classes).

    The single-tower 64-192-384-256-256 variant that the paper's implementation
    (footnote 3) follows, with fc6/fc7 as 4096-unit fully-connected layers.
    """
    x = inputs = tf.keras.Input(input_shape)
    x = L.ZeroPadding2D(2, name="conv1_pad")(x)
    x = policy.stem(x, L.Conv2D(64, 11, strides=4, use_bias=False, name="conv1"),
                    pool=L.MaxPool2D(3, 2, name="pool1"), name="conv1")
    x = policy.block(x, policy.conv(192, 5, name="conv2"),
                     pool=L.MaxPool2D(3, 2, name="pool2"), relu=True, name="conv2")
    x = policy.block(x, policy.conv(384, 3, name="conv3"), relu=True, name="conv3")
    x = policy.block(x, policy.conv(256, 3, name="conv4"), relu=True, name="conv4")
    x = policy.block(x, policy.conv(256, 3, name="conv5"),
                     pool=L.MaxPool2D(3, 2, name="pool5"), relu=True, name="conv5")
    x = L.Flatten(name="flatten")(x)
    x = policy.block(x, policy.dense(4096, name="fc6"), relu=True, name="fc6")
    x = policy.block(x, policy.dense(4096, name="fc7"), relu=True, name="fc7")
    return tf.keras.Model(inputs, classifier(x, num_classes), name=f"alexnet_{policy.precision}")


def _basic_block(policy, x, filters, strides, name):
    """ResNet basic block with a type-B shortcut (1×1 projection where shapes change).

    The projection is a full-precision 1×1 convolution + BatchNorm (0.4 M of ResNet-18's
    11.7 M parameters), as in most binary ResNets.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = L.Conv2D(filters, 1, strides=strides, use_bias=False,
                            name=f"{name}_proj")(x)
        shortcut = L.BatchNormalization(momentum=0.9, epsilon=1e-4,
                                        name=f"{name}_proj_bn")(shortcut)
    y = policy.block(x, policy.conv(filters, 3, strides=strides, name=f"{name}_conv1"),
                     name=f"{name}_1")
    if policy.block_order == "bacp":
        y = policy.block(y, policy.conv(filters, 3, name=f"{name}_conv2"), name=f"{name}_2")
        return L.Add(name=f"{name}_add")([y, shortcut])
    # C-B-A-P: the second activation comes after the residual sum.
    y = policy.conv(filters, 3, name=f"{name}_conv2")(y)
    y = L.BatchNormalization(momentum=0.9, epsilon=1e-4, name=f"{name}_2_bn")(y)
    y = L.Add(name=f"{name}_add")([y, shortcut])
    return policy.activation(y, name=f"{name}_act")


def resnet18(policy, input_shape=(224, 224, 3), num_classes=1000):
    """ResNet-18 with type-B shortcuts (Table 2; 11.7 M parameters)."""
    x = inputs = tf.keras.Input(input_shape)
    x = policy.stem(x, L.Conv2D(64, 7, strides=2, padding="same", use_bias=False,
                                name="conv1"),
                    pool=L.MaxPool2D(3, 2, padding="same", name="pool1"), name="conv1")
    for stage, filters in enumerate((64, 128, 256, 512), start=2):
        for index in range(2):
            strides = 2 if stage > 2 and index == 0 else 1
            x = _basic_block(policy, x, filters, strides, name=f"res{stage}{'ab'[index]}")
    if policy.block_order == "bacp":
        x = L.BatchNormalization(momentum=0.9, epsilon=1e-4, name="post_bn")(x)
        x = L.ReLU(name="post_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return tf.keras.Model(inputs, classifier(x, num_classes), name=f"resnet18_{policy.precision}")


# Darknet "extraction" (footnote 5): (filters, kernel) per conv, "M" = 2×2 max-pool.
_EXTRACTION = [
    (192, 3), "M",
    (128, 1), (256, 3), (256, 1), (512, 3), "M",
    (256, 1), (512, 3), (256, 1), (512, 3), (256, 1), (512, 3), (256, 1), (512, 3),
    (512, 1), (1024, 3), "M",
    (512, 1), (1024, 3), (512, 1), (1024, 3),
]


def googlenet(policy, input_shape=(224, 224, 3), num_classes=1000):
    """The GoogLeNet variant of Table 2: Darknet's "extraction" network.

    21 convolutions, filter sizes alternating 1×1 / 3×3, no branching: a
    full-precision 7×7 stem, 19 binarizable convolutions, and a full-precision 1×1
    classifier convolution followed by global average pooling.
    """
    x = inputs = tf.keras.Input(input_shape)
    x = policy.stem(x, L.Conv2D(64, 7, strides=2, padding="same", use_bias=False,
                                name="conv1"),
                    pool=L.MaxPool2D(2, name="pool1"), name="conv1")
    index = 2
    for spec in _EXTRACTION:
        if spec == "M":
            x = L.MaxPool2D(2, name=f"pool{index - 1}")(x)
            continue
        filters, kernel = spec
        x = policy.block(x, policy.conv(filters, kernel, name=f"conv{index}"),
                         name=f"conv{index}")
        index += 1
    x = L.BatchNormalization(momentum=0.9, epsilon=1e-4, name="logits_bn")(x)
    x = L.Conv2D(num_classes, 1, name=f"conv{index}")(x)
    outputs = L.GlobalAveragePooling2D(name="logits")(x)
    return tf.keras.Model(inputs, outputs, name=f"googlenet_{policy.precision}")


def cifar_net(policy, input_shape=(32, 32, 3), num_classes=10):
    """The CIFAR-10 network of BinaryConnect/BinaryNet (the paper's CIFAR-10 results):
    (2×128C3)-MP2-(2×256C3)-MP2-(2×512C3)-MP2-(2×1024FC)-10.
    """
    x = inputs = tf.keras.Input(input_shape)
    x = policy.stem(x, L.Conv2D(128, 3, padding="same", use_bias=False, name="conv1"),
                    name="conv1")
    plan = [(128, True), (256, False), (256, True), (512, False), (512, True)]
    for index, (filters, pool) in enumerate(plan, start=2):
        x = policy.block(x, policy.conv(filters, 3, name=f"conv{index}"),
                         pool=L.MaxPool2D(2, name=f"pool{index}") if pool else None,
                         name=f"conv{index}")
    x = L.Flatten(name="flatten")(x)
    x = policy.block(x, policy.dense(1024, name="fc1"), name="fc1")
    x = policy.block(x, policy.dense(1024, name="fc2"), name="fc2")
    return tf.keras.Model(inputs, classifier(x, num_classes), name=f"cifar_{policy.precision}")


def fashion_net(policy, input_shape=(28, 28, 1), num_classes=10):
    """The offline default: a small network for 28×28 grayscale images.

    A full-precision 3×3 stem with 2×2 max-pooling, three binarizable 3×3 blocks
    (64 filters at 14×14, then 128 and 128 at 7×7, each size ending in 2×2
    max-pooling), a binarizable 256-unit
    fully-connected block and a full-precision classifier: 15 M MACs, sized so that a
    2-core CPU trains an epoch of Fashion-MNIST in about 3 minutes.
    """
    x = inputs = tf.keras.Input(input_shape)
    x = policy.stem(x, L.Conv2D(32, 3, padding="same", use_bias=False, name="conv1"),
                    pool=L.MaxPool2D(2, name="pool1"), name="conv1")
    x = policy.block(x, policy.conv(64, 3, name="conv2"),
                     pool=L.MaxPool2D(2, name="pool2"), name="conv2")
    x = policy.block(x, policy.conv(128, 3, name="conv3"), name="conv3")
    x = policy.block(x, policy.conv(128, 3, name="conv4"),
                     pool=L.MaxPool2D(2, name="pool4"), name="conv4")
    x = L.Flatten(name="flatten")(x)
    x = policy.block(x, policy.dense(256, name="fc5"), name="fc5")
    return tf.keras.Model(inputs, classifier(x, num_classes), name=f"fashion_{policy.precision}")
