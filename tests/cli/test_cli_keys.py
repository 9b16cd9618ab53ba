"""``dcm keys grant`` / ``dcm keys revoke``: grants by event, source and licence."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dcm.cli.main import EXIT_NOT_FOUND, EXIT_USER_ERROR
from dcm.settings import Settings
from dcm.store import open_store

from .livedata import START, run, write_measurements


def _readable(token: str) -> set[int]:
    """Dataset ids of the measurements the key reads, through the store's access rule."""
    with open_store(Settings()) as store:
        principal = store.authenticate(token)
        page = store.features("measurements", "vincent", limit=100_000, principal=principal)
    return {f["properties"]["dataset_id"] for f in page.features}


def _one_line_error(code: int, err: str, expected: int) -> str:
    assert code == expected, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_grant_follows_event_and_revoke(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["event", "create", "vincent", "--start", "2021-04-09T00:00Z"], capsys)[0] == 0
    code, out, _ = run(["keys", "create", "--name", "telco", "--role", "partner"], capsys)
    token = out.strip()
    assert code == 0
    grant = ["keys", "grant", "telco", "--event", "vincent"]
    code, out, _ = run([*grant, "--source", "a.csv"], capsys)
    assert code == 0, out
    assert "may read event vincent, source a.csv; no dataset yet" in out
    files = {}
    for name, seed in (("a.csv", 1), ("b.csv", 2)):
        files[name] = tmp_path / name
        write_measurements(files[name], START, 2, seed=seed)
        assert run(["ingest", "--event", "vincent", str(files[name])], capsys)[0] == 0
    with open_store(Settings()) as store:
        ids = {Path(d.source).name: d.id for d in store.list_datasets("vincent")}
    # The source is the path given to dcm ingest: a grant on the bare name matches only
    # a dataset whose source is that name.
    assert _readable(token) == set()
    code, out, _ = run(["keys", "grant", "telco", "--event", "vincent", "--source", "a"], capsys)
    assert f"no dataset yet (sources of the event: {files['a.csv']}, {files['b.csv']})" in out
    code, out, _ = run(["keys", "revoke", "telco", "--event", "vincent", "--source", "a"], capsys)
    assert code == 0
    code, out, _ = run(
        ["keys", "grant", "telco", "--event", "vincent", "--source", str(files["a.csv"])], capsys
    )
    assert code == 0 and f"1 dataset(s) now: {ids['a.csv']}" in out
    assert _readable(token) == {ids["a.csv"]}  # restricted rows of a.csv, never b.csv
    code, out, _ = run(
        ["keys", "grant", "telco", "--event", "vincent", "--source", str(files["a.csv"])], capsys
    )
    assert code == 0 and "already may read" in out

    code, out, _ = run(["keys", "list"], capsys)
    assert f"grant: event vincent, source {files['a.csv']}" in out
    code, out, _ = run(["keys", "list", "--json"], capsys)
    (key,) = json.loads(out)
    assert key["event_grants"] == [
        {"event": "vincent", "source": "a.csv", "licence": None},
        {"event": "vincent", "source": str(files["a.csv"]), "licence": None},
    ]

    code, out, _ = run(
        ["keys", "revoke", "telco", "--event", "vincent", "--source", str(files["a.csv"])], capsys
    )
    assert code == 0 and "no longer reads event vincent, source" in out
    assert _readable(token) == set()
    code, out, _ = run(["keys", "list", "--json"], capsys)
    assert json.loads(out)[0]["revoked_at"] is None  # the key itself stays active

    # Dataset grants work as before, through the same commands.
    code, out, _ = run(["keys", "grant", "telco", "--dataset", str(ids["b.csv"])], capsys)
    assert code == 0 and _readable(token) == {ids["b.csv"]}
    code, out, _ = run(["keys", "revoke", "telco", "--dataset", str(ids["b.csv"])], capsys)
    assert code == 0 and _readable(token) == set()

    with sqlite3.connect(data_dir / "dcm.sqlite") as db:
        audit = db.execute(
            "SELECT action, detail FROM audit_log WHERE action LIKE 'grant.%' ORDER BY id"
        ).fetchall()
    assert [a for a, _ in audit] == ["grant.add"] + ["grant.add", "grant.remove"] * 3
    assert json.loads(audit[3][1]) == {
        "event": "vincent",
        "source": str(files["a.csv"]),
        "licence": None,
    }


def test_grant_errors_are_one_line(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["event", "create", "vincent", "--start", "2021-04-09T00:00Z"], capsys)[0] == 0
    assert run(["keys", "create", "--name", "telco", "--role", "partner"], capsys)[0] == 0
    code, _, err = run(["keys", "grant", "nobody", "--event", "vincent"], capsys)
    assert "no API key 'nobody'" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "grant", "telco", "--event", "nowhere"], capsys)
    assert "no event 'nowhere'" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "revoke", "telco", "--event", "nowhere"], capsys)
    assert "no event 'nowhere'" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "revoke", "telco", "--event", "vincent"], capsys)
    assert "has no grant on event vincent" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "revoke", "telco", "--dataset", "7"], capsys)
    assert "has no grant on dataset 7" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "grant", "telco", "--dataset", "7"], capsys)
    assert "no dataset 7" in _one_line_error(code, err, EXIT_NOT_FOUND)
    code, _, err = run(["keys", "grant", "telco", "--source", "a.csv"], capsys)
    assert "need --event" in err and code == 2
    code, _, err = run(["keys", "grant", "telco"], capsys)
    assert "give --event" in err and code == 2
    code, _, err = run(["keys", "grant", "telco", "--event", "vincent", "--licence", ""], capsys)
    assert "licence of a grant must not be empty" in _one_line_error(code, err, EXIT_USER_ERROR)
    code, out, _ = run(["keys", "list", "--json"], capsys)
    assert json.loads(out)[0]["event_grants"] == []
