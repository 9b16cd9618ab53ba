"""``dcm serve`` killed with SIGKILL in the middle of storing an upload: the client's retry
stores every row (the dataset record and its rows are one transaction)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from dcm.settings import Settings
from dcm.store import Principal, open_store
from dcm.store.faults import FAULT_ENV

from ..store.conftest import BACKENDS, backend_url
from .serving import dcm_serve

ROWS = 20_000


@contextmanager
def serving(data_dir: Path, url: str, fault: str | None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``dcm serve`` in a subprocess (uvicorn), with ``DCM_FAULT_POINT`` = ``fault``."""
    with dcm_serve(
        data_dir, args=["--database-url", url], env={FAULT_ENV: fault} if fault else None
    ) as running:
        yield running


def _upload_body() -> bytes:
    rng = np.random.default_rng(3)
    ts = pd.Timestamp("2021-04-09T00:00:00Z") + pd.to_timedelta(
        rng.integers(0, 6 * 3600, ROWS), unit="s"
    )
    frame = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lat": rng.uniform(13.20, 13.26, ROWS).round(6),
            "lon": rng.uniform(-61.26, -61.20, ROWS).round(6),
            "status": "ok",
            "mcc": 360,
            "mnc": rng.choice([10, 50], ROWS),
            "measurement_id": [f"u{i}" for i in range(ROWS)],
        }
    )
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_upload_cut_by_a_server_crash_is_stored_whole_on_retry(
    backend: str, tmp_path: Path
) -> None:
    with backend_url(backend, tmp_path) as url:
        data_dir = tmp_path / "data"
        with open_store(Settings(data_dir=data_dir, secret="s"), url=url) as store:
            admin = Principal.system()
            store.create_event("quake", start="2021-04-09T00:00:00Z", principal=admin)
            _, token = store.create_key("uploader", role="partner", principal=admin)
        body = _upload_body()
        request = {
            "url": "/events/quake/measurements",
            "content": body,
            "headers": {"Content-Type": "text/csv", "X-API-Key": token},
            "params": {"name": "hour.csv"},
        }
        with serving(data_dir, url, fault="ingest.rows_inserted") as (base, process):
            with (
                httpx.Client(base_url=base, timeout=120) as client,
                pytest.raises(httpx.TransportError),
            ):
                client.post(**request)
            assert process.wait(timeout=30) == -signal.SIGKILL
        # The killed server could not remove its upload file: the next one sweeps it.
        assert list((data_dir / "uploads").glob("upload-*"))
        with (
            serving(data_dir, url, fault=None) as (base, _),
            httpx.Client(base_url=base, timeout=120) as client,
        ):
            retry = client.post(**request)
            assert retry.status_code == 201, retry.text
            assert retry.json()["new"] is True and retry.json()["added"] == ROWS
            again = client.post(**request)
            assert again.status_code == 200 and again.json()["added"] == 0
        with open_store(Settings(data_dir=data_dir, secret="s"), url=url) as store:
            assert len(store.measurements("quake", period="event")) == ROWS
            assert len(store.list_datasets("quake")) == 1
        assert not list((data_dir / "uploads").glob("*"))
