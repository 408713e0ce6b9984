"""MX quantization: :func:`quantize_mx`, :func:`dequantize_mx` and :class:`MXTensor`.

The rules are NUMERICS.md chapter 2. Per block of ``block_size`` values along ``axis``:

1. any NaN or +-Inf -> scale code 0xFF, every element code 0;
2. else max|x| == 0 -> scale code 0, every element code 0;
3. else shared_exp = floor(log2(max|x|)) - emax(fmt), clamped to [-127, 127];
   scale code = shared_exp + 127; MXINT element = RNE(x * 2^(w-2) / 2^shared_exp) saturated to
   +-(2^(w-1)-1); MXFP element = x / 2^shared_exp cast with RNE and saturation.

All arithmetic is exact: the scaling is done in float64 (exact for every float32 input) and
floor(log2) comes from ``np.frexp``.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from mxdv.refmodel.formats import E8M0_BIAS, E8M0_NAN, check_block_size, get_format


@dataclass(frozen=True)
class MXTensor:
    """A block-scaled MX tensor: shared E8M0 scales plus element codes.

    ``scales``: uint8 E8M0 codes; the shape of the data with the ``axis`` dimension divided by
    ``block_size``. ``elements``: the shape of the data; int8 values for MXINT, uint8 raw bit
    codes for MXFP. ``fmt`` is a lowercase format name (:data:`~mxdv.refmodel.formats.FORMATS`),
    ``axis`` is normalized to a non-negative index. Element ``i`` along ``axis`` belongs to
    block ``i // block_size``.
    """

    scales: np.ndarray
    elements: np.ndarray
    fmt: str
    block_size: int
    axis: int

    def __post_init__(self) -> None:
        f = get_format(self.fmt)
        block = check_block_size(self.block_size)
        ndim = np.ndim(self.elements)
        ax = _check_axis(self.axis, ndim)
        expected = list(np.shape(self.elements))
        if expected[ax] % block:
            raise ValueError(f"elements: length {expected[ax]} along axis {ax} is not a multiple of "
                             f"block_size {block}")
        expected[ax] //= block
        if tuple(np.shape(self.scales)) != tuple(expected):
            raise ValueError(f"scales: shape {np.shape(self.scales)} does not match elements shape "
                             f"{np.shape(self.elements)} with axis {ax} / block_size {block} "
                             f"(expected {tuple(expected)})")
        object.__setattr__(self, "fmt", f.name)
        object.__setattr__(self, "block_size", block)
        object.__setattr__(self, "axis", ax)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.elements))

    @property
    def shared_exp(self) -> np.ndarray:
        """Unbiased shared exponents (int64): scale code - 127 (128 for the NaN code 0xFF)."""
        return np.asarray(self.scales).astype(np.int64) - E8M0_BIAS

    @property
    def format(self):
        return get_format(self.fmt)


def _check_input(x) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype not in (np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16)):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"x: must be a numpy float32 or ml_dtypes.bfloat16 array, got {got}")
    if x.ndim == 0:
        raise ValueError("x: must have at least one dimension")
    return x


def _check_axis(axis, ndim: int) -> int:
    if ndim == 0:
        raise ValueError("axis: a 0-dimensional array has no axis to block")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= int(axis) < ndim:
        raise ValueError(f"axis: {axis!r} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def _blocks(x: np.ndarray, axis: int, block: int) -> np.ndarray:
    """Move ``axis`` last and split it into [nblocks, block]."""
    moved = np.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    if n % block:
        raise ValueError(f"x: length {n} along axis {axis} is not a multiple of block_size {block} (no padding)")
    return moved.reshape(*moved.shape[:-1], n // block, block)


def _unblocks(b: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(b.reshape(*b.shape[:-2], b.shape[-2] * b.shape[-1]), -1, axis)


def quantize_mx(x, fmt: str = "mxint8", block_size: int = 32, axis: int = -1) -> MXTensor:
    """Quantize ``x`` (float32 or ml_dtypes.bfloat16 array) to MX blocks of ``block_size``
    consecutive values along ``axis`` (NUMERICS.md chapter 2).

    Raises ValueError naming ``x`` (dtype, or a length along ``axis`` that is not a multiple of
    ``block_size``: there is no padding), ``fmt``, ``block_size`` or ``axis``.
    """
    f = get_format(fmt)
    block = check_block_size(block_size)
    x = _check_input(x)
    ax = _check_axis(axis, x.ndim)
    with np.errstate(invalid="ignore"):  # signaling NaNs set the invalid flag when widened
        xb = _blocks(x.astype(np.float64), ax, block)
    special = ~np.isfinite(xb).all(axis=-1)
    amax = np.where(special, 0.0, np.abs(np.where(np.isfinite(xb), xb, 0.0)).max(axis=-1))
    zero = (amax == 0.0) & ~special
    _, e = np.frexp(np.where(amax > 0, amax, 1.0))  # amax = m * 2^e, m in [0.5, 1)
    shared = np.clip(e.astype(np.int64) - 1 - f.emax, -127, 127)
    shared = np.where(special | zero, 0, shared)
    scales = np.where(special, E8M0_NAN, np.where(zero, 0, shared + E8M0_BIAS)).astype(np.uint8)
    scaled = np.ldexp(np.where(np.isfinite(xb), xb, 0.0), (-shared)[..., None])  # exact
    dead = (special | zero)[..., None]
    if f.kind == "int":
        q = np.rint(np.ldexp(scaled, f.bits - 2))  # round half to even
        q = np.clip(q, -f.max_int, f.max_int)
        elements = np.where(dead, 0, q).astype(np.int8)
    else:
        fmax = f.max_value
        # saturate, then cast with RNE: the same as RNE with saturation, as fmax is a code
        cast = np.clip(scaled, -fmax, fmax).astype(f.dtype)
        codes = cast.view(np.uint8)
        elements = np.where(dead, 0, codes).astype(np.uint8)
    return MXTensor(scales=_move_scales(scales, ax), elements=_unblocks(elements, ax),
                    fmt=f.name, block_size=block, axis=ax)


def _move_scales(scales: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(scales, -1, axis)


def element_values(t: MXTensor) -> np.ndarray:
    """Element values before the shared scale, float64 (MXINT: code * 2^-(w-2))."""
    f = get_format(t.fmt)
    if f.kind == "int":
        return np.ldexp(t.elements.astype(np.float64), -(f.bits - 2))
    return np.asarray(t.elements, dtype=np.uint8).view(f.dtype).astype(np.float64)


def dequantize_mx(t: MXTensor) -> np.ndarray:
    """float32 values of the original shape; blocks with the NaN scale code give NaN."""
    vals = element_values(t)
    scales = np.repeat(np.asarray(t.scales), t.block_size, axis=t.axis)
    out = np.ldexp(vals, scales.astype(np.int64) - E8M0_BIAS)
    out = np.where(scales == E8M0_NAN, np.nan, out)
    return out.astype(np.float32)
