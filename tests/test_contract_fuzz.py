"""Schemathesis against the contract file, on the in-process app over real PostgreSQL.

The examples, coverage and fuzzing phases run on every operation with every check; the state
machine follows the contract's links from a created task. The database is emptied before each
example and each stateful run, so that a failure reproduces from the seed in schemathesis.toml.
"""

import asyncio
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import truncate

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "task-operations.yaml"


@pytest.fixture(scope="module")
def fuzz_app(database_url: str) -> FastAPI:
    return create_app(database_url=database_url)


@pytest.fixture(scope="module")
def contract(fuzz_app: FastAPI) -> Any:
    schema = schemathesis.openapi.from_path(SPEC)
    schema.app = fuzz_app
    return schema


schema = schemathesis.pytest.from_fixture("contract")


@schema.parametrize()
def test_operations_keep_the_contract(case: Any, database_url: str) -> None:
    asyncio.run(truncate(database_url))
    case.call_and_validate()


@pytest.fixture
def state_machine(contract: Any, database_url: str) -> Any:
    class TaskLifecycle(contract.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            asyncio.run(truncate(database_url))

    return TaskLifecycle


def test_stateful_links_keep_the_contract(state_machine: Any) -> None:
    state_machine.run()
