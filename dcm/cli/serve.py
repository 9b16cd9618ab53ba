"""``dcm serve``: run the API and web map with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dcm.settings import Settings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--reload/--no-reload",
    default=False,
    show_default=True,
    help="Restart when the code changes (development).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each opens its own store connections).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store folder (sets DCM_DATA_DIR).",
)
@click.option("--database-url", help="sqlite:///... or postgresql://... (sets DCM_DATABASE_URL).")
@click.option(
    "--basemap",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Offline basemap, an .mbtiles or .pmtiles file served under /basemap/ (sets DCM_BASEMAP).",
)
@click.option(
    "--public-url",
    help="Root URL the public reaches this server at, for CAP and Atom links (sets "
    "DCM_PUBLIC_URL; default: DCM_PUBLIC_URL, else http://HOST:PORT).",
)
@click.option(
    "--limit-concurrency",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections per worker beyond which new ones get 503.",
)
def command(
    host: str,
    port: int,
    reload: bool,
    workers: int,
    log_level: str,
    data_dir: Path | None,
    database_url: str | None,
    basemap: Path | None,
    public_url: str | None,
    limit_concurrency: int,
) -> None:
    """Run the API and the responder web map.

    Settings come from DCM_ environment variables (DCM_DATA_DIR, DCM_DATABASE_URL, ...),
    read by each worker when it creates the app; --data-dir, --database-url and --basemap
    set them. An offline basemap (MBTiles or PMTiles, e.g. an OpenStreetMap extract) is
    checked before the server starts and drawn under the map's layers.
    An upload that sends no byte for DCM_CLIENT_IDLE_TIMEOUT_S seconds (60) gets 408;
    idle keep-alive connections close after 5 s; beyond --limit-concurrency open
    connections, new ones get 503.
    """
    import uvicorn

    # Through the environment, so that every worker (and a reloaded one) sees them.
    if data_dir is not None:
        os.environ["DCM_DATA_DIR"] = str(data_dir.resolve())
    if database_url is not None:
        os.environ["DCM_DATABASE_URL"] = database_url
    if basemap is not None:
        os.environ["DCM_BASEMAP"] = str(basemap.resolve())
    tiles = basemap if basemap is not None else Settings().basemap
    if tiles is not None:
        from dcm.ingest.tiles import open_tiles

        open_tiles(tiles).close()  # a bad file stops here with one line, not in a worker
    if public_url is not None:
        os.environ["DCM_PUBLIC_URL"] = public_url
    elif not os.environ.get("DCM_PUBLIC_URL"):
        # CAP and Atom links never come from a client's Host header: without a
        # configured URL, the address served.
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        os.environ["DCM_PUBLIC_URL"] = f"http://{shown}:{port}"
    uvicorn.run(
        "dcm.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        log_level=log_level,
        proxy_headers=False,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=5,
        # Stop waiting for requests in flight after this; a slow upload must not block a restart.
        timeout_graceful_shutdown=30,
    )
