"""The application factory: ``create_app(settings)`` wires store, routers and errors."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from anyio.lowlevel import RunVar
from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

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
#: Store connections lent to requests, per process (one more serves start-up). With
#: ``dcm serve --workers 3`` that is at most 33, well inside PostgreSQL's default of 100.
#: Requests beyond it wait for a free one; the routes wait on the database, so a few
#: cores gain nothing from more.
API_CONNECTIONS = 10


class _Lease:
    """The store lent to one request (opened or taken from the pool on first use)."""

    store: Any = None


class StorePool:
    """Stores for the API: at most ``size`` in use by requests, each by one at a time.

    A Store (one database connection) must not be used by two threads at once, and the
    threads that run a request's sync parts are many (anyio's pool also serves gzip and
    other helpers). So stores are lent to requests, not threads: :class:`StoreLeases`
    waits, without holding a thread, for one of ``size`` slots when a request arrives
    and returns the store when the response is sent. A request's own calls run one
    after the other, on whichever thread. Attribute access is forwarded to the current
    request's store, so routes simply call ``store.features(...)``; outside a request
    (start-up, scripts) the calling thread gets a store of its own.
    """

    def __init__(self, settings: Settings, *, size: int = API_CONNECTIONS) -> None:
        self._settings = settings
        self.size = size
        self._lease: ContextVar[_Lease | None] = ContextVar(f"dcm_lease_{id(self)}", default=None)
        # Slots are awaited on the serving event loop, so there is one semaphore per loop.
        self._slots: RunVar[anyio.Semaphore] = RunVar(f"dcm_store_slots_{id(self)}")
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._opened: list[Any] = []
        self._local = threading.local()

    def current(self) -> Any:
        """The current request's store, else the calling thread's own."""
        lease = self._lease.get()
        if lease is None:
            store = getattr(self._local, "store", None)
            if store is None:
                store = self._local.store = self._open()
            return store
        if lease.store is None:
            with self._lock:
                lease.store = self._idle.pop() if self._idle else None
            if lease.store is None:
                lease.store = self._open()
        return lease.store

    def _open(self) -> Any:
        from dcm.store import open_store

        store = open_store(self._settings)
        with self._lock:
            self._opened.append(store)
        return store

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[None]:
        """Lend a store to the code run inside (a request); waits for a free slot."""
        try:
            slots = self._slots.get()
        except LookupError:
            slots = anyio.Semaphore(self.size)
            self._slots.set(slots)
        async with slots:
            lease = _Lease()
            token = self._lease.set(lease)
            try:
                yield
            finally:
                self._lease.reset(token)
                if lease.store is not None:
                    with self._lock:
                        self._idle.append(lease.store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def close(self) -> None:
        """Close every store opened so far."""
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        for store in opened:
            store.close()
        self._local = threading.local()


class StoreLeases:
    """ASGI middleware: each HTTP request runs with a store lent by ``stores``."""

    def __init__(self, app: ASGIApp, *, stores: StorePool) -> None:
        self.app = app
        self.stores = stores

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.stores.lease():
            await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dcm API: OGC API – Features collections, events, alerts, gaps, ingest, web map.

    ``settings`` default to ``Settings()`` (``DCM_`` environment variables), read here
    and not at import time. The store is opened (and migrated) once now, so a bad
    database URL fails at start-up rather than on the first request.
    """
    settings = settings if settings is not None else Settings()
    stores = StorePool(settings)
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
    # Outermost: the lease lasts until the last byte of the response is sent.
    app.add_middleware(StoreLeases, stores=stores)
    app.include_router(ogc.router)
    app.include_router(events.router)
    app.include_router(alerts.router)
    # The responder web map is an optional module of its own.
    if importlib.util.find_spec("dcm.api.webmap") is not None:
        webmap = importlib.import_module("dcm.api.webmap")
        app.include_router(webmap.router)
    return app
