"""The auth server's signing keys (its JWKS), kept current so that a key it revokes stops working.

- A background task fetches the JWKS at start, then again as often as the answer's
  `Cache-Control: max-age` says (every DEFAULT_REFRESH seconds without one, never more often than
  JWKS_REFRESH_COOLDOWN nor less than once every LONGEST_REFRESH), and replaces the key set: a key
  no longer published is forgotten.
- A token naming an unknown kid (a key rotated in since) makes a request fetch it at once, at most
  once per JWKS_REFRESH_COOLDOWN, so that made-up kids cannot hammer the auth server.
- A failed fetch keeps the keys already known. The background task tries again after 1 s, then
  2, 4 ... up to 60 s; meanwhile a request that needs the keys tries itself, at most once per
  ON_DEMAND_RETRY, so that tokens work again as soon as the auth server is back.
- Until a key set has been fetched once, a request with a token is a 503 (KeysUnavailable).
"""

import asyncio
import logging
import re
import time

import httpx
import jwt

from app.observability.logs import describe
from app.problems import KeysUnavailable

logger = logging.getLogger("app.http.keys")

DEFAULT_REFRESH = 300.0  # seconds between fetches when the answer has no max-age
LONGEST_REFRESH = 3600.0  # seconds the keys may go without a fetch, whatever max-age says
FIRST_RETRY = 1.0  # seconds before the background task tries again after a failure; doubled ...
LAST_RETRY = 60.0  # ... up to this
ON_DEMAND_RETRY = 1.0  # least seconds between a request's own tries while fetches fail

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:cache|store)\b", re.IGNORECASE)


def refresh_interval(cache_control: str | None, cooldown: float) -> float:
    """Seconds until the next fetch: the answer's `Cache-Control: max-age` (0 for no-cache or
    no-store), DEFAULT_REFRESH without one; within cooldown .. LONGEST_REFRESH."""
    directives = cache_control or ""
    found = _MAX_AGE.search(directives)
    age = float(found.group(1)) if found else DEFAULT_REFRESH
    if _NO_CACHE.search(directives):
        age = 0
    return min(max(age, cooldown), LONGEST_REFRESH)


class KeySet:
    """The JWKS's keys by kid."""

    def __init__(self, url: str, client: httpx.AsyncClient, cooldown: float) -> None:
        self._url = url
        self._client = client
        self._cooldown = cooldown
        self._keys: dict[str | None, jwt.PyJWK] | None = None  # None: never fetched
        self._fetched_at = float("-inf")  # when the keys were last fetched (monotonic)
        self._refresh_after = DEFAULT_REFRESH  # seconds from then to the next fetch
        self._failed_at: float | None = None  # when the last try failed, while tries fail
        self._failures = 0
        self._tries = 0
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named kid; None when the auth server does not publish it."""
        if self._keys is not None and kid in self._keys:
            return self._keys[kid]
        now = time.monotonic()
        if self._failed_at is not None:
            due = now - self._failed_at >= ON_DEMAND_RETRY
        else:
            due = now - self._fetched_at >= self._cooldown
        if due:
            await self._fetch_once()
        if self._keys is None:
            raise KeysUnavailable
        return self._keys.get(kid)

    async def refresh_periodically(self) -> None:
        """Run for the app's lifetime: fetch the keys when they are due, retry failures."""
        retry = FIRST_RETRY
        while True:
            wait = self._fetched_at + self._refresh_after - time.monotonic()
            if wait > 0:  # fetched recently, by this task or by a request
                await asyncio.sleep(wait)
                continue
            await self._fetch_once()
            if self._failed_at is None:
                retry = FIRST_RETRY
            else:
                await asyncio.sleep(retry)
                retry = min(retry * 2, LAST_RETRY)

    async def _fetch_once(self) -> None:
        """Fetch the keys, unless another caller was already doing so: then share its result."""
        tries = self._tries
        async with self._lock:
            if self._tries == tries:
                await self._fetch()

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            document = response.json()
            if not isinstance(document, dict):
                raise ValueError("the JWKS is not a JSON object")
            keys = jwt.PyJWKSet.from_dict(document).keys
        except Exception as error:  # whatever the reason, the keys already known are kept
            self._failed(error)
            return
        finally:
            self._tries += 1  # callers that waited for this try take its result
        known = set(self._keys or ())
        self._keys = {key.key_id: key for key in keys}
        self._fetched_at = time.monotonic()
        self._refresh_after = refresh_interval(
            response.headers.get("cache-control"), self._cooldown
        )
        if self._failed_at is not None:
            logger.warning("JWKS fetched again after %d failed tries", self._failures)
        self._failed_at = None
        self._failures = 0
        kids = set(self._keys)
        level = logging.INFO if kids != known else logging.DEBUG
        logger.log(level, "JWKS fetched: %d keys, next in %g s", len(kids), self._refresh_after)

    def _failed(self, error: Exception) -> None:
        self._failures += 1
        self._failed_at = time.monotonic()
        # One warning when fetches start failing; the tries after it are logged at debug.
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        logger.log(level, "JWKS fetch failed: %s", describe(error))
