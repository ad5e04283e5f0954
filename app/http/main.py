"""The app factory: the generated router wired to the handlers, the contract served as written."""

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.sdk.trace import TracerProvider

from app.config import Settings, get_settings
from app.db.database import open_database
from app.db.startup import prepare_database
from app.http.auth import Authenticator, Principal, authorize
from app.http.contract import Contract
from app.http.middleware import BodyGuard, Observe
from app.http.rate_limits import RateLimits
from app.observability.logs import access_lines
from app.observability.metrics import sample_pool_periodically, serve_metrics
from app.observability.telemetry import telemetry_config
from app.problems import install_problem_handlers
from app.tasks.handlers import Policy, TaskHandlers
from generated.router import create_router

YOUNG_COLLECTION_THRESHOLD = 10_000  # allocations between collections of the youngest generation


def get_handlers(request: Request) -> TaskHandlers:
    """The handlers for this request: those of the token's owner, or the lifespan's own."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        handlers: TaskHandlers = request.state.handlers
        return handlers
    return TaskHandlers(request.state.database, request.state.policy, email=principal.email)


def create_app(
    settings: Settings | None = None,
    database_url: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The app; `tracer_provider` replaces the global one (which OTEL_* variables configure)."""
    settings = settings or get_settings()
    url = database_url or settings.database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    if inspect.isabstract(TaskHandlers):
        missing = ", ".join(sorted(TaskHandlers.__abstractmethods__))
        raise TypeError(f"TaskHandlers does not implement: {missing}")

    jwt_mode = settings.auth_mode == "jwt"
    policy = Policy(
        require_if_match=settings.require_if_match,
        idempotency_ttl=settings.idempotency_ttl,
        max_tasks_per_user=settings.max_tasks_per_user,
        max_idempotency_keys_per_user=settings.max_idempotency_keys_per_user,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        database = await open_database(settings, url, tracer_provider)
        migration_url = settings.migration_database_url or url
        preparing = asyncio.create_task(prepare_database(database, settings, migration_url))
        http = httpx.AsyncClient(timeout=5.0)
        authenticator = Authenticator(settings, http) if jwt_mode else None
        sampling = asyncio.create_task(sample_pool_periodically(database))
        refreshing = asyncio.create_task(authenticator.refresh_keys()) if authenticator else None
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall requests for tens of milliseconds under load.
        gc.freeze()
        # A request allocates hundreds of objects that live as long as it does: at the default
        # threshold (700) the young generation is collected every few requests, for nothing.
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
        try:
            yield {
                "database": database,
                "policy": policy,
                "handlers": TaskHandlers(database, policy),
                "authenticator": authenticator,
            }
        finally:
            preparing.cancel()
            sampling.cancel()
            if refreshing is not None:
                refreshing.cancel()
                await asyncio.wait([refreshing])  # its fetch ends before the client closes
            if access_log is not None:
                access_log.flush()
            await http.aclose()
            await database.close()

    # No redirects: the contract has no trailing-slash paths, and a redirect would echo Host.
    access_log = access_lines(settings.access_log)
    app = FastAPI(
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        telemetry=telemetry_config(tracer_provider),
    )
    create_router(get_handlers, authorize if jwt_mode else None, router=app.router)
    contract = Contract()
    contract.install_routes(app)
    if settings.metrics and settings.metrics_port is None:  # else on a port of its own (server.py)
        app.add_api_route("/metrics", serve_metrics, methods=["GET"], name="metrics")
    install_problem_handlers(app)
    app.add_middleware(BodyGuard)
    app.add_middleware(RateLimits, settings=settings)
    if settings.cors_origins:
        # Browsers may send and read every header that the contract declares.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                *contract.request_headers(),
            ],
            expose_headers=[*contract.response_headers(), "X-Request-ID"],
        )
    app.add_middleware(Observe, access_log=access_log, metrics=settings.metrics)
    return app
