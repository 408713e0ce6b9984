"""How far a quantizer transaction is from hitting a bin (0 when it hits it).

Used by coverage-directed generators (``hypothesis``'s ``target()`` and near-miss elites). A
distance says how far the *design's behaviour* was from the bin's (binades of the shared
exponent, element units from saturation, lanes still non-zero), never how to generate a
transaction. Each function agrees with :func:`mxdv.coverage.quantizer.model.sample`: 0 exactly
when the bin is hit, positive otherwise.
"""
from __future__ import annotations

import numpy as np

from mxdv.coverage.quantizer.model import EXP_RANGES, values_of

FAR = 300.0  # a block whose scale is decided by a special rule has no shared exponent


def _block(txn: dict):
    codes = np.asarray(txn["values"], dtype=np.int64) & 0xFFFF
    return codes, values_of(codes), int(txn["elem_width"])


def _shared_exp(x: np.ndarray) -> int | None:
    """floor(log2 max|x|) of a finite non-zero block, else None."""
    if not np.isfinite(x).all():
        return None
    amax = float(np.abs(x).max())
    return None if amax == 0 else int(np.frexp(amax)[1]) - 1


def exp_distance(lo: float, hi: float):
    """Binades between the block's floor(log2 max|x|) and ``lo..hi``."""
    def distance(txn: dict) -> float:
        _, x, _ = _block(txn)
        e = _shared_exp(x)
        return FAR if e is None else float(max(lo - e, e - hi, 0))
    return distance


def special_distance(kind: str):
    """For NaN/+-Inf: the fewest exponent-field steps (plus mantissa and sign fixes) any lane is
    from that code; for ``zero``: how many lanes are not +-0."""
    def distance(txn: dict) -> float:
        codes, x, _ = _block(txn)
        nan = np.isnan(x).any()
        if kind == "zero":
            return float(np.count_nonzero(codes & 0x7FFF))
        if kind == "nan" and nan:
            return 0.0
        exp_field = (codes >> 7) & 0xFF
        mant = codes & 0x7F
        sign = codes >> 15
        steps = (255 - exp_field).astype(np.float64)
        if kind == "nan":
            steps += (mant == 0)
        else:
            steps += (mant != 0) + (sign != (1 if kind == "neg_inf" else 0))
        d = float(steps.min())
        return d + 1.0 if (nan and d == 0) else d  # a NaN decides the block first
    return distance


def _scaled(txn: dict, width: int):
    _, x, w = _block(txn)
    e = _shared_exp(x)
    if e is None:
        return None, w
    return np.ldexp(x, (width - 2) - max(e, -127)), w


def saturation_distance(width: int, negative: bool):
    """Element units the most extreme element is short of rounding past +-(2^(w-1)-1)."""
    limit = (1 << (width - 1)) - 1

    def distance(txn: dict) -> float:
        scaled, w = _scaled(txn, width)
        if scaled is None:
            return FAR
        extreme = float(-scaled.min() if negative else scaled.max())
        rounded = float(np.rint(-scaled.min() if negative else scaled.max()))
        short = 0.0 if rounded > limit else max(limit + 0.5 - extreme, 1e-3)
        return short + (0.0 if w == width else 1.0)
    return distance


def tie_distance(width: int, up: bool):
    """How far the element closest to an exact .5 tie is from one (0.25 for a tie that rounds
    the other way), plus 1 when the block uses the other element width."""
    def distance(txn: dict) -> float:
        scaled, w = _scaled(txn, width)
        if scaled is None:
            return FAR
        frac = np.abs(scaled - np.trunc(scaled))
        ties = frac == 0.5
        if ties.any():
            away = np.abs(np.rint(scaled[ties])) > np.abs(scaled[ties])
            d = 0.0 if (away.any() if up else (~away).any()) else 0.25
        else:
            d = float(np.abs(frac - 0.5).min())
            d = max(d, 1e-3)
        return d + (0.0 if w == width else 1.0)
    return distance


def distances() -> dict:
    """Bin name -> distance function, for the bins that declare one."""
    out = {"exp.clamped_low": exp_distance(-np.inf, -128), "exp.m127": exp_distance(-127, -127),
           "exp.m126": exp_distance(-126, -126), "exp.p127": exp_distance(127, 127)}
    for lo, hi in EXP_RANGES:
        out[f"exp.{lo}_{hi}".replace("-", "m")] = exp_distance(lo, hi)
    for kind in ("nan", "pos_inf", "neg_inf", "zero"):
        out[f"special.{kind}"] = special_distance(kind)
    for w in (8, 4):
        out[f"sat{w}.pos"] = saturation_distance(w, False)
        out[f"sat{w}.neg"] = saturation_distance(w, True)
        out[f"tie{w}.up"] = tie_distance(w, True)
        out[f"tie{w}.down"] = tie_distance(w, False)
    return out
