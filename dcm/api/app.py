"""The application factory: ``create_app(settings)`` wires store, routers and errors."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from dcm import __version__
from dcm.api import alerts, events, ogc
from dcm.api.catalog import StoreCatalog
from dcm.api.dependencies import refuse_nul_characters
from dcm.api.errors import install_error_handlers
from dcm.settings import Settings

#: Responses smaller than this are sent uncompressed (gzip would not pay off).
GZIP_MINIMUM_SIZE = 1000
#: zlib's default level: nearly the size of level 9 on GeoJSON at a fraction of the CPU.
GZIP_LEVEL = 6


class ThreadStores:
    """One :class:`dcm.store.Store` per thread, opened on first use.

    A Store (one database connection) must not be shared between threads, while
    FastAPI runs sync routes on a thread pool. Attribute access is forwarded to the
    calling thread's own store, so routes simply call ``store.features(...)``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Any] = []

    def current(self) -> Any:
        """The calling thread's store."""
        store = getattr(self._local, "store", None)
        if store is None:
            from dcm.store import open_store

            store = open_store(self._settings)
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def close(self) -> None:
        """Close every store opened so far."""
        with self._lock:
            opened, self._opened = self._opened, []
        for store in opened:
            store.close()
        self._local = threading.local()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dcm API: OGC API – Features collections, events, alerts, gaps, ingest, web map.

    ``settings`` default to ``Settings()`` (``DCM_`` environment variables), read here
    and not at import time. The store is opened (and migrated) once now, so a bad
    database URL fails at start-up rather than on the first request.
    """
    settings = settings if settings is not None else Settings()
    stores = ThreadStores(settings)
    stores.current()  # open and migrate now

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        stores.close()

    app = FastAPI(
        title="dcm — Disaster Connectivity Mapper",
        version=__version__,
        description="Where people lost mobile connectivity after a disaster, on which "
        "networks, since when, and where service is coming back. Layers follow OGC API – "
        "Features; alerts are CAP 1.2; send an API key as `X-API-Key` or "
        "`Authorization: Bearer`.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_characters)],
    )
    app.state.settings = settings
    app.state.store = stores

    app.state.catalog = StoreCatalog(stores)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    install_error_handlers(app)  # its middleware goes outside gzip
    app.include_router(ogc.router)
    app.include_router(events.router)
    app.include_router(alerts.router)
    # The responder web map is an optional module of its own.
    if importlib.util.find_spec("dcm.api.webmap") is not None:
        webmap = importlib.import_module("dcm.api.webmap")
        app.include_router(webmap.router)
    return app
