"""Schemathesis hooks for the contract fuzzing: `make fuzz` loads them with SCHEMATHESIS_HOOKS,
tests/test_contract_fuzz.py by importing this module.

An Idempotency-Key names one create: the contract asks clients for a value unique to each
create, and a key reused with another body is a 422 by design (tests/test_idempotency.py covers
reuse). The fuzzer draws keys from a small space and repeats them across bodies, so every
well-formed key it draws is made unique here, as a client makes them; malformed keys go out as
drawn, to be rejected.
"""

import itertools
import re
from typing import Any

import schemathesis

WELL_FORMED_KEY = re.compile(r"[\x21-\x7E]{1,255}")
_serial = itertools.count()


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and WELL_FORMED_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{key[:240]}.{next(_serial)}"
