"""Vectorised payload packing for the columnar path: a port's fields, one array per field over
many beats, to and from the harness's payload words (``layout.PortLayout``: the first field in
the lowest bits, little-endian 32-bit words), with no per-beat Python.

A field value is given either as integers (``[beats]``, fields up to 63 bits; two's complement
allowed, it is masked to the field's width) or as little-endian 32-bit words
(``[beats, ceil(width / 32)]``, any width). :func:`unpack` returns words;
:func:`field_int` turns the words of a field up to 63 bits wide into integers.
"""
from __future__ import annotations

import numpy as np

from mxdv.env.bulk.layout import PortLayout, words_for

_MASK32 = np.uint64(0xFFFFFFFF)
#: Lane widths packed by reinterpreting bytes (little-endian): (unsigned, signed) lane types.
_BYTE_LANES = {8: ("<u1", "<i1"), 16: ("<u2", "<i2")}


def _as_words(value: np.ndarray, width: int, beats: int) -> np.ndarray:
    """[beats, words_for(width)] uint64, each < 2^32, masked to ``width`` bits."""
    nw = words_for(width)
    v = np.asarray(value)
    if v.ndim == 1:
        if width > 63:
            raise ValueError(f"a {width}-bit field must be given as [beats, {nw}] words, not integers")
        x = (v.reshape(beats).astype(np.int64) & ((1 << width) - 1)).astype(np.uint64)
        return np.stack([(x >> np.uint64(32 * k)) & _MASK32 for k in range(nw)], axis=1)
    if v.shape != (beats, nw):
        raise ValueError(f"a {width}-bit field needs [beats, {nw}] words, got shape {v.shape}")
    w = v.astype(np.uint64) & _MASK32
    top = width - 32 * (nw - 1)
    if top < 32:
        w[:, -1] &= np.uint64((1 << top) - 1)
    return w


def pack(pl: PortLayout, fields: dict[str, np.ndarray], beats: int) -> np.ndarray:
    """[beats, pl.words] uint32 payloads of the port's fields."""
    out = np.zeros((beats, pl.words + 1), np.uint64)
    for name, off, width in pl.offsets():
        if name not in fields:
            raise ValueError(f"port {pl.port.prefix}: no value for field `{name}`")
        v = _as_words(fields[name], width, beats)
        j, s = divmod(off, 32)
        for k in range(v.shape[1]):
            out[:, j + k] |= (v[:, k] << np.uint64(s)) & _MASK32
            if s:
                out[:, j + k + 1] |= v[:, k] >> np.uint64(32 - s)
    return out[:, : pl.words].astype(np.uint32)


def unpack(pl: PortLayout, payload: np.ndarray) -> dict[str, np.ndarray]:
    """The port's fields of [beats, pl.words] payloads, each as [beats, words] uint32 words."""
    p = np.zeros((payload.shape[0], pl.words + 1), np.uint64)
    p[:, : pl.words] = payload
    out = {}
    for name, off, width in pl.offsets():
        nw = words_for(width)
        j, s = divmod(off, 32)
        w = np.empty((payload.shape[0], nw), np.uint64)
        for k in range(nw):
            w[:, k] = p[:, j + k] >> np.uint64(s)
            if s:
                w[:, k] |= (p[:, j + k + 1] << np.uint64(32 - s)) & _MASK32
        top = width - 32 * (nw - 1)
        if top < 32:
            w[:, -1] &= np.uint64((1 << top) - 1)
        out[name] = w.astype(np.uint32)
    return out


def field_int(words: np.ndarray) -> np.ndarray:
    """[beats, words] uint32 words of a field up to 63 bits -> [beats] int64."""
    w = np.asarray(words, dtype=np.uint64)
    if w.shape[1] > 2:
        raise ValueError(f"field_int: {w.shape[1]} words is more than 63 bits")
    x = w[:, 0].copy()
    if w.shape[1] == 2:
        x |= w[:, 1] << np.uint64(32)
    return x.astype(np.int64)


def frame_starts(counts) -> np.ndarray:
    """Each transaction's first beat index from its beat count, plus one entry past the end
    (``[0, c0, c0 + c1, ...]``, int64)."""
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def lanes_to_words(codes: np.ndarray, width: int) -> np.ndarray:
    """[beats, lanes] lane codes (two's complement allowed) -> [beats, words] little-endian
    words, lane i at bits [width*i +: width]; ``width`` divides 32."""
    if width < 1 or 32 % width:
        raise ValueError(f"lane width {width} does not divide 32")
    per = 32 // width
    if width in _BYTE_LANES:  # whole-byte lanes: the low bytes of each code, read as words
        c = np.asarray(codes)
        beats, lanes = c.shape
        raw = np.zeros((beats, lanes + (-lanes) % per), dtype=_BYTE_LANES[width][0])
        raw[:, :lanes] = c  # an unsafe cast: each code's low bytes (two's complement)
        return raw.view("<u4").astype(np.uint32, copy=False)
    c = np.asarray(codes, dtype=np.int64) & ((1 << width) - 1)
    beats, lanes = c.shape
    pad = (-lanes) % per
    if pad:
        c = np.concatenate([c, np.zeros((beats, pad), np.int64)], axis=1)
    shifts = (np.arange(per, dtype=np.uint64) * np.uint64(width))[None, None, :]
    return (c.reshape(beats, -1, per).astype(np.uint64) << shifts).sum(axis=2).astype(np.uint32)


def words_to_lanes(words: np.ndarray, width: int, lanes: int, signed: bool = False) -> np.ndarray:
    """The inverse of :func:`lanes_to_words`: [beats, words] -> [beats, lanes] int64."""
    if width < 1 or 32 % width:
        raise ValueError(f"lane width {width} does not divide 32")
    per = 32 // width
    if width in _BYTE_LANES:
        w = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
        kind = _BYTE_LANES[width][1 if signed else 0]
        return w.view(kind).reshape(len(w), -1)[:, :lanes].astype(np.int64)
    w = np.asarray(words, dtype=np.uint64)
    shifts = (np.arange(per, dtype=np.uint64) * np.uint64(width))[None, None, :]
    out = ((w[:, :, None] >> shifts) & np.uint64((1 << width) - 1)).reshape(len(w), -1)[:, :lanes].astype(np.int64)
    if signed:
        out = np.where(out >= 1 << (width - 1), out - (1 << width), out)
    return out


def beat_dicts(pl: PortLayout, payload: np.ndarray) -> list[dict[str, int]]:
    """Beats as ``{field: int}`` dicts (for reports; the per-beat form of cycle mode)."""
    fields = unpack(pl, payload)
    out = []
    for i in range(payload.shape[0]):
        out.append({name: int.from_bytes(fields[name][i].astype("<u4").tobytes(), "little") for name, _, _ in pl.offsets()})
    return out
