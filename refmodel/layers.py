"""Element-wise and normalization layers of the inference stack, in a stated precision.

Every function takes ``dtype``: ``np.float32`` in the quantized (bit-exact) path, ``np.float64``
in the golden path.  Unless a docstring says otherwise, every arithmetic operation is ONE
IEEE 754 operation in ``dtype`` with round-to-nearest-even (numpy's ``+ - * /`` and ``sqrt`` are
correctly rounded), evaluated in the order written.  No fused multiply-add is used.

Reductions over the feature axis (the norms' sums) use :func:`tree_sum`, a fixed adjacent-pair
adder tree, so the result does not depend on numpy's internal summation order.

Transcendental functions (``exp``, ``tanh``, ``erf``, ``cos``, ``sin``, ``pow``) are evaluated in
float64 and the final float64 result is rounded ONCE to ``dtype``.  numpy's float64 ``exp``,
``tanh``, ``cos``, ``sin`` are accurate to about 1 ulp of float64 (not correctly rounded), so a
float32 result can differ between numpy builds only when the exact value lies within ~2^-29
relative of a float32 rounding boundary.  ``erf`` is :func:`erf` below (float64, about 1e-15 abs).

NUMERICS.md chapter "The rest of the stack" (``refmodel/numerics/50_stack.md``) is the contract
this module implements.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "apply_rope",
    "embedding_lookup",
    "erf",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "residual_add",
    "rms_norm",
    "rope_cos_sin",
    "rotate_half",
    "silu",
    "swiglu",
    "tree_sum",
]


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _as(x, dtype) -> np.ndarray:
    """``x`` converted to ``dtype`` (float64 -> float32 is RNE; float32 -> float64 is exact)."""
    return np.asarray(x, dtype=_dtype(dtype))


def tree_sum(x: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Sum over the last axis with a fixed adjacent-pair adder tree, every add RNE in ``dtype``.

    The length n is zero-padded with +0.0 to the next power of two P; then, level by level,
    ``s[i] = s[2i] + s[2i+1]`` until one value is left (log2(P) levels).  For n = 4:
    ``(x0 + x1) + (x2 + x3)``.  Returns an array of shape ``x.shape[:-1]``.
    """
    s = _as(x, dtype)
    n = s.shape[-1]
    if n == 0:
        raise ValueError("x must have a non-empty last axis")
    padded = 1 << (n - 1).bit_length()
    if padded != n:
        s = np.concatenate([s, np.zeros((*s.shape[:-1], padded - n), dtype=s.dtype)], axis=-1)
    while s.shape[-1] > 1:
        s = s[..., 0::2] + s[..., 1::2]
    return s[..., 0]


def _rsqrt(t: np.ndarray) -> np.ndarray:
    """``1 / sqrt(t)``: two correctly rounded operations (sqrt, then division) in t's dtype."""
    one = t.dtype.type(1.0)
    return one / np.sqrt(t)


def rms_norm(x, weight, eps: float, dtype=np.float32) -> np.ndarray:
    """LLaMA RMSNorm over the last axis (d features), in ``dtype``:

    ``ms = tree_sum(x * x) / d``; ``r = 1 / sqrt(ms + eps)``; ``y = (x * r) * weight``;
    ``eps``, ``d`` and ``weight`` are first converted to ``dtype``.
    """
    dt = _dtype(dtype)
    x = _as(x, dt)
    d = x.shape[-1]
    ms = tree_sum(x * x, dt) / dt.type(d)
    r = _rsqrt(ms + dt.type(eps))
    return (x * r[..., None]) * _as(weight, dt)


def layer_norm(x, weight, bias, eps: float, dtype=np.float32) -> np.ndarray:
    """BERT LayerNorm (biased variance) over the last axis, in ``dtype``:

    ``mu = tree_sum(x) / d``; ``c = x - mu``; ``var = tree_sum(c * c) / d``;
    ``r = 1 / sqrt(var + eps)``; ``y = (c * r) * weight + bias``.
    """
    dt = _dtype(dtype)
    x = _as(x, dt)
    d = dt.type(x.shape[-1])
    mu = tree_sum(x, dt) / d
    c = x - mu[..., None]
    var = tree_sum(c * c, dt) / d
    r = _rsqrt(var + dt.type(eps))
    return (c * r[..., None]) * _as(weight, dt) + _as(bias, dt)


def silu(x, dtype=np.float32) -> np.ndarray:
    """``x / (1 + exp(-x))`` evaluated in float64 from ``x``, rounded once to ``dtype``."""
    x64 = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = x64 / (1.0 + np.exp(-x64))  # exp overflow -> inf -> -0.0, the correct limit
    return y.astype(_dtype(dtype))


def swiglu(gate, up, dtype=np.float32) -> np.ndarray:
    """``silu(gate) * up``: :func:`silu` rounded to ``dtype``, then one multiply in ``dtype``."""
    return silu(gate, dtype) * _as(up, dtype)


# erf in float64: Maclaurin series below 2.5, Laplace's continued fraction for erfc above.
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ERF_SERIES_TERMS = 64
_ERFC_FRACTION_DEPTH = 80
_SWITCH = 2.5  # series below, continued fraction above


def erf(x) -> np.ndarray:
    """The error function in float64, vectorized (numpy has none; scipy is not a dependency).

    ``|x| < 2.5``: ``2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))`` (64 terms);
    ``2.5 <= |x| < 6``: ``1 - exp(-x^2) / (sqrt(pi) * K(x))`` with Laplace's continued fraction
    ``K = x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))`` (80 levels); ``|x| >= 6``: +-1 (exact in
    float64).  Odd; NaN in gives NaN out.  Absolute error below 1e-14 (tested against math.erf).
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    small = np.minimum(a, _SWITCH)
    a2 = small * small
    term = small.copy()
    total = small.copy()
    for n in range(1, _ERF_SERIES_TERMS):
        term = -term * a2 / n
        total = total + term / (2 * n + 1)
    series = _TWO_OVER_SQRT_PI * total
    big = np.clip(a, _SWITCH, 6.0)
    frac = big.copy()
    for n in range(_ERFC_FRACTION_DEPTH, 0, -1):
        frac = big + (0.5 * n) / frac
    tail = 1.0 - np.exp(-big * big) / (math.sqrt(math.pi) * frac)
    result = np.where(a < _SWITCH, series, np.where(a < 6.0, tail, 1.0))
    return np.where(np.isnan(x), x, np.copysign(result, x))


def gelu(x, dtype=np.float32) -> np.ndarray:
    """Exact (erf) GELU, HF ``hidden_act="gelu"``: ``0.5 * x * (1 + erf(x / sqrt(2)))`` in
    float64 from ``x``, rounded once to ``dtype``."""
    x64 = np.asarray(x, dtype=np.float64)
    return (0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)))).astype(_dtype(dtype))


def gelu_tanh(x, dtype=np.float32) -> np.ndarray:
    """tanh GELU, HF ``"gelu_new"`` / ``"gelu_pytorch_tanh"``:
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` in float64, rounded once."""
    x64 = np.asarray(x, dtype=np.float64)
    inner = math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 * x64 * x64)
    return (0.5 * x64 * (1.0 + np.tanh(inner))).astype(_dtype(dtype))


def rope_cos_sin(positions, head_dim: int, theta: float, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """RoPE tables ``cos, sin`` of shape ``[len(positions), head_dim]`` (HF LLaMA layout).

    In float64: ``inv_freq[i] = theta ** (-(2i) / head_dim)`` for ``i < head_dim / 2``,
    ``angle[p, i] = p * inv_freq[i]``, duplicated: ``[angle, angle]`` along the last axis;
    ``cos`` and ``sin`` of it are rounded once to ``dtype``.  (HF computes ``inv_freq`` and the
    angles in float32; this model keeps them in float64, which is more accurate at large p.)
    """
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int, got {head_dim!r}")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    inv_freq = float(theta) ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angle = pos[:, None] * inv_freq[None, :]
    angle = np.concatenate([angle, angle], axis=-1)
    dt = _dtype(dtype)
    return np.cos(angle).astype(dt), np.sin(angle).astype(dt)


def rotate_half(x: np.ndarray) -> np.ndarray:
    """HF LLaMA ``rotate_half``: ``[x1, x2] -> [-x2, x1]`` with the halves of the last axis."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x, cos, sin, dtype=np.float32) -> np.ndarray:
    """``(x * cos) + (rotate_half(x) * sin)`` in ``dtype``: two multiplies, then one add.

    ``x`` is ``[..., L, head_dim]``; ``cos``/``sin`` are ``[L, head_dim]`` from
    :func:`rope_cos_sin` for the absolute positions of the L rows.
    """
    x = _as(x, dtype)
    return x * _as(cos, dtype) + rotate_half(x) * _as(sin, dtype)


def embedding_lookup(table, ids, dtype=np.float32, name: str = "input_ids") -> np.ndarray:
    """Rows ``table[ids]`` converted to ``dtype`` (a gather: exact for float32/float64 tables)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {ids.dtype}")
    rows = np.shape(table)[0]
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        raise ValueError(f"{name} must lie in [0, {rows}), got values in [{ids.min()}, {ids.max()}]")
    return _as(np.asarray(table)[ids], dtype)


def residual_add(x, y, dtype=np.float32) -> np.ndarray:
    """``x + y``: one add in ``dtype``."""
    return _as(x, dtype) + _as(y, dtype)
