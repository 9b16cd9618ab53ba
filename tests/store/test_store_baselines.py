"""The baseline cache: Parquet + JSON keyed by dcm version, never code read back."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

import dcm
from dcm import live
from dcm.analysis import build_baseline, detect
from dcm.store import Principal, Store
from dcm.store.baselines import FORMAT, baseline_from_bytes, baseline_to_bytes

if TYPE_CHECKING:
    from conftest import Scenario


class _Touch:
    """A pickle payload that creates a file when unpickled (as an attacker's would)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path(self.path).touch, ())  # type: ignore[return-value]


def _fed(store: Store, scenario: Scenario, hours: int = 12) -> None:
    admin = Principal.system()
    store.create_event("vincent", start=scenario.start, principal=admin)
    for kind, path in (("cells", scenario.cells), ("baseline", scenario.baseline)):
        live.ingest(store, "vincent", path, kind=kind, principal=admin)
    live.ingest(store, "vincent", scenario.event_slice(0, hours), principal=admin)


def _rows(store: Store) -> list[tuple[str, bytes]]:
    return [
        (key, bytes(data))
        for key, data in store.db.query("SELECT fingerprint, data FROM baselines")
    ]


def _with_header(data: bytes, **changes: str) -> bytes:
    """``data`` (a cache payload) with fields of baseline.json changed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            member = src.read(name)
            if name == "baseline.json":
                member = json.dumps({**json.loads(member), **changes}).encode()
            dst.writestr(name, member)
    return out.getvalue()


def test_payload_is_parquet_and_json_and_reads_back_the_same_model(
    store: Store, scenario: Scenario
) -> None:
    _fed(store, scenario)
    params = live.detection_params(store.get_event("vincent"))
    model = build_baseline(
        store.measurements("vincent", period="baseline"), store.cells("vincent"), params
    )
    data = baseline_to_bytes(model)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        header = json.loads(archive.read("baseline.json"))
        assert archive.read("grid.parquet")[:4] == b"PAR1"
    assert "baseline.json" in names and all(
        n == "baseline.json" or n.endswith(".parquet") for n in names
    )
    assert header["format"] == FORMAT and header["dcm_version"] == dcm.__version__
    assert header["params"] == params.as_dict()

    back = baseline_from_bytes(data)
    assert back is not None
    for name in ("grid", "cells", "cell_areas", "sites", "site_areas"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(model, name))
    arrays = ("hour_profile", "cell_rate", "network_fail_share", "cell_site")
    for name in (*arrays, "silence_scale", "silence_spread"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    # The fitted silence exponents and spreads travel too (the defaults fit none: ones).
    fitted = dataclasses.replace(
        model, silence_scale=np.linspace(0.8, 1.3, 24), silence_spread=np.linspace(1, 3, 24)
    )
    again = baseline_from_bytes(baseline_to_bytes(fitted))
    assert again is not None
    np.testing.assert_array_equal(again.silence_scale, fitted.silence_scale)
    np.testing.assert_array_equal(again.silence_spread, fitted.silence_spread)
    assert (back.params, back.start, back.end, back.networks) == (
        model.params,
        model.start,
        model.end,
        model.networks,
    )
    assert back.site_dispersion == model.site_dispersion and back.stats == model.stats
    rows = store.measurements("vincent", period="event")
    windows = pd.date_range(scenario.start + pd.Timedelta("8h"), periods=4, freq="h")
    want = detect(model, rows, params=params, windows=windows).outages
    got = detect(back, rows, params=params, windows=windows).outages
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want)


def test_unparsable_cache_rows_are_ignored_and_rebuilt(
    store: Store, scenario: Scenario, tmp_path: Path
) -> None:
    _fed(store, scenario)
    admin = Principal.system()
    first = live.update(store, "vincent", principal=admin)
    assert first.baseline_rebuilt
    ((key, good),) = _rows(store)
    marker = tmp_path / "pickle-was-run"
    payloads = [
        pickle.dumps(_Touch(marker)),
        b"not a baseline at all",
        good[: len(good) // 2],  # truncated
        _with_header(good, dcm_version="0.0.0-other"),  # another version's
        _with_header(good, format="dcm-baseline/0"),
    ]
    for payload in payloads:
        store.db.execute(
            "UPDATE baselines SET data = :data WHERE fingerprint = :key",
            {"data": payload, "key": key},
        )
        summary = live.update(store, "vincent", principal=admin, full=True)
        assert summary.baseline_rebuilt and summary.windows
        assert not marker.exists()
        ((again, data),) = _rows(store)
        assert again == key and baseline_from_bytes(data) is not None
    # A good entry is used as it is.
    assert not live.update(store, "vincent", principal=admin, full=True).baseline_rebuilt


def test_a_new_dcm_version_misses_the_cache(
    store: Store, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fed(store, scenario)
    admin = Principal.system()
    assert live.update(store, "vincent", principal=admin).baseline_rebuilt
    assert not live.update(store, "vincent", principal=admin, full=True).baseline_rebuilt
    ((old_key, _),) = _rows(store)
    monkeypatch.setattr(dcm, "__version__", "99.0.0")
    assert live.update(store, "vincent", principal=admin, full=True).baseline_rebuilt
    ((new_key, data),) = _rows(store)
    assert new_key != old_key
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert json.loads(archive.read("baseline.json"))["dcm_version"] == "99.0.0"
    assert not live.update(store, "vincent", principal=admin, full=True).baseline_rebuilt
