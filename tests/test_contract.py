"""The contract, the generated code and the implementation cannot drift apart."""

import inspect
import shutil
import subprocess
from abc import abstractmethod
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import yaml
from fastapi.routing import APIRoute

from app.http.main import create_app
from app.tasks.handlers import TaskHandlers
from generated.handlers import OperationHandlers
from generated.router import OPERATION_IDS

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "task-operations.yaml"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _contract_operations() -> dict[str, tuple[str, str]]:
    spec = yaml.safe_load(SPEC.read_text())
    return {
        operation["operationId"]: (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_every_operation_has_a_route_and_a_handler() -> None:
    operations = _contract_operations()
    assert sorted(OPERATION_IDS) == sorted(operations)
    app = create_app(database_url="postgresql://unused@127.0.0.1/unused")
    routes = {
        route.operation_id: (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.operation_id
        for method in route.methods or ()
    }
    assert routes == operations
    abstract = OperationHandlers.__abstractmethods__
    assert len(abstract) == len(operations)
    assert not inspect.isabstract(TaskHandlers)


def test_a_missing_handler_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    class Incomplete(TaskHandlers):
        @abstractmethod
        async def delete_task(
            self, *, if_match: str | None, user_id: str, task_id: UUID
        ) -> None: ...

    monkeypatch.setattr("app.http.main.TaskHandlers", Incomplete)
    with pytest.raises(TypeError, match="delete_task"):
        create_app(database_url="postgresql://unused@127.0.0.1/unused")


async def test_the_contract_file_is_served_as_written(client: httpx.AsyncClient) -> None:
    as_yaml = await client.get("/openapi.yaml")
    assert as_yaml.status_code == 200
    assert as_yaml.text == SPEC.read_text()
    as_json = await client.get("/openapi.json")
    assert as_json.json() == yaml.safe_load(SPEC.read_text())
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


def test_check_generated_fails_after_a_contract_edit(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".data",
            ".git",
            "reports",
            ".*cache",
            "__pycache__",
            "node_modules",
            ".build",
            "dist",
        ),
    )
    (copy / ".venv").symlink_to(ROOT / ".venv")
    if (ROOT / "clients" / "node_modules").exists():
        (copy / "clients" / "node_modules").symlink_to(ROOT / "clients" / "node_modules")
    check = ["make", "-s", "check-generated"]
    assert subprocess.run(check, cwd=copy, capture_output=True, check=False).returncode == 0
    spec = copy / "openapi" / "task-operations.yaml"
    spec.write_text(spec.read_text().replace("maxLength: 200", "maxLength: 250"))
    drift = subprocess.run(check, cwd=copy, capture_output=True, text=True, check=False)
    assert drift.returncode != 0
    assert "max_length=250" in drift.stdout
    generate = subprocess.run(
        ["make", "-s", "generate"], cwd=copy, capture_output=True, check=False
    )
    assert generate.returncode == 0
    assert subprocess.run(check, cwd=copy, capture_output=True, check=False).returncode == 0
