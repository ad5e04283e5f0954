"""Rate limits: each user has a budget of reads and one of writes, and a bound on the requests it
has in flight in one worker; a request without valid credentials spends its client address's.

The algorithm and its storage are the `limits` library's: a sliding window counter, kept in the
worker's memory, or in Redis (RATE_LIMIT_STORAGE_URL) where workers and instances share it. When
Redis cannot be reached, requests are let through (fail open): a rate limit protects the service,
and an outage of its counters is no reason to refuse the users it protects. One log line marks the
start of such an outage and one its end; `rate_limit_storage_failures_total` counts the requests
let through meanwhile.

A request costs one unit of its budget, and one more for every RATE_LIMIT_COST_MS (25 ms) its
statements ran in the database, charged when it has been answered (up to what is left): requests
differ a hundredfold in what they cost (a get against a search through 10,000 long tasks), and a
budget of requests alone lets one user's dearest requests, sent within it, keep the database busy
for everyone. The time counted is the statements' own, not the request's: a busy service, whose
requests wait for a worker or a connection, charges no one for that wait.

Every answer to a task operation carries the budget it spent, as the IETF RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy: "reads";q=20;w=1` and
`RateLimit: "reads";r=17;t=1`. Over budget, the answer is 429 with Retry-After, sent a second
late (_refuse), so that a client that does not wait costs the worker one refusal a second per
connection.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.db.database import TimeInDatabase, time_in_database
from app.observability.metrics import RATE_LIMIT_STORAGE_FAILURES
from app.problems import DomainError, problem_response

logger = logging.getLogger("app.http.rate_limits")

READ_METHODS = frozenset({"GET", "HEAD"})
REDIS_TIMEOUT = 0.25  # seconds: a Redis that does not answer costs a request no more than this
REDIS_RETRY_INTERVAL = 1.0  # seconds between attempts to reach Redis during its outage
IN_FLIGHT_RETRY_AFTER = "1"
REFUSAL_DELAY = 1.0  # seconds a 429 waits before it is sent (_refuse)
SWEEP_INTERVAL = 1.0  # seconds between sweeps of expired counters out of the worker's memory


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    item: RateLimitItem
    policy: bytes  # the RateLimit-Policy field's value


def budget(name: str, value: str) -> Budget | None:
    """`N/second`, `N/minute` or `N/hour` as a budget; None for `off`."""
    if value == "off":
        return None
    item = parse(value)
    window = item.get_expiry()
    return Budget(name, item, f'"{name}";q={item.amount};w={window}'.encode())


class SweptMemoryStorage(MemoryStorage):
    """limits' memory storage, sweeping out expired counters at most once per SWEEP_INTERVAL.

    The library starts a sweep of every counter after each hit once the last one has ended: with
    10,000 users that is 1.4 ms of CPU per request. A counter is checked for expiry whenever it is
    read, so sweeping less often only keeps expired counters in memory a little longer.
    """

    _next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802  (the library's name)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Spent:
    allowed: bool
    remaining: int
    reset: int  # seconds until the budget has room again


class Counters:
    """The `limits` limiter over its storage, failing open while the storage is unreachable."""

    def __init__(self, storage_url: str | None) -> None:
        storage: Storage
        if storage_url:
            storage = RedisStorage(
                "async+" + storage_url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="task-operations",
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        else:
            storage = SweptMemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._outage_since: float | None = None
        self._next_attempt = 0.0
        self._let_through = 0

    async def spend(self, spent_on: Budget, who: tuple[str, str]) -> Spent | None:
        """One unit of `spent_on` for `who`; None when the counters cannot be reached."""
        if self._outage_since is not None and time.monotonic() < self._next_attempt:
            self._failed_open(None)
            return None
        try:
            allowed = await self._limiter.hit(spent_on.item, *who)
            stats = await self._limiter.get_window_stats(spent_on.item, *who)
        except StorageError as error:
            self._failed_open(error)
            return None
        if self._outage_since is not None:
            logger.warning(
                "rate limit storage reachable again after %.1f s; %d requests were let through "
                "without a rate limit",
                time.monotonic() - self._outage_since,
                self._let_through,
            )
            self._outage_since = None
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Spent(allowed, stats.remaining, reset)

    async def charge(self, spent_on: Budget, who: tuple[str, str], units: int) -> None:
        """`units` more of `spent_on` for `who`, after the request (its time beyond its first
        unit), or what is left of the budget when that is less: the limiter takes nothing of a
        cost that does not fit. Nothing while the counters cannot be reached."""
        if self._outage_since is not None:
            return
        try:
            left = (await self._limiter.get_window_stats(spent_on.item, *who)).remaining
            if units := min(units, left):
                await self._limiter.hit(spent_on.item, *who, cost=units)
        except StorageError as error:
            self._failed_open(error, let_through=False)

    def _failed_open(self, error: StorageError | None, *, let_through: bool = True) -> None:
        if let_through:
            RATE_LIMIT_STORAGE_FAILURES.inc()
            self._let_through += 1
        now = time.monotonic()
        if error is not None:
            self._next_attempt = now + REDIS_RETRY_INTERVAL
            if self._outage_since is None:
                self._outage_since = now
                self._let_through = 0
                cause = type(error.storage_error).__name__
                logger.error(
                    "rate limit storage unreachable (%s): requests are let through without a "
                    "rate limit until it is back",
                    cause,
                )


class RateLimits:
    """ASGI middleware in front of the task operations (paths under /users/).

    Who spends: in jwt mode, the token's subject, verified here once for the whole request (the
    operation's own authorization reads the outcome from the request's state); without valid
    credentials, the client's address. In `none` mode, the path's user.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self._reads = budget("reads", settings.rate_limit_reads)
        self._writes = budget("writes", settings.rate_limit_writes)
        self._counters = Counters(settings.rate_limit_storage_url)
        self._max_in_flight = settings.max_requests_in_flight_per_user
        # Seconds its statements ran in the database that cost a request one more unit; 0: never.
        self._time_unit = settings.rate_limit_cost_ms / 1000
        self._in_flight: dict[tuple[str, str], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/users/"):
            await self.app(scope, receive, send)
            return
        who = await self._identify(scope)
        in_flight = self._in_flight.get(who, 0)
        if in_flight >= self._max_in_flight:
            detail = (
                f"At most {self._max_in_flight} requests of one user are served at once; retry "
                "when an earlier one has been answered."
            )
            headers = {"Retry-After": IN_FLIGHT_RETRY_AFTER}
            await _refuse(problem_response(429, detail, headers), scope, receive, send)
            return
        self._in_flight[who] = in_flight + 1  # with no await since it was read
        try:
            await self._spend_and_serve(who, scope, receive, send)
        finally:
            left = self._in_flight.pop(who) - 1
            if left:
                self._in_flight[who] = left

    async def _spend_and_serve(
        self, who: tuple[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        spent_on = self._reads if scope["method"] in READ_METHODS else self._writes
        fields: list[tuple[bytes, bytes]] = []
        spent = None
        if spent_on is not None and (spent := await self._counters.spend(spent_on, who)):
            name = spent_on.name.encode()
            fields = [
                (b"ratelimit-policy", spent_on.policy),
                (b"ratelimit", b'"%s";r=%d;t=%d' % (name, spent.remaining, spent.reset)),
            ]
            if not spent.allowed:
                retry = str(max(1, spent.reset))
                detail = f"The {spent_on.name} budget of this client is spent; retry in {retry} s."
                refusal = problem_response(429, detail, {"Retry-After": retry})
                refusal.raw_headers.extend(fields)
                await _refuse(refusal, scope, receive, send)
                return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start" and fields:
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        spent_in_database = TimeInDatabase()
        token = time_in_database.set(spent_in_database)
        try:
            await self.app(scope, receive, send_with_fields)
        finally:
            time_in_database.reset(token)
        if not (self._time_unit and spent_on is not None and spent is not None):
            return
        if beyond := int(spent_in_database.seconds / self._time_unit):
            await self._counters.charge(spent_on, who, beyond)

    async def _identify(self, scope: Scope) -> tuple[str, str]:
        state = scope.setdefault("state", {})
        authenticator = state.get("authenticator")
        if authenticator is None:
            return "user", scope["path"].split("/", 3)[2]
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        try:
            principal = await authenticator.authenticate(authorization.decode("latin-1") or None)
        except DomainError as refusal:
            state["refusal"] = refusal  # the operation's authorization answers with it
            client = scope.get("client")
            return "address", client[0] if client else "unknown"
        state["principal"] = principal
        return "user", principal.user_id


async def _refuse(refusal: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """A 429, sent after REFUSAL_DELAY: a client that ignores Retry-After and sends again at once
    gets one refusal per connection per REFUSAL_DELAY, instead of as many as the worker can write
    (measured: one user's two connections flooding creates took 3,800 refusals a second from the
    worker, and the other users' p95 went from 32 to 921 ms)."""
    await asyncio.sleep(REFUSAL_DELAY)
    await refusal(scope, receive, send)
