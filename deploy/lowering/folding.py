"""The pure NumPy algebra of folding: BatchNorm / ReLU / max-pool / sign into ±α·z + b.

A binary convolution's accumulator is α_c·z with z an integer. Between it and the
next binarization, a network applies per-channel affines (BatchNorm, a learned
scale, a bias), a ReLU and max-pools; `fold_sign_chain` replaces that chain by one
per-channel ``sign(maxpool(m·y + b))``, `integer_threshold` moves b half a step
between two integers so every runtime binarizes identically. Nothing here touches
TensorFlow: the ops are NumPy arrays, a max-pool is an opaque object.

Example:

>>> import numpy as np
>>> fold = fold_sign_chain([Relu(), Affine(np.array([2.0]), np.array([-1.0]))], channels=1)
>>> fold.m, fold.b       # sign(2·relu(y) - 1) = sign(2y - 1)
(array([2.], dtype=float32), array([-1.], dtype=float32))
>>> integer_threshold(fold.m, fold.b, np.array([1.0]))   # 2z - 1 is already midway
array([-1.], dtype=float32)
>>> fold_sign_chain([Affine(np.array([2.0]), np.array([-1.0])), Relu()], channels=1).m  # constant
array([0.], dtype=float32)
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Affine", "Relu", "MaxPool", "SignFold", "FoldError", "fold_sign_chain",
           "integer_threshold", "per_channel", "batch_norm_affine", "canonical_signs"]


@dataclasses.dataclass(frozen=True, eq=False)
class Affine:
    """A per-channel ``y ↦ m·y + b`` (``m``, ``b``: (channels,) arrays)."""

    m: np.ndarray
    b: np.ndarray


@dataclasses.dataclass(frozen=True)
class Relu:
    """``y ↦ max(y, 0)``."""


@dataclasses.dataclass(frozen=True, eq=False)
class MaxPool:
    """A max-pool (``pool``: whatever applies it; the algebra only moves it)."""

    pool: object = None


@dataclasses.dataclass(frozen=True, eq=False)
class SignFold:
    """``sign(chain(y)) = sign(pools(m·y + b))`` per channel; float32 ``m``, ``b``."""

    m: np.ndarray
    b: np.ndarray
    pools: tuple


class FoldError(ValueError):
    """A chain that cannot be folded into one per-channel affine (message says why)."""


def fold_sign_chain(chain, *, channels: int) -> SignFold:
    """Per-channel (m, b) with sign(chain(y)) = sign(m·y + b) for every y, and the
    max-pools to apply to m·y + b before the sign. Raises `FoldError` if there is none.

    ``chain``: `Affine`, `Relu`, `MaxPool` ops from the accumulator outwards, on
    ``channels`` channels (the affines' length). The chain must be A₂∘relu∘A₁ (or
    A₁) with per-channel affines. With u = A₁(y), A₂(v) = p·v + q:

    - p = 0: the sign is sign(q), a constant (m = 0, b = q);
    - p > 0 and q ≥ 0: p·relu(u) + q ≥ 0 always: the constant +1 (m = 0, b = 1);
    - p < 0 and q < 0: always negative: the constant -1 (m = 0, b = -1);
    - otherwise p·relu(u) + q ≥ 0 ⟺ p·u + q ≥ 0 (the threshold is on the positive
      side of the ReLU's kink), so m·y + b = A₂(A₁(y)).

    A max-pool may move past the ops before it if they are non-decreasing in that
    channel, and past the final sign if m ≥ 0 (max commutes with non-decreasing
    functions); constant channels commute trivially.
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1. Received: channels={channels}")
    a1 = d1 = a2 = d2 = None
    relu = False
    pools = []
    blocked = None  # channels where a pool cannot move before the ops preceding it
    for op in chain:
        if isinstance(op, Affine):
            if not relu:
                a1, d1 = (op.m, op.b) if a1 is None else (op.m * a1, op.m * d1 + op.b)
            else:
                a2, d2 = (op.m, op.b) if a2 is None else (op.m * a2, op.m * d2 + op.b)
        elif isinstance(op, Relu):
            if relu and a2 is not None:
                raise FoldError("two ReLUs with an affine op between them")
            relu = True
        elif isinstance(op, MaxPool):
            pools.append(op.pool)
            slopes = [s for s in (a1, a2) if s is not None]
            decreasing = np.zeros_like(slopes[0], dtype=bool) if slopes else None
            for s in slopes:
                decreasing |= s < 0
            if decreasing is not None:
                blocked = decreasing if blocked is None else blocked | decreasing
        else:
            raise TypeError(f"chain ops are Affine, Relu or MaxPool. Received: {op!r}")
    one, zero = np.ones(channels), np.zeros(channels)
    a1 = one if a1 is None else a1
    d1 = zero if d1 is None else d1
    if not relu:
        m, b = a1, d1
    else:
        p = one if a2 is None else a2
        q = zero if d2 is None else d2
        m, b = p * a1, p * d1 + q
        const_pos = (p > 0) & (q >= 0)
        const_neg = (p < 0) & (q < 0)
        zero_p = p == 0
        m = np.where(const_pos | const_neg | zero_p, 0.0, m)
        b = np.where(const_pos, 1.0, np.where(const_neg, -1.0, np.where(zero_p, q, b)))
    if pools:
        constant = m == 0
        bad = (m < 0) & ~constant
        if blocked is not None:
            bad |= blocked & ~constant
        if np.any(bad):
            raise FoldError(f"{int(np.sum(bad))} channel(s) have a decreasing BatchNorm (γ < 0) "
                            "or scale, so max-pooling cannot move past the sign")
    return SignFold(m=m.astype(np.float32), b=b.astype(np.float32), pools=tuple(pools))


def integer_threshold(m, b, alpha) -> np.ndarray:
    """``b`` moved half a step away from any tie: sign(m·α·z + b) is unchanged for every
    integer z, and m·α·z + b is never within float rounding of 0.

    The accumulator of a binary convolution is α·z with z an integer, so the sign
    flips between two consecutive integers; placing the threshold midway makes it
    robust to the order in which a runtime rounds m·α·z + b (LCE's optimized and
    reference kernels differ). An exact tie m·α·z + b = 0 keeps sign(0) = +1.
    Constant channels (m = 0) become exactly ±1.
    """
    m = np.asarray(m, np.float64)
    b = np.asarray(b, np.float64)
    alpha = np.asarray(alpha, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = -b / (m * alpha)  # the threshold on z
        up = -m * alpha * (np.ceil(ratio) - 0.5)  # m > 0: +1 iff z ≥ ceil(ratio)
        down = -m * alpha * (np.floor(ratio) + 0.5)  # m < 0: +1 iff z ≤ floor(ratio)
    constant = np.where(b >= 0, 1.0, -1.0)
    out = np.where(m > 0, up, np.where(m < 0, down, constant))
    return out.astype(np.float32)


def per_channel(param, channels):
    """``param`` as a (channels,) float64 vector if it is the same at every position
    (its last axis is the channel), else None."""
    param = np.asarray(param, np.float64)
    flat = param.reshape(-1, channels) if param.size % channels == 0 else None
    if flat is None or not np.all(flat == flat[0]):
        return None
    return flat[0]


def batch_norm_affine(*, mean, variance, epsilon, gamma=None, beta=None) -> Affine:
    """Inference-mode BatchNorm as `Affine`, in float64:
    BN(x) = γ·(x - μ)/√(σ² + ε) + β, so m = γ/√(σ² + ε), b = β - μ·m
    (``gamma``/``beta`` None: the layer has no scale/center)."""
    m = 1.0 / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    if gamma is not None:
        m = m * np.asarray(gamma, np.float64)
    b = -np.asarray(mean, np.float64) * m
    if beta is not None:
        b = b + np.asarray(beta, np.float64)
    return Affine(m=m, b=b)


def canonical_signs(signs: np.ndarray) -> np.ndarray:
    """``signs`` (axis 0 = output channels) with each channel flipped to start at +1.

    LCE may store a channel's filter negated (it moves a negative output multiplier
    into the weights), so filters are compared in this form.
    """
    flat = signs.reshape(signs.shape[0], -1)
    flip = np.where(flat[:, :1] < 0, -1.0, 1.0)
    return (flat * flip).reshape(signs.shape).astype(np.float32)
