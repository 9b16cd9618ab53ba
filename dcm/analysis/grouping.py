"""Sort-based grouping on arrays: what counting does to millions of rows per chunk.

pandas' ``groupby`` hashes every key column, then combines and sorts their codes; the
counts group millions of rows per chunk and again at every merge, where the rows come
as sorted runs of the parts. Here each key column becomes an order-keeping integer code,
the codes are packed into one int64 (:func:`key_groups`), and one stable sort of that
key orders the rows: a few tens of milliseconds for millions of rows, less on sorted
runs (the sort finds and merges them).

``np.unique`` on integers hashes since numpy 2.3 and takes seconds on millions of
distinct values (a sort takes tens of milliseconds): :func:`sorted_unique` sorts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Packed keys stay below this (one non-negative int64).
_PACK_LIMIT = 2**63


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (``np.unique(values)`` of a 1-D array, by a sort)."""
    out = np.sort(np.asarray(values).ravel())
    if out.size > 1:
        keep = np.empty(out.size, dtype=bool)
        keep[0] = True
        np.not_equal(out[1:], out[:-1], out=keep[1:])
        if out.dtype.kind == "f":
            # NaN != NaN: keep one, as np.unique does (NaNs sort last).
            nan = np.isnan(out)
            keep[1:] &= ~(nan[1:] & nan[:-1])
        out = out[keep]
    return out


def group_frame(
    frame: pd.DataFrame, keys: list[str], sums: list[str], maxes: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Rows summed (``sums``) and maximised (``maxes``, missing values skipped) per
    distinct ``keys``, sorted by them; each column keeps its dtype.

    The frame pandas' ``groupby(keys, sort=True)`` gives (groups with a missing key
    dropped; where key values compare equal, as 0.0 and -0.0 do, the first one kept),
    by one sort of a packed key (:func:`key_groups`)."""
    if frame.empty:
        return frame.reset_index(drop=True)
    cols = {c: frame[c].to_numpy() for c in frame.columns}
    missing = np.zeros(len(frame), dtype=bool)
    for k in keys:
        if cols[k].dtype.kind == "f":
            missing |= np.isnan(cols[k])
    if missing.any():
        if missing.all():
            return frame.iloc[:0].reset_index(drop=True)
        cols = {c: v[~missing] for c, v in cols.items()}
    # Float sums add up in row order (as pandas does) only after a stable sort; other
    # groups take any order, and their first rows are found from it.
    stable = any(cols[c].dtype.kind == "f" for c in sums)
    order, starts = key_groups([cols[k] for k in keys], stable=stable)
    first = order[starts] if stable else np.minimum.reduceat(order, starts)
    out: dict[str, np.ndarray] = {}
    for c, v in cols.items():
        if c in keys:
            out[c] = v[first]
        elif c in sums:
            v = v.astype("int64") if v.dtype == bool else v
            if v.dtype.kind == "f":
                v = np.where(np.isnan(v), 0.0, v)
            out[c] = np.add.reduceat(v[order], starts)
        elif c in maxes:
            fn = np.fmax if v.dtype.kind == "f" else np.maximum
            out[c] = fn.reduceat(v[order], starts)
        else:
            raise ValueError(f"column {c!r} is neither a key nor summed nor maximised")
    # copy=False: each column its own block (consolidating them copies every row).
    return pd.DataFrame(
        {c: out[c].astype(frame[c].dtype, copy=False) for c in frame.columns}, copy=False
    )


def key_groups(columns: list[np.ndarray], *, stable: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts rows by ``columns`` (numbers without NaN; the first the
    most significant) and where each run of equal keys starts in it; with ``stable``
    False, rows with equal keys may come in any order (a faster sort of rows in no
    order; rows already in a few sorted runs, as merged counts are, are always sorted
    stably, which merges the runs).

    Each column becomes an order-keeping int64 code (integers shifted past the low bits
    all values share, such as the unused digits of H3 cells of one resolution; floats
    by rank, 0.0 and -0.0 one value) and the codes are packed into one int64 when their
    ranges allow, the widest ranked until they do. Keys too wide even as ranks are
    sorted column by column (``np.lexsort``)."""
    n = int(columns[0].shape[0]) if columns else 0
    if n == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    coded = [_code(np.asarray(c)) for c in columns]
    ranked = [np.asarray(c).dtype.kind == "f" for c in columns]
    while math.prod(span for _, span in coded) >= _PACK_LIMIT:
        wide = [i for i in range(len(coded)) if not ranked[i] and coded[i][1] > 1]
        if not wide:
            break
        i = max(wide, key=lambda j: coded[j][1])
        coded[i], ranked[i] = _rank(coded[i][0]), True
    change = np.empty(n, dtype=bool)
    change[0] = True
    if math.prod(span for _, span in coded) < _PACK_LIMIT:
        key = coded[0][0]
        for code, span in coded[1:]:
            key = key * np.int64(span) + code
        runs = np.count_nonzero(key[1:] < key[:-1]) + 1
        order = np.argsort(key, kind="stable" if stable or runs <= n // 16 else "quicksort")
        ordered = key[order]
        np.not_equal(ordered[1:], ordered[:-1], out=change[1:])
    else:
        codes = [code for code, _ in coded]
        order = np.lexsort(codes[::-1])
        change[1:] = False
        for code in codes:
            ordered = code[order]
            change[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(change)


def match_rows(table: list[np.ndarray], query: list[np.ndarray]) -> np.ndarray:
    """Row of ``table`` (key columns of distinct rows) holding each ``query`` row's
    key (the same columns, in order), -1 where none does: a join on several key
    columns by one sort of both tables' keys (:func:`key_groups`)."""
    n_table = int(table[0].shape[0])
    n = n_table + int(query[0].shape[0])
    if n == n_table:
        return np.zeros(0, dtype="int64")
    columns = [
        np.concatenate([np.asarray(t), np.asarray(q)]) for t, q in zip(table, query, strict=True)
    ]
    order, starts = key_groups(columns, stable=False)
    group = np.empty(n, dtype="int64")
    group[order] = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n)))
    row = np.full(starts.size, -1, dtype="int64")
    row[group[:n_table]] = np.arange(n_table)
    return row[group[n_table:]]


def _code(values: np.ndarray) -> tuple[np.ndarray, int]:
    """An int64 code of each value, in the values' order, and the codes' range."""
    if values.dtype.kind == "f":
        return _rank(values + 0.0)  # -0.0 + 0.0 is 0.0
    if values.dtype.kind == "u" and int(values.max()) >= _PACK_LIMIT:
        return _rank(values)
    values = values.astype("int64", copy=False)
    lo, hi = int(values.min()), int(values.max())
    # Low bits every value shares carry nothing: shifted out.
    varying = int(np.bitwise_or.reduce(values ^ values[0]))
    shift = (varying & -varying).bit_length() - 1 if varying else 0
    span = (hi >> shift) - (lo >> shift) + 1
    if span >= _PACK_LIMIT:
        return _rank(values)
    return (values >> np.int64(shift)) - np.int64(lo >> shift), span


def _rank(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense rank (0 ..) of each value and the number of distinct values."""
    order = np.argsort(values)
    ordered = values[order]
    new = np.empty(values.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    rank = np.empty(values.shape[0], dtype="int64")
    rank[order] = np.cumsum(new) - 1
    return rank, int(new.sum())


__all__ = ["group_frame", "key_groups", "match_rows", "sorted_unique"]
