"""NumPy reference implementations written from the paper's equations (§3.1-3.2).

They are deliberately independent of xnor_keras: direct loops over sub-tensors, no
box filters, no TensorFlow.
"""

import math

import numpy as np


def sign(x):
    """sign with sign(0) = +1 (eq. 4: B_i = +1 if W_i >= 0)."""
    return np.where(x >= 0, 1.0, -1.0)


def alpha(w):
    """Eq. 6: α = ||W||_1 / n for each output filter (last axis)."""
    n = int(np.prod(w.shape[:-1]))
    return np.abs(w).reshape(n, w.shape[-1]).sum(axis=0) / n


def same_padding(size, k, stride, dilation):
    """TensorFlow's 'same' padding (before, after) for one spatial axis."""
    effective = (k - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _windows(x, kh, kw, stride, padding, dilation):
    """Yields (i, j, sub-tensor) over output positions of a zero-padded NHWC x."""
    n, h, w, c = x.shape
    if padding == "same":
        ph, pw = same_padding(h, kh, stride, dilation), same_padding(w, kw, stride, dilation)
    else:
        ph = pw = (0, 0)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    eff_h, eff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    out_h = (xp.shape[1] - eff_h) // stride + 1
    out_w = (xp.shape[2] - eff_w) // stride + 1
    for i in range(out_h):
        for j in range(out_w):
            rows = i * stride + np.arange(kh) * dilation
            cols = j * stride + np.arange(kw) * dilation
            yield i, j, out_h, out_w, xp[:, rows][:, :, cols]


def conv(x, w, stride=1, padding="valid", dilation=1):
    """Plain convolution (cross-correlation), zero padding; x NHWC, w (kh, kw, c, f)."""
    kh, kw, _, f = w.shape
    out = None
    for i, j, oh, ow, sub in _windows(x, kh, kw, stride, padding, dilation):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, f))
        out[:, i, j, :] = np.einsum("nabc,abcf->nf", sub, w)
    return out


def bwn_conv(x, w, **conv_args):
    """Eq. 1: I * W ≈ (I ⊕ B)·α with B = sign(W), α from eq. 6."""
    return conv(x, sign(w), **conv_args) * alpha(w)


def xnor_conv(x, w, stride=1, padding="valid", dilation=1, input_scaling=True):
    """Eq. 11: (sign(I) ⊛ sign(W)) ⊙ K·α.

    For every sub-tensor X of I (zero padded outside the input, where padding adds
    nothing to the binary dot product either) β = ||X||_1 / n (eq. 10); K collects
    these β over output positions.
    """
    kh, kw, _, f = w.shape
    sx, sw, a = sign(x), sign(w), alpha(w)
    # Binarize first, then zero-pad: padded positions add 0 to the binary dot product.
    binary_windows = _windows(sx, kh, kw, stride, padding, dilation)
    abs_windows = _windows(np.abs(x), kh, kw, stride, padding, dilation)
    out = None
    for (i, j, oh, ow, sub), (_, _, _, _, abs_sub) in zip(binary_windows, abs_windows):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, f))
        dot = np.einsum("nabc,abcf->nf", sub, sw)
        beta = abs_sub.mean(axis=(1, 2, 3))[:, None] if input_scaling else 1.0
        out[:, i, j, :] = dot * beta * a
    return out


def xnor_dense(x, w, input_scaling=True):
    """Eq. 10: X^T W ≈ β·α·(sign(X)^T sign(W)), β = ||X||_1 / n per sample."""
    beta = np.abs(x).mean(axis=-1, keepdims=True) if input_scaling else 1.0
    return (sign(x) @ sign(w)) * beta * alpha(w)


def q_k(x, k):
    """The k-bit quantizer: 2·(round((2^k−1)·(x+1)/2)/(2^k−1) − 1/2), x clipped to [-1, 1].

    np.round rounds half to even, like the paper's round in IEEE arithmetic.
    """
    levels = 2**k - 1
    x = np.clip(x, -1.0, 1.0)
    return 2.0 * (np.round(levels * (x + 1.0) / 2.0) / levels - 0.5)


def binary_gradient(g, mode):
    """§3.2 "Binary Gradient": each sub-tensor S of g becomes max_{i∈S}|g_i|·sign(g_S).

    sign(0) = 0 here (a zero gradient stays zero). S, for g of shape (N, ..., C): one
    (example, position) over the channels ("position"), one example ("example"), one
    channel ("channel") or all of g ("tensor"). Written as a loop over the sub-tensors.
    """
    g = np.asarray(g, np.float64)
    out = np.zeros_like(g)
    if mode == "tensor":
        groups = [np.ones(g.shape, bool)]
    elif mode == "example":
        groups = [np.arange(g.shape[0]).reshape((-1,) + (1,) * (g.ndim - 1)) == n
                  for n in range(g.shape[0])]
    elif mode == "channel":
        groups = [np.arange(g.shape[-1]) == c for c in range(g.shape[-1])]
    elif mode == "position":
        groups = []
        for index in np.ndindex(*g.shape[:-1]):
            mask = np.zeros(g.shape, bool)
            mask[index] = True
            groups.append(mask)
    else:
        raise ValueError(mode)
    for mask in groups:
        mask = np.broadcast_to(mask, g.shape)
        out[mask] = np.abs(g[mask]).max() * np.sign(g[mask])
    return out


def conv_backward(x, w, g):
    """The gradients (∂C/∂x, ∂C/∂w) of a stride-1 'valid' `conv` given ∂C/∂out = g."""
    kh, kw, _, _ = w.shape
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for i, j, _, _, sub in _windows(x, kh, kw, 1, "valid", 1):
        dw += np.einsum("nabc,nf->abcf", sub, g[:, i, j])
        dx[:, i:i + kh, j:j + kw] += np.einsum("nf,abcf->nabc", g[:, i, j], w)
    return dx, dw
