"""``dcm serve``: run the API and web map with uvicorn."""

from __future__ import annotations

import click


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
def command(host: str, port: int, reload: bool, workers: int, log_level: str) -> None:
    """Run the API and the responder web map.

    Settings come from DCM_ environment variables (DCM_DATA_DIR, DCM_DATABASE_URL, ...),
    read when the app is created.
    """
    import uvicorn

    uvicorn.run(
        "dcm.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        log_level=log_level,
        proxy_headers=False,
    )
