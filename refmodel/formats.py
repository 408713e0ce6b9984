"""MX element formats, the E8M0 shared scale, and BF16/FP32 code conversions.

Element formats (OCP Microscaling v1.0):

* MXINT8 / MXINT6 / MXINT4: two's complement integer codes with an implicit scale
  2^-(w-2) (so an MXINT8 code 64 is 1.0); stored as int8 values.
* MXFP8 E4M3 / E5M2, MXFP6 E3M2 / E2M3, MXFP4 E2M1: minifloat codes, stored as raw
  uint8 bit codes; values via ml_dtypes.
* E8M0 scale: uint8 code c means 2^(c-127); 0xFF is NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

BLOCK_SIZES = (8, 16, 32)
E8M0_BIAS = 127
E8M0_NAN = 0xFF


@dataclass(frozen=True)
class ElementFormat:
    """One MX element format.

    ``emax`` is the exponent of the largest power of two the element can hold (0 for MXINT:
    codes cover (-2, 2)); the shared exponent of a block is floor(log2(max|x|)) - emax.
    ``dtype`` is the ml_dtypes type whose bit codes are the MXFP element codes (None for MXINT).
    """

    name: str
    kind: str  # "int" or "fp"
    bits: int
    emax: int
    dtype: object = None

    @property
    def max_int(self) -> int:
        """Largest MXINT code magnitude, 2^(w-1) - 1 (codes are symmetric)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def max_value(self) -> float:
        """Largest finite element value (before the shared scale)."""
        if self.kind == "int":
            return self.max_int * 2.0 ** -(self.bits - 2)
        return float(ml_dtypes.finfo(self.dtype).max)

    @property
    def exp_bits(self) -> int:
        """Exponent field width (0 for MXINT)."""
        return 0 if self.kind == "int" else int(ml_dtypes.finfo(self.dtype).nexp)

    @property
    def man_bits(self) -> int:
        """Mantissa field width (MXINT: the w-2 fraction bits of the two's complement code)."""
        return self.bits - 2 if self.kind == "int" else int(ml_dtypes.finfo(self.dtype).nmant)

    @property
    def exp_bias(self) -> int:
        """Exponent bias of an MXFP format (0 for MXINT)."""
        return 0 if self.kind == "int" else 1 - int(ml_dtypes.finfo(self.dtype).minexp)


FORMATS: dict[str, ElementFormat] = {
    "mxint8": ElementFormat("mxint8", "int", 8, 0),
    "mxint6": ElementFormat("mxint6", "int", 6, 0),
    "mxint4": ElementFormat("mxint4", "int", 4, 0),
    "mxfp8_e4m3": ElementFormat("mxfp8_e4m3", "fp", 8, 8, ml_dtypes.float8_e4m3fn),
    "mxfp8_e5m2": ElementFormat("mxfp8_e5m2", "fp", 8, 15, ml_dtypes.float8_e5m2),
    "mxfp6_e3m2": ElementFormat("mxfp6_e3m2", "fp", 6, 4, ml_dtypes.float6_e3m2fn),
    "mxfp6_e2m3": ElementFormat("mxfp6_e2m3", "fp", 6, 2, ml_dtypes.float6_e2m3fn),
    "mxfp4_e2m1": ElementFormat("mxfp4_e2m1", "fp", 4, 2, ml_dtypes.float4_e2m1fn),
}


def get_format(fmt: str) -> ElementFormat:
    """The :class:`ElementFormat` named ``fmt`` (case-insensitive); ValueError naming ``fmt``."""
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ValueError(f"fmt: unknown MX element format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt.lower()]


def check_block_size(block_size) -> int:
    """``block_size`` as an int if it is 8, 16 or 32; ValueError naming ``block_size``."""
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or int(block_size) not in BLOCK_SIZES:
        raise ValueError(f"block_size: must be one of {BLOCK_SIZES}, got {block_size!r}")
    return int(block_size)


def e8m0_to_exp(code) -> np.ndarray:
    """Unbiased exponent of E8M0 codes (int64); the NaN code 0xFF maps to 128."""
    return np.asarray(code, dtype=np.int64) - E8M0_BIAS


def e8m0_to_float(code) -> np.ndarray:
    """2^(code-127) as float64, NaN for 0xFF (via ml_dtypes float8_e8m0fnu)."""
    return np.asarray(code, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)


def bf16_bits_to_float32(bits) -> np.ndarray:
    """BF16 codes (uint16) -> float32 values, exact: the code becomes the top 16 bits (NaN
    payloads included, no floating-point operation, so no warning for signaling NaNs)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(x) -> np.ndarray:
    """float32 values -> BF16 codes, round-half-to-even (ml_dtypes cast)."""
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def float32_to_bits(x) -> np.ndarray:
    """float32 values -> their uint32 bit codes."""
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def bits_to_float32(bits) -> np.ndarray:
    """uint32 bit codes -> float32 values."""
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def fp_element_values(codes, fmt: str) -> np.ndarray:
    """Raw MXFP element codes (uint8) -> float64 values."""
    f = get_format(fmt)
    if f.kind != "fp":
        raise ValueError(f"fmt: {fmt} is not an MXFP format")
    return np.asarray(codes, dtype=np.uint8).view(f.dtype).astype(np.float64)
