"""Grid states and how the per-network states combine into "all networks"."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

#: State codes used in the dense arrays; STATE_CODES[code] is the schema name.
STATE_CODES = np.array(["up", "down", "uncertain", "no_data"], dtype=object)
UP, DOWN, UNCERTAIN, NO_DATA = 0, 1, 2, 3


def rows_to_groups(group: np.ndarray, n_groups: int) -> sparse.csr_matrix:
    """Sparse (group × row) indicator: ``M @ values`` sums the rows of each group
    (much faster than ``np.add.at`` on (rows × windows) arrays)."""
    group = np.asarray(group, dtype="int64")
    return sparse.csr_matrix(
        (np.ones(group.size, dtype="float32"), (group, np.arange(group.size))),
        shape=(n_groups, group.size),
    )


#: Windows per block of :func:`all_network_state` (bounds its temporaries).
ALL_NETWORKS_BLOCK_WINDOWS = 8


def all_network_state(
    keys: pd.DataFrame,
    state: np.ndarray,
    p: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """State and p_down of "all networks" per hex × window.

    Down where every network that served the place is down; up where any network
    is up; no_data where none of them has data; uncertain otherwise. p_down is the
    smallest p_down of the networks (the weakest link of "nobody serves").
    With ``pairs`` (touching hexes), a network that served next door but left no
    baseline report here may well serve here too: unless it is down next door and
    up nowhere next door, the place is not "nobody serves".

    Windows are independent: they are worked a block of windows at a time, so the
    temporaries stay the size of a block.
    """
    hex_of_key = keys["hex"].to_numpy()
    n_hex = int(hex_of_key.max()) + 1 if len(keys) else 0
    served = keys["served"].to_numpy()[:, None]
    shape = (n_hex, state.shape[1])
    to_hex = rows_to_groups(hex_of_key, n_hex)
    n_served_hex = to_hex @ served.astype("float32")
    unseen = _UnseenNetworks(keys, pairs, n_hex) if pairs is not None else None
    out = np.empty(shape, dtype="int8")
    p_min = np.empty(shape)
    for a in range(0, shape[1], ALL_NETWORKS_BLOCK_WINDOWS):
        c = slice(a, a + ALL_NETWORKS_BLOCK_WINDOWS)
        st = state[:, c]
        block = (n_hex, st.shape[1])
        n_served = np.broadcast_to(n_served_hex, block)
        n_down = to_hex @ ((st == DOWN) & served).astype("float32")
        n_up = to_hex @ (st == UP).astype("float32")
        n_known = to_hex @ (st != NO_DATA).astype("float32")
        p_min[:, c] = np.where(
            n_served > 0, _group_min(hex_of_key, np.where(served, p[:, c], 1.0), block), 0.0
        )
        o = np.full(block, UNCERTAIN, dtype="int8")
        o[n_known == 0] = NO_DATA
        o[n_up > 0] = UP
        all_down = (n_served > 0) & (n_down == n_served) & (n_up == 0)
        if unseen is not None:
            all_down &= ~unseen.may_serve(st)
        o[all_down] = DOWN
        out[:, c] = o
    return out, p_min


def _group_min(group: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Row-wise minimum of ``values`` per group, starting from 1 (``shape``: groups × columns).

    One reduction over runs of rows (sorted by group when they are not already), not
    ``np.minimum.at`` row by row; a minimum does not depend on the order.
    """
    out = np.ones(shape)
    if group.size == 0:
        return out
    if np.all(group[1:] >= group[:-1]):
        rows = values
    else:
        order = np.argsort(group, kind="stable")
        group, rows = group[order], values[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    out[group[starts]] = np.minimum(np.minimum.reduceat(rows, starts, axis=0), 1.0)
    return out


class _UnseenNetworks:
    """Hex × window: some network without a baseline report here, but serving a
    touching hex, is not clearly down there (down next door and up nowhere next door)."""

    def __init__(
        self, keys: pd.DataFrame, pairs: tuple[np.ndarray, np.ndarray], n_hex: int
    ) -> None:
        self.n_hex = n_hex
        served = keys[keys["served"].to_numpy()]
        nb = pd.DataFrame({"hex": pairs[0], "hex_b": pairs[1]}).merge(
            served[["hex", "network"]].reset_index(names="key_b").rename(columns={"hex": "hex_b"}),
            on="hex_b",
        )
        self.agg: sparse.csr_matrix | None = None
        if nb.empty:
            return
        # (hex, network) pairs as one integer each (hex-major): no MultiIndexes.
        low = int(keys["network"].min())
        width = int(keys["network"].max()) - low + 1
        here = served["hex"].to_numpy("int64") * width + (served["network"].to_numpy("int64") - low)
        pair = nb["hex"].to_numpy("int64") * width + (nb["network"].to_numpy("int64") - low)
        missing = ~np.isin(pair, here)
        nb, pair = nb[missing], pair[missing]
        if nb.empty:
            return
        group, uniq = pd.factorize(pair)
        self.agg = sparse.csr_matrix(
            (np.ones(len(nb)), (group, nb["key_b"].to_numpy())), shape=(len(uniq), len(keys))
        )
        hex_of_group = uniq // width
        self.to_hex = sparse.csr_matrix(
            (np.ones(len(uniq)), (hex_of_group, np.arange(len(uniq)))), shape=(n_hex, len(uniq))
        )

    def may_serve(self, state: np.ndarray) -> np.ndarray:
        """Of key × window ``state`` (any windows), hex × the same windows."""
        if self.agg is None:
            return np.zeros((self.n_hex, state.shape[1]), dtype=bool)
        down_next = self.agg @ (state == DOWN).astype("float32")
        up_next = self.agg @ (state == UP).astype("float32")
        may_serve = ~((down_next > 0) & (up_next == 0))
        return (self.to_hex @ may_serve.astype("float32")) > 0
