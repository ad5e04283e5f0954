"""Schemathesis hooks for the contract fuzzing: `make fuzz` loads them with SCHEMATHESIS_HOOKS,
tests/test_contract_fuzz.py by importing this module.

An Idempotency-Key names one create: the contract asks clients for a value unique to each
create, and a key reused with another body is a 422 by design (tests/test_idempotency.py covers
reuse). The fuzzer draws keys from a small space and repeats them across bodies, so every
well-formed key it draws is made unique here, as a client makes them; malformed keys go out as
drawn, to be rejected.

A run in jwt mode carries one valid token. A request that carries it and gets a 401 means the
token stopped being valid during the run (it expired, or its key went away): every answer would
then be a 401, which the other checks accept. `valid_token_is_accepted` fails it instead.

If-Match and If-None-Match: the coverage phase draws header values from letters and digits only,
which no entity tag is made of, and can send such a value as a valid one. Handing the headers back
to the case makes schemathesis judge them against the contract's pattern again, as it does for
every value a hook changes: a value outside it is then a negative case, expected to be refused.
"""

import itertools
import os
import re
from typing import Any

import schemathesis

WELL_FORMED_KEY = re.compile(r"[\x21-\x7E]{1,255}")
PRECONDITIONS = {"if-match", "if-none-match"}
# The bearer tokens a run holds as valid: FUZZ_BEARER_TOKEN for `make fuzz`, added to by the tests.
VALID_TOKENS = {token for token in [os.environ.get("FUZZ_BEARER_TOKEN")] if token}
# Statuses answered to requests that carried a valid token, for the tests to look at.
ANSWERED_WITH_TOKEN: set[int] = set()
_serial = itertools.count()


@schemathesis.check
def valid_token_is_accepted(ctx: Any, response: Any, case: Any) -> None:
    """A request with the run's valid token is never refused as unauthenticated."""
    sent = response.request.headers.get("Authorization", "")
    if sent.removeprefix("Bearer ") not in VALID_TOKENS:
        return
    ANSWERED_WITH_TOKEN.add(response.status_code)
    if response.status_code == 401:
        raise AssertionError(
            "A request with the run's valid token got 401: the token stopped being valid"
        )


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and WELL_FORMED_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{key[:240]}.{next(_serial)}"
    if PRECONDITIONS & {name.lower() for name in headers}:
        case.headers = dict(headers)
