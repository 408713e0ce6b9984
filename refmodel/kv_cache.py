"""KV caches that grow one row per token: MX-quantized (quantized path) and float (golden path).

Layout: ``[batch, num_key_value_heads, tokens, head_dim]``, tokens in position order.

:class:`MXKVCache` quantizes K and V **per token along the head dimension** (MX blocks of
``block_size`` consecutive head-dim features of one token of one head).  A row's codes depend on
that row alone, so appending a decode token never requantizes older rows, and a sequence
written in one prefill holds exactly the codes of the same sequence written token by token.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from mxdv.refmodel.mx import MXTensor, quantize_mx

__all__ = ["FloatKVCache", "MXKVCache", "to_bf16"]


def to_bf16(x) -> np.ndarray:
    """float32 (or wider) values rounded to BF16 with round-to-nearest-even (float64 inputs are
    first rounded to float32): what the host hands the quantizer unit (NUMERICS.md rule S0)."""
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16)


class _RowStore:
    """Named arrays ``[B, H, capacity, X]`` that grow along axis 2 (capacity doubles)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self._capacity = int(capacity)
        self._arrays: dict[str, np.ndarray] = {}
        self.length = 0

    def append(self, rows: dict[str, np.ndarray]) -> None:
        added = {np.shape(v)[2] for v in rows.values()}
        if len(added) != 1:
            raise ValueError(f"rows must add the same number of tokens, got {sorted(added)}")
        n = added.pop()
        end = self.length + n
        for name, value in rows.items():
            store = self._arrays.get(name)
            if store is None:
                cap = max(self._capacity, end)
                store = np.zeros((*value.shape[:2], cap, *value.shape[3:]), dtype=value.dtype)
            elif store.shape[:2] != value.shape[:2] or store.shape[3:] != value.shape[3:]:
                raise ValueError(f"{name} rows have shape {value.shape}, cache holds {store.shape}")
            if end > store.shape[2]:
                cap = max(2 * store.shape[2], end)
                grown = np.zeros((*store.shape[:2], cap, *store.shape[3:]), dtype=store.dtype)
                grown[:, :, : self.length] = store[:, :, : self.length]
                store = grown
            store[:, :, self.length:end] = value
            self._arrays[name] = store
        self.length = end

    def view(self, name: str) -> np.ndarray:
        return self._arrays[name][:, :, : self.length]


def _check_rows(k: np.ndarray, v: np.ndarray) -> None:
    if np.ndim(k) != 4 or np.shape(k) != np.shape(v):
        raise ValueError(f"k and v must have the same shape [B, H_kv, T, head_dim], got "
                         f"{np.shape(k)} and {np.shape(v)}")


class FloatKVCache:
    """K and V stored unquantized in ``dtype`` (float64 golden path, float32 baseline)."""

    def __init__(self, dtype=np.float64, capacity: int = 64) -> None:
        self.dtype = np.dtype(dtype)
        self._store = _RowStore(capacity)

    @property
    def length(self) -> int:
        return self._store.length

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        """Append ``T`` tokens: ``k``, ``v`` ``[B, H_kv, T, head_dim]``."""
        _check_rows(k, v)
        self._store.append({"k": np.asarray(k, self.dtype), "v": np.asarray(v, self.dtype)})

    def keys(self) -> np.ndarray:
        return self._store.view("k")

    def values(self) -> np.ndarray:
        return self._store.view("v")


class MXKVCache:
    """K and V stored as MX codes: ``fmt`` / ``block_size`` blocks along head_dim, per token."""

    def __init__(self, fmt: str = "mxint8", block_size: int = 32, capacity: int = 64) -> None:
        self.fmt = fmt
        self.block_size = int(block_size)
        self._store = _RowStore(capacity)

    @property
    def length(self) -> int:
        return self._store.length

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        """Quantize and append ``T`` tokens: ``k``, ``v`` float32 ``[B, H_kv, T, head_dim]``.

        Only the new rows are quantized (per token, along head_dim); older rows are untouched.
        Like every activation, K and V are rounded to BF16 first (NUMERICS.md rule S0: the
        quantizer unit takes BF16).
        """
        _check_rows(k, v)
        kq = quantize_mx(to_bf16(k), fmt=self.fmt, block_size=self.block_size, axis=-1)
        vq = quantize_mx(to_bf16(v), fmt=self.fmt, block_size=self.block_size, axis=-1)
        self._store.append({"k_codes": kq.elements, "k_scales": kq.scales,
                            "v_codes": vq.elements, "v_scales": vq.scales})

    def _tensor(self, which: str) -> MXTensor:
        return MXTensor(scales=self._store.view(which + "_scales"),
                        elements=self._store.view(which + "_codes"),
                        fmt=self.fmt, block_size=self.block_size, axis=-1)

    def keys(self) -> MXTensor:
        """All cached K rows as one MXTensor ``[B, H_kv, length, head_dim]`` (axis -1)."""
        return self._tensor("k")

    def values(self) -> MXTensor:
        return self._tensor("v")
