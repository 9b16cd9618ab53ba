"""The "all networks" layer: p_down is the smallest p_down of the serving networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcm.analysis.states import DOWN, NO_DATA, UP, all_network_state


def _random_keys(rng: np.random.Generator, n_hex: int, n_net: int) -> pd.DataFrame:
    """(hex, network, served) keys, 60 % served, some networks absent from some places."""
    keys = pd.DataFrame(
        {
            "hex": np.repeat(np.arange(n_hex), n_net),
            "network": np.tile(np.arange(n_net), n_hex),
            "served": rng.random(n_hex * n_net) < 0.6,
        }
    )
    return keys[rng.random(len(keys)) < 0.8].reset_index(drop=True)


@pytest.mark.parametrize("shuffle", [False, True])
def test_all_network_p_is_the_smallest_of_serving_networks(shuffle: bool) -> None:
    rng = np.random.default_rng(5)
    n_hex, n_net, n_win = 30, 3, 6
    keys = _random_keys(rng, n_hex, n_net)
    if shuffle:  # rows of a hex need not be next to each other
        keys = keys.sample(frac=1.0, random_state=1).reset_index(drop=True)
    state = rng.choice([UP, DOWN, NO_DATA], size=(len(keys), n_win)).astype("int8")
    p = rng.random((len(keys), n_win)).astype("float32")
    out, p_min = all_network_state(keys, state, p)
    for h in range(n_hex):
        rows = keys.index[(keys["hex"] == h) & keys["served"]].to_numpy()
        want = p[rows].astype("float64").min(axis=0) if rows.size else np.zeros(n_win)
        np.testing.assert_array_equal(p_min[h], np.minimum(want, 1.0))
        if rows.size:
            all_down = (state[rows] == DOWN).all(axis=0)
            any_up = (state[keys.index[keys["hex"] == h]] == UP).any(axis=0)
            assert ((out[h] == DOWN) == (all_down & ~any_up)).all()


def test_all_network_layer_worked_in_blocks_of_windows_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dcm.analysis.states as states

    rng = np.random.default_rng(8)
    n_hex, n_net, n_win = 40, 3, 11
    keys = _random_keys(rng, n_hex, n_net)
    state = rng.choice([UP, DOWN, NO_DATA], size=(len(keys), n_win), p=[0.3, 0.6, 0.1])
    state = state.astype("int8")
    p = rng.random((len(keys), n_win)).astype("float32")
    # Touching hexes in a row: networks unseen here but serving next door count.
    pairs = (
        np.r_[np.arange(n_hex - 1), np.arange(1, n_hex)],
        np.r_[np.arange(1, n_hex), np.arange(n_hex - 1)],
    )
    monkeypatch.setattr(states, "ALL_NETWORKS_BLOCK_WINDOWS", n_win)  # one block
    whole = all_network_state(keys, state, p, pairs)
    assert (whole[0] == DOWN).any() and (whole[0] == UP).any()
    for block in (1, 4):  # one window a block; blocks of 4, the last short
        monkeypatch.setattr(states, "ALL_NETWORKS_BLOCK_WINDOWS", block)
        out, p_min = all_network_state(keys, state, p, pairs)
        np.testing.assert_array_equal(out, whole[0])
        np.testing.assert_array_equal(p_min, whole[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unseen_networks_match_the_pairs_a_multiindex_finds(seed: int) -> None:
    from scipy import sparse

    from dcm.analysis.states import _UnseenNetworks

    rng = np.random.default_rng(seed)
    n_hex = 40
    keys = (
        pd.DataFrame({"hex": rng.integers(0, n_hex, 90), "network": rng.integers(0, 3, 90)})
        .drop_duplicates()
        .sort_values(["hex", "network"], ignore_index=True)
    )
    keys["served"] = rng.random(len(keys)) < 0.6
    a = rng.integers(0, n_hex, 150)
    b = rng.integers(0, n_hex, 150)
    pairs = (a[a != b], b[a != b])
    unseen = _UnseenNetworks(keys, pairs, n_hex)
    # The same matrices built with MultiIndexes: touching hex, network served there
    # but not here.
    served = keys[keys["served"].to_numpy()]
    here = pd.MultiIndex.from_arrays([served["hex"].to_numpy(), served["network"].to_numpy()])
    nb = pd.DataFrame({"hex": pairs[0], "hex_b": pairs[1]}).merge(
        served[["hex", "network"]].reset_index(names="key_b").rename(columns={"hex": "hex_b"}),
        on="hex_b",
    )
    nb = nb[here.get_indexer(pd.MultiIndex.from_arrays([nb["hex"], nb["network"]])) < 0]
    assert len(nb) > 0 and unseen.agg is not None
    group, uniq = pd.factorize(pd.MultiIndex.from_arrays([nb["hex"], nb["network"]]))
    agg = sparse.csr_matrix(
        (np.ones(len(nb)), (group, nb["key_b"].to_numpy())), shape=(len(uniq), len(keys))
    )
    hexes = np.asarray(uniq.get_level_values(0), dtype="int64")
    to_hex = sparse.csr_matrix(
        (np.ones(len(uniq)), (hexes, np.arange(len(uniq)))), shape=(n_hex, len(uniq))
    )
    assert (unseen.agg != agg).nnz == 0 and unseen.agg.shape == agg.shape
    assert (unseen.to_hex != to_hex).nnz == 0 and unseen.to_hex.shape == to_hex.shape
    state = rng.choice([DOWN, UP, NO_DATA], (len(keys), 5)).astype("int8")
    assert unseen.may_serve(state).shape == (n_hex, 5)


def test_unseen_networks_without_touching_hexes_serve_nowhere() -> None:
    from dcm.analysis.states import _UnseenNetworks

    keys = pd.DataFrame({"hex": [0, 1], "network": [0, 0], "served": [True, True]})
    none = _UnseenNetworks(keys, (np.array([0, 1]), np.array([1, 0])), 2)
    assert none.agg is None  # every neighbour's network is served here too
    assert not none.may_serve(np.zeros((2, 3), dtype="int8")).any()
