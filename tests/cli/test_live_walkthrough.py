"""docs/live.md step by step through the real ``dcm`` command on the St Vincent sample.

Every command the test runs is checked to appear in docs/live.md, so the walkthrough
cannot drift from what is tested. To stay fast it replays the first 48 hours of the
event week (the walkthrough's first replay, 24 hours, then a day more), not the whole
week: the first alerts come on the evening of 9 April and the first Cancel on 10 April.
Then ``dcm serve`` runs on a free loopback port and GDAL (pyogrio, OAPIF driver) reads
every collection, without a key and with the analyst key the walkthrough creates.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pyogrio
import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "live.md"
DCM = Path(sys.executable).parent / "dcm"
CAP_NS = "{urn:oasis:names:tc:emergency:cap:1.2}"
MESSAGE = re.compile(r"\b(Alert|Update|Cancel) (dcm-stvincent-[^\s,]+)")


def _doc_commands() -> str:
    """The shell commands of docs/live.md, continuation lines joined, spaces collapsed."""
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    return " ".join(text.split())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
    out["DCM_DATA_DIR"] = str(tmp_path_factory.mktemp("walkthrough") / "dcm-data")
    return out


def dcm(args: str, env: dict[str, str], *, documented: bool = True) -> str:
    """Run ``dcm ARGS`` from the repository root as the walkthrough does; return stdout."""
    if documented:
        assert f"dcm {args}" in _doc_commands(), f"not in docs/live.md: dcm {args}"
    done = subprocess.run(
        [str(DCM), *shlex.split(args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"dcm {args}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, *, key: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[str]:
    """``dcm serve`` on a free loopback port (started after the store is filled)."""
    port = _free_port()
    assert "dcm serve" in _doc_commands()
    proc = subprocess.Popen(
        [str(DCM), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/conformance")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"dcm serve did not start: {err}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.slow
def test_walkthrough_from_fresh_store_to_gdal(
    env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    s = "sample_data/stvincent"
    out = dcm(
        "event create stvincent --start 2021-04-09T12:00:00Z "
        f'--area {s}/hazard.geojson --description "La Soufrière eruption, St Vincent"',
        env,
    )
    assert "event stvincent (id 1) starts 2021-04-09T12:00Z" in out
    for kind, visibility, name in (
        ("cells", "public", "cells.csv.gz"),
        ("baseline", "partner", "baseline.csv.gz"),
        ("population", "public", "population.tif"),
        ("areas", "public", "areas.geojson"),
        ("hazard", "public", "hazard.geojson"),
    ):
        out = dcm(
            f"ingest --event stvincent --kind {kind} --licence Apache-2.0 "
            f"--visibility {visibility} {s}/{name}",
            env,
        )
        assert f"({kind}, {visibility})" in out and " 0 added" not in out

    replay = "replay --event stvincent --licence Apache-2.0 --visibility partner"
    first = dcm(f"{replay} --hours 24 {s}/event.csv.gz", env)
    issued = MESSAGE.findall(first)
    alerts = {ident for kind, ident in issued if kind == "Alert"}
    assert alerts, first
    slices = [line for line in first.splitlines() if re.match(r"^2021-04-\d\dT\d\d:00Z ", line)]
    assert len(slices) == 24 and slices[0].startswith("2021-04-09T12:00Z")
    added_first = int(re.search(r"(\d+) rows added", first)[1])  # type: ignore[index]

    # A partner follows the event: granted the event file's source now, it also reads
    # the slices replayed after the grant (and never the baseline, another source).
    partner = dcm("keys create --name telco-noc --role partner", env).strip()
    granted = dcm(f"keys grant telco-noc --event stvincent --source {s}/event.csv.gz", env)
    assert re.search(r"24 dataset\(s\) now: 6, 7, 8, …, 29; datasets ingested later", granted)

    # The walkthrough then replays the whole week; the first 24 hours add nothing again.
    # Two days in, the first outages are over.
    more = dcm(f"{replay} --hours 48 {s}/event.csv.gz", env, documented=False)
    lines = [line for line in more.splitlines() if line.startswith("2021-04-")]
    assert all(" +0 " in line for line in lines[:24]) and "+0 " not in lines[24]
    added = added_first + int(re.search(r"(\d+) rows added", more)[1])  # type: ignore[index]
    issued += MESSAGE.findall(more)
    alerts = {ident for kind, ident in issued if kind == "Alert"}
    cancels = [ident for kind, ident in issued if kind == "Cancel"]
    assert cancels, more
    # A Cancel closes the chain its Alert opened (same outage id, next sequence number).
    chains = {ident.rsplit("-", 1)[0] for ident in alerts}
    assert {ident.rsplit("-", 1)[0] for ident in cancels} <= chains

    listed = dcm("event list", env)
    assert re.search(r"^stvincent .* data until 2021-04-11T11:\d\d +\d+ dataset\(s\)", listed, re.M)
    key = dcm("keys create --name analyst-desk --role analyst", env).strip()
    assert key.startswith("dcm_")
    keys = dcm("keys list", env)
    assert f"grant: event stvincent, source {s}/event.csv.gz" in keys

    base = request.getfixturevalue("server")
    _read_everything(base, key=key, cancels=cancels, measurements=40000 + added)
    # The partner reads the event's measurements, those replayed after the grant too.
    assert _gdal_count(base, "stvincent-measurements", partner) == added
    assert _gdal_count(base, "stvincent-measurements", None) == 0


def _gdal_count(base: str, collection: str, key: str | None) -> int:
    """Features GDAL reads from a collection, with ``key`` as a bearer token if given."""
    if key is not None:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": key})
    try:
        return len(pyogrio.read_dataframe(f"OAPIF:{base}/collections/{collection}"))
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


def _read_everything(base: str, *, key: str, cancels: list[str], measurements: int) -> None:
    """GDAL reads every collection; alerts, CAP, Atom, gaps and map answer."""
    doc = _doc_commands()
    assert "OAPIF:http://127.0.0.1:8000/" in doc and "GDAL_HTTP_BEARER" in doc
    listed = json.loads(_get(f"{base}/collections"))["collections"]
    ids = sorted(c["id"] for c in listed)
    layers = pyogrio.list_layers(f"OAPIF:{base}/")
    assert sorted(layers[:, 0]) == ids
    assert {"stvincent-outages", "stvincent-alerts", "stvincent-measurements"} <= set(ids)

    anonymous = {c: len(pyogrio.read_dataframe(f"OAPIF:{base}/collections/{c}")) for c in ids}
    # GDAL >= 3.9 sends the key as "Authorization: Bearer" (the OAPIF driver of recent
    # GDAL does not pass GDAL_HTTP_HEADERS on), as docs/live.md says.
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": key})
    try:
        keyed = {c: len(pyogrio.read_dataframe(f"OAPIF:{base}/collections/{c}")) for c in ids}
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
    for layer in ("outages", "cells", "grid", "coverage", "areas", "hazard", "alerts"):
        assert keyed[f"stvincent-{layer}"] > 0, keyed
    assert keyed["stvincent-areas"] == 5 and keyed["stvincent-hazard"] == 3
    # Measurements are partner data: nothing without a key, everything for the analyst.
    assert anonymous["stvincent-measurements"] == 0
    assert keyed["stvincent-measurements"] == measurements

    current = json.loads(_get(f"{base}/events/stvincent/alerts?cancelled=true"))
    kinds = {f["properties"]["msg_type"] for f in current["features"]}
    assert "Cancel" in kinds and kinds & {"Alert", "Update"}
    cap = ElementTree.fromstring(_get(f"{base}/alerts/{cancels[0]}.xml"))
    assert cap.findtext(f"{CAP_NS}msgType") == "Cancel"
    assert cap.findtext(f"{CAP_NS}references")
    atom = ElementTree.fromstring(_get(f"{base}/events/stvincent/alerts.atom"))
    assert atom.findall("{http://www.w3.org/2005/Atom}entry")
    gaps = json.loads(_get(f"{base}/events/stvincent/gaps"))
    assert gaps["event"] == "stvincent" and gaps["gaps"]
    assert gaps["gaps"][0]["people"] >= gaps["gaps"][-1]["people"]
    assert b"<html" in _get(f"{base}/events/stvincent/map").lower()
