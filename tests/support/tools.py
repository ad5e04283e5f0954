"""A test whose tool is missing: skipped here, with the reason; in CI (CI set), failed."""

import os
from typing import NoReturn

import pytest


def tool_missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must install it")
    pytest.skip(reason)
