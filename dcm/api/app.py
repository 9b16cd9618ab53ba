"""The application factory: ``create_app(settings)`` wires store, routers and errors."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from anyio.lowlevel import RunVar
from fastapi import Depends, FastAPI, HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dcm import __version__
from dcm.api import alerts, apidocs, basemap, events, ogc
from dcm.api.catalog import StoreCatalog
from dcm.api.dependencies import refuse_nul_characters, refuse_unknown_query
from dcm.api.errors import install_error_handlers
from dcm.ingest.tiles import open_tiles
from dcm.settings import Settings

logger = logging.getLogger(__name__)

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
    """The store lent to one request (opened or taken from the pool on first use), and
    whether the request holds one of the pool's slots."""

    store: Any = None
    held: bool = False


class StorePool:
    """Stores for the API: at most ``size`` in use by requests, each by one at a time.

    A Store (one database connection) must not be used by two threads at once, and the
    threads that run a request's sync parts are many (anyio's pool also serves gzip and
    other helpers). So stores are lent to requests, not threads: :class:`StoreLeases`
    waits, without holding a thread, for one of ``size`` slots when a request arrives
    and gives it back as soon as the response starts (the body is ready by then), so a
    client that reads its response slowly holds no connection. A request that waits on
    the network in between (an upload body) gives its slot back meanwhile
    (:meth:`released`). A request's own calls run one after the other, on whichever
    thread. Attribute access is forwarded to the current request's store, so routes
    simply call ``store.features(...)``; outside a request (start-up, scripts) the
    calling thread gets a store of its own.
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
        if not lease.held:  # a bug: the request gave its slot back and still queries
            raise RuntimeError("the store was used by a request that holds no slot")
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

    def _semaphore(self) -> anyio.Semaphore:
        try:
            return self._slots.get()
        except LookupError:
            slots = anyio.Semaphore(self.size)
            self._slots.set(slots)
            return slots

    async def _take(self, lease: _Lease) -> None:
        await self._semaphore().acquire()
        lease.held = True

    def give_back(self, lease: _Lease | None = None) -> None:
        """Return the store and the slot of ``lease`` (the current request's by default);
        idempotent. Call on the event loop."""
        lease = lease if lease is not None else self._lease.get()
        if lease is None:
            return
        if lease.store is not None:
            with self._lock:
                self._idle.append(lease.store)
            lease.store = None
        if lease.held:
            lease.held = False
            self._semaphore().release()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[_Lease]:
        """Lend a store to the code run inside (a request); waits for a free slot."""
        lease = _Lease()
        await self._take(lease)
        token = self._lease.set(lease)
        try:
            yield lease
        finally:
            self._lease.reset(token)
            self.give_back(lease)

    @asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Give the current request's slot back while the code inside waits on the
        network (an upload body); take one again afterwards."""
        lease = self._lease.get()
        if lease is None or not lease.held:
            yield
            return
        self.give_back(lease)
        try:
            yield
        finally:
            await self._take(lease)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.current(), name)

    def close(self) -> None:
        """Close every store opened so far."""
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        for store in opened:
            store.close()
        self._local = threading.local()


class ClientTooSlow(Exception):
    """A client read none of its response for ``client_idle_timeout_s``."""


class StoreLeases:
    """ASGI middleware: each HTTP request runs with a store lent by ``stores``, given
    back when the response starts; an idle upload is cut short.

    No byte of the request body within ``idle_s`` answers 408. A response part the
    server cannot hand over for ``idle_s`` ends the request; uvicorn takes a whole
    (non-streamed) response into its send buffer at once, so an unread one waits there,
    holding no store, until the client reads or leaves.
    """

    def __init__(self, app: ASGIApp, *, stores: StorePool, idle_s: float) -> None:
        self.app = app
        self.stores = stores
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:  # waiting for a disconnect, not for the client's body
                return await receive()
            with anyio.move_on_after(self.idle_s) as scope_:
                message = await receive()
            if scope_.cancelled_caught:
                raise HTTPException(
                    408, f"no byte of the request body arrived for {self.idle_s:g} s"
                )
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        async with self.stores.lease() as lease:

            async def send_in_time(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.stores.give_back(lease)  # the body is ready: free the connection
                with anyio.move_on_after(self.idle_s) as scope_:
                    await send(message)
                if scope_.cancelled_caught:
                    raise ClientTooSlow(f"the client read nothing for {self.idle_s:g} s")

            try:
                await self.app(scope, receive_in_time, send_in_time)
            except ClientTooSlow as exc:
                logger.warning("%s %s: %s", scope.get("method"), scope.get("path"), exc)
            except RuntimeError as exc:  # Starlette wraps it once the response started
                if not isinstance(exc.__cause__, ClientTooSlow):
                    raise
                logger.warning("%s %s: %s", scope.get("method"), scope.get("path"), exc.__cause__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dcm API: OGC API – Features collections, events, alerts, gaps, ingest, web map.

    ``settings`` default to ``Settings()`` (``DCM_`` environment variables), read here
    and not at import time. The store is opened (and migrated) once now, so a bad
    database URL fails at start-up rather than on the first request.
    """
    settings = settings if settings is not None else Settings()
    # A bad basemap file fails here, before anything is opened, with one clear line.
    tiles = open_tiles(settings.basemap) if settings.basemap is not None else None
    stores = StorePool(settings)
    stores.current()  # open and migrate now
    events.sweep_uploads(settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        stores.close()
        if tiles is not None:
            tiles.close()

    app = FastAPI(
        title="dcm — Disaster Connectivity Mapper",
        version=__version__,
        description="Where people lost mobile connectivity after a disaster, on which "
        "networks, since when, and where service is coming back. Layers follow OGC API – "
        "Features; alerts are CAP 1.2; send an API key as `X-API-Key` or "
        "`Authorization: Bearer`.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_nul_characters)],
        # FastAPI's pages load Swagger UI and ReDoc from CDNs: dcm.api.apidocs serves
        # /docs from local files instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = stores
    app.state.basemap = tiles

    app.state.catalog = StoreCatalog(stores)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    install_error_handlers(app)  # its middleware goes outside gzip
    # Outermost: the lease lasts until the response starts (its body is ready then).
    app.add_middleware(StoreLeases, stores=stores, idle_s=settings.client_idle_timeout_s)
    # The API's own routes refuse query parameters they do not declare.
    strict = [Depends(refuse_unknown_query)]
    app.include_router(ogc.router, dependencies=strict)
    app.include_router(events.router, dependencies=strict)
    app.include_router(alerts.router, dependencies=strict)
    app.include_router(basemap.router)
    app.include_router(apidocs.router)
    # The responder web map is an optional module of its own.
    if importlib.util.find_spec("dcm.api.webmap") is not None:
        webmap = importlib.import_module("dcm.api.webmap")
        app.include_router(webmap.router)
    return app
