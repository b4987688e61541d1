"""Columns of the vectorised VM and their pandas adapters: what a batch's parameters are made of.

A :class:`Col` is a numpy array of values plus a null mask. ``col_from_array`` wraps a DataFrame column
(NaN, NA and NaT become nulls), ``col_from_pylist`` builds one from Python values, and ``as_pylist`` /
``as_series`` turn a result (a Col, or a scalar that holds for every record) back into values per record.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from compiler.vm import normalize_value


class Col:
    """A column of values with an optional null mask (True = null). Values under the mask are junk."""

    __slots__ = ("mask", "values")

    def __init__(self, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        self.values = values
        self.mask = mask if mask is not None and mask.any() else None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def kind(self) -> str:
        return self.values.dtype.kind  # b, i, u, f, O, ...

    def to_pylist(self) -> list[Any]:
        items = self.values.tolist()
        if self.values.dtype.kind == "O":
            items = [normalize_value(v) for v in items]
        elif self.values.dtype.kind == "f":
            items = [None if not math.isfinite(v) else v for v in items]
        if self.mask is not None:
            for i in np.flatnonzero(self.mask).tolist():
                items[i] = None
        return items

    def __repr__(self) -> str:
        return f"Col({self.to_pylist()!r})"


Value = Col | Any  # a Col, or a Python scalar (None = null) broadcast over the batch


def col_from_pylist(items: list[Any]) -> Col:
    """Build a column from Python values, choosing the narrowest dtype that holds them all.

    Only values of one type get a numpy dtype: a mix of bools, ints and floats stays an object column, so
    that every record keeps its own type (``str(1)`` is '1', and 2**62 + 1 is not rounded to a float).
    """
    present = [v for v in items if v is not None]
    mask = np.fromiter((v is None for v in items), dtype=bool, count=len(items))
    if present and all(isinstance(v, bool) for v in present):
        return Col(np.array([bool(v) if v is not None else False for v in items], dtype=bool), mask)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return Col(np.array([v if v is not None else 0 for v in items], dtype=np.int64), mask)
    if present and all(isinstance(v, float) for v in present):
        return Col(np.array([float(v) if v is not None else 0.0 for v in items], dtype=np.float64), mask)
    values = np.empty(len(items), dtype=object)
    values[:] = items
    return Col(values, mask)


def col_from_array(values: Any) -> Col:
    """Wrap a pandas Series or numpy array as a :class:`Col`, turning NaN/NA into nulls."""
    if hasattr(values, "dtype") and hasattr(values, "isna"):  # pandas Series
        return _col_from_series(values)
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return _float_col(arr)
    if arr.dtype.kind in "biu":
        return Col(arr.astype(np.int64) if arr.dtype.kind == "u" else arr)
    if arr.dtype.kind == "M":
        return Col(arr.astype(str).astype(object))
    return col_from_pylist([normalize_value(v) for v in arr.tolist()])


def _col_from_series(series: Any) -> Col:
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    if kind == "f" and isinstance(dtype, np.dtype):
        arr = series.to_numpy()
        return _float_col(arr)
    if kind in "biu" and isinstance(dtype, np.dtype):
        arr = series.to_numpy()
        return Col(arr.astype(np.int64) if kind == "u" else arr)
    if kind == "M":
        mask = series.isna().to_numpy()
        return Col(series.astype(str).to_numpy(dtype=object), mask)
    mask = series.isna().to_numpy()
    if kind in "biuf":  # pandas nullable extension dtypes (Int64, Float64, boolean)
        fill = False if kind == "b" else 0
        arr = series.to_numpy(dtype={"b": bool, "f": np.float64}.get(kind, np.int64), na_value=fill)
        if kind == "f":
            mask = mask | ~np.isfinite(arr)
        return Col(arr, mask)
    return col_from_pylist([None if m else normalize_value(v) for v, m in zip(series.tolist(), mask.tolist())])


def _float_col(arr: np.ndarray) -> Col:
    """NaN and ±inf are null, as in normalize_value. (Zero-filling them would keep later arithmetic finite,
    but np.where costs more than the isfinite checks it saves.)"""
    bad = ~np.isfinite(arr)
    return Col(arr, bad if bad.any() else None)


def as_pylist(value: Value, n: int) -> list[Any]:
    """A batch result as Python values, one per record (scalars are repeated)."""
    if isinstance(value, Col):
        return value.to_pylist()
    return [value] * n


def as_series(value: Value, index: pd.Index) -> pd.Series:
    """A batch result as a pandas Series aligned with the batch (``index``); nulls are None or NaN."""
    if isinstance(value, Col):
        if value.mask is None:
            return pd.Series(value.values, index=index)
        return pd.Series(value.to_pylist(), index=index)
    return pd.Series(as_pylist(value, len(index)), index=index)
