"""The application factory: ``create_app(settings)`` wires store, routers and errors."""

from __future__ import annotations

import importlib
import importlib.util
import logging
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
from dcm.api import alerts, apidocs, basemap, events, grants, ogc
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
#: Store connections lent to requests, per process (one more serves start-up and scripts:
#: the engine's pool overflow). With
#: ``dcm serve --workers 3`` that is at most 33, well inside PostgreSQL's default of 100.
#: Requests beyond it wait for a free one; the routes wait on the database, so a few
#: cores gain nothing from more.
API_CONNECTIONS = 10


class _Lease:
    """What one request holds: a binding to a pooled connection (checked out on first
    use), and whether the request holds one of the slots."""

    binding: Any = None
    held: bool = False


class StorePool:
    """The API's store, its pooled connections lent to requests, not threads.

    One :class:`~dcm.store.Store` serves every request; its SQLAlchemy engine pools at
    most ``size`` connections for requests (plus one for start-up and scripts). The
    threads that run a request's sync parts are many (anyio's pool also serves gzip and
    other helpers), so connections are bound to requests: :class:`StoreLeases` waits,
    without holding a thread, for one of ``size`` slots when a request arrives, the
    request's first query checks a connection out of the engine's pool, and both go back
    as soon as the response starts (the body is ready by then), so a client that reads
    its response slowly holds no connection. A request that waits on the network in
    between (an upload body) gives them back meanwhile (:meth:`released`). Attribute
    access is forwarded to the store, so routes simply call ``store.features(...)``.
    """

    def __init__(self, settings: Settings, *, size: int = API_CONNECTIONS) -> None:
        from dcm.store import open_store

        self.size = size
        self.store = open_store(settings, pool_size=size, max_overflow=1)
        self.store.db.release()  # the start-up connection goes back to the pool
        self._lease: ContextVar[_Lease | None] = ContextVar(f"dcm_lease_{id(self)}", default=None)
        # Slots are awaited on the serving event loop, so there is one semaphore per loop.
        self._slots: RunVar[anyio.Semaphore] = RunVar(f"dcm_store_slots_{id(self)}")

    def current(self) -> Any:
        """The store (a request that gave its slot back may not use it)."""
        lease = self._lease.get()
        if lease is not None and not lease.held:
            raise RuntimeError("the store was used by a request that holds no slot")
        return self.store

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
        lease.binding.usable = True

    def give_back(self, lease: _Lease | None = None) -> None:
        """Return the connection and the slot of ``lease`` (the current request's by
        default); idempotent. Call on the event loop."""
        lease = lease if lease is not None else self._lease.get()
        if lease is None:
            return
        self.store.db.release(lease.binding, usable=False)
        if lease.held:
            lease.held = False
            self._semaphore().release()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[_Lease]:
        """Lend a connection to the code run inside (a request); waits for a free slot."""
        lease = _Lease()
        with self.store.db.bound() as binding:
            lease.binding = binding
            binding.usable = False
            await self._take(lease)
            token = self._lease.set(lease)
            try:
                yield lease
            finally:
                self._lease.reset(token)
                self.give_back(lease)

    @asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Give the current request's connection and slot back while the code inside
        waits on the network (an upload body); take a slot again afterwards."""
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
        """Close every connection and the engine's pool."""
        self.store.close()


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
    stores = StorePool(settings)  # opens and migrates the store now
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
    app.include_router(grants.router, dependencies=strict)
    app.include_router(alerts.router, dependencies=strict)
    app.include_router(basemap.router)
    app.include_router(apidocs.router)
    # The responder web map is an optional module of its own.
    if importlib.util.find_spec("dcm.api.webmap") is not None:
        webmap = importlib.import_module("dcm.api.webmap")
        app.include_router(webmap.router)
    return app
