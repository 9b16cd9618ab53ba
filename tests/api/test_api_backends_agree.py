"""The same event gives the same API answers on SQLite and on PostgreSQL + PostGIS.

Each backend's run of the test records what callers read (every derived layer, the
event, gaps, alerts and their CAP documents); the run of the second backend compares its
answers with the first's. Wall-clock stamps and server ports are left out, and raw
measurements are compared without their ids (row ids follow each backend's insert order).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from dcm.api import create_app

EVENT = "stvincent"
LAYERS = ("outages", "cells", "grid", "coverage", "areas", "hazard", "alerts")
#: Keys whose values are the time of the request or of the last update run.
WALL_CLOCK = {"generated", "timeStamp", "updated"}
#: Answers recorded per backend during this session.
ANSWERS: dict[str, dict[str, Any]] = {}


def _normalised(value: Any, base_url: str) -> Any:
    """``value`` without wall-clock stamps, with the server's address as ``BASE``."""
    if isinstance(value, dict):
        return {k: _normalised(v, base_url) for k, v in value.items() if k not in WALL_CLOCK}
    if isinstance(value, list):
        return [_normalised(v, base_url) for v in value]
    if isinstance(value, str):
        return value.replace(base_url, "BASE")
    return value


def _items(http: httpx.Client, kind: str) -> dict[str, Any]:
    return http.get(f"/collections/{EVENT}-{kind}/items", params={"limit": 10000}).json()


def _answers(base_url: str, tokens: dict[str, str]) -> dict[str, Any]:
    """What an anonymous caller reads, and what needs a key: the grid and coverage without
    k-anonymity (analyst), every raw measurement (a viewer with grants)."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for kind in LAYERS:
            out[kind] = _items(http, kind)
            out[f"{kind} collection"] = http.get(f"/collections/{EVENT}-{kind}").json()
        starts = [f["properties"]["window_start"] for f in out["outages"]["features"]]
        busiest = max(starts, key=starts.count)
        out["gaps"] = http.get(f"/events/{EVENT}/gaps", params={"at": busiest}).json()
        out["event"] = http.get(f"/events/{EVENT}").json()
        alerts = http.get(f"/events/{EVENT}/alerts", params={"cancelled": "true"}).json()
        out["alert messages"] = alerts
        out["cap"] = [http.get(f"/alerts/{f['id']}.xml").text for f in alerts["features"]]
    with httpx.Client(
        base_url=base_url, timeout=60, headers={"X-API-Key": tokens["analyst"]}
    ) as http:
        out["analyst grid"] = _items(http, "grid")
        out["analyst coverage"] = _items(http, "coverage")
    with httpx.Client(
        base_url=base_url, timeout=60, headers={"X-API-Key": tokens["granted"]}
    ) as http:
        features = _items(http, "measurements")["features"]
    for feature in features:
        feature.pop("id")
        feature.pop("links", None)
    out["granted measurements"] = sorted(json.dumps(f, sort_keys=True) for f in features)
    return _normalised(out, base_url)


def test_answers_agree_across_backends(serve, populated) -> None:
    settings = populated.settings()
    answers = _answers(serve(lambda: create_app(settings)), populated.tokens)
    assert answers["outages"]["features"], "the sample event should have outages"
    assert answers["alert messages"]["features"], "the sample event should raise alerts"
    ANSWERS[populated.backend] = answers
    # The backend that runs first only records (its postgres run skips without a server).
    for backend, other in ANSWERS.items():
        if backend == populated.backend:
            continue
        differing = [key for key in answers if answers[key] != other.get(key)]
        assert not differing, f"{populated.backend} and {backend} differ in {differing}"
