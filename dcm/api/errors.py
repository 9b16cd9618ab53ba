"""The one mapping of dcm errors to HTTP, as RFC 9457 problem details.

Routes never catch domain errors: they raise the :mod:`dcm.errors` classes and the
handlers registered here turn them into ``application/problem+json`` responses. Anything
not deliberately raised becomes a 500 with a generic message, so a client never sees a
stack trace, a file path or SQL text; the details go to the server log.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dcm.errors import (
    AuthenticationRequired,
    Conflict,
    DCMError,
    IngestError,
    InputTooLarge,
    NotFound,
    ParameterError,
    PermissionDenied,
    SchemaError,
    StoreBusy,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

#: dcm error class -> HTTP status; looked up along the class's MRO, so subclasses
#: (``AuthenticationRequired`` is a ``PermissionDenied``) take their own entry first.
DEFAULT_STATUS_CODES: dict[type[Exception], int] = {
    AuthenticationRequired: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    ParameterError: 400,
    IngestError: 422,
    InputTooLarge: 413,
    SchemaError: 422,
    StoreBusy: 503,
}

#: Seconds a client is asked to wait (``Retry-After``) when the store is busy.
RETRY_AFTER_S = 5

INTERNAL_ERROR_DETAIL = "The server could not complete the request; the error has been logged."


class ProblemResponse(JSONResponse):
    """A JSON response with the RFC 9457 media type."""

    media_type = PROBLEM_MEDIA_TYPE


def status_for(exc: BaseException) -> int:
    """HTTP status of an exception: its first class found in :data:`DEFAULT_STATUS_CODES`."""
    for cls in type(exc).__mro__:
        status = DEFAULT_STATUS_CODES.get(cls)
        if status is not None:
            return status
    return 500


def problem(
    status: int,
    *,
    detail: str,
    type_: str = "about:blank",
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A problem details response (``type``, ``title``, ``status``, ``detail``)."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def _problem_type(exc: DCMError) -> str:
    # urn:dcm:problem:not-found, urn:dcm:problem:permission-denied, ...
    name = type(exc).__name__
    kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
    return f"urn:dcm:problem:{kebab}"


async def dcm_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Deliberate dcm errors: status from the mapping, message from the exception."""
    assert isinstance(exc, DCMError)
    status = status_for(exc)
    if isinstance(exc, StoreBusy):  # its message holds no SQL nor path: say it
        return problem(
            status,
            detail=str(exc),
            type_=_problem_type(exc),
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if status >= 500:
        # A StoreError or another internal failure: its text may hold SQL or paths.
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(status, detail=INTERNAL_ERROR_DETAIL, instance=request.url.path)
    headers = {"WWW-Authenticate": 'Bearer realm="dcm"'} if status == 401 else None
    return problem(
        status,
        detail=str(exc),
        type_=_problem_type(exc),
        instance=request.url.path,
        headers=headers,
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Every other exception: logged with its traceback, answered with a generic 500."""
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, detail=INTERNAL_ERROR_DETAIL, instance=request.url.path)


async def http_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Starlette's own errors (unknown route, wrong method) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code,
        detail=str(exc.detail),
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def validation_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """Invalid query, path or header parameters: 400, as OGC API – Features asks."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"parameter": ".".join(str(p) for p in err.get("loc", ())[1:]), "reason": err.get("msg")}
        for err in exc.errors()
    ]
    detail = "; ".join(f"{e['parameter']}: {e['reason']}" for e in errors) or "invalid request"
    return problem(400, detail=detail, instance=request.url.path, errors=errors)


class InternalErrorMiddleware:
    """Answer unexpected exceptions with the generic 500 problem and keep the connection.

    Starlette's outermost error middleware re-raises after responding, which makes the
    server drop a keep-alive connection; here the error is logged and answered instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # too late for a problem response
                raise
            response = await unexpected_error_handler(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app`` (once, in :func:`dcm.api.create_app`)."""
    app.add_exception_handler(DCMError, dcm_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    app.add_middleware(InternalErrorMiddleware)
