"""The generator, with our templates, on a probe contract (tests/data/formats.yaml) that holds one
field of every format a contract can use in a path, a query, a header and a body: generated,
served, and sent valid and invalid values. A valid value reaches the handler as its type; an
invalid one is a 422 naming the field, exactly as JSON Schema says. Its TypeScript types take
the same values (Node's tools, where they are installed; CI has them)."""

import importlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import JSONResponse

from app.problems import install_problem_handlers
from tests.support.tools import tool_missing

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "data" / "formats.yaml"
NODE_BIN = ROOT / "clients" / "node_modules" / ".bin"
DAY, PROBE_ID = "2026-12-24", "0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11"
VALID: dict[str, Any] = {
    "on": "2026-12-24",
    "at": "2026-12-24T10:00:00.123456+01:00",
    "ref": "0B9F5A8E-3F4C-4D8A-9A53-2C1D6F0E7B11",
    "mail": "ada@example.com",
    "link": "https://example.com/tasks?done=1",
    "small": 7,
    "big": 9007199254740993,
    "ratio": 1.5,
    "precise": -2.25e-3,
}
# What the handler receives for each field: a value of this type, equal to the one sent.
RECEIVED = {
    "on": "date",
    "at": "datetime",
    "ref": "UUID",
    "mail": "str",
    "link": "str",
    "small": "int",
    "big": "int",
    "ratio": "float",
    "precise": "float",
}
INVALID: dict[str, list[Any]] = {
    "on": ["0", "1766534400", "2026-12-24T00:00:00", "2026-13-01", "24/12/2026", "20261224"],
    "at": ["1766534400", "2026-12-24T10:00:00", "2026-12-24", "2026-12-24 10:00:00Z"],
    "ref": ["0b9f5a8e3f4c4d8a9a532c1d6f0e7b11", "{0b9f5a8e-3f4c-4d8a-9a53-2c1d6f0e7b11}", "x"],
    "mail": ["ada", "ada@", "@example.com"],
    "link": ["example.com/tasks", "not a uri", "//example.com"],
    "small": ["1.5", "x", "7 "],
    "big": ["1e3", "0x10"],
    "ratio": ["x", "1,5", "NaN"],
    "precise": ["", "inf"],
}
# In a JSON body a value also has a JSON type: a number where text is due, or text for a number.
INVALID_IN_BODY: dict[str, list[Any]] = {
    "on": [20261224, None],
    "at": [1766534400],
    "small": ["7", 1.5, True],
    "ratio": ["1.5"],
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The probe's package, generated as `make generate` generates the service's."""
    directory = tmp_path_factory.mktemp("probe")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "generate-to",
            f"SPEC={PROBE}",
            f"OUTPUT={directory}/probe",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("probe.router")
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == "probe"]:
            del sys.modules[name]


@pytest.fixture(scope="module")
async def probe(generated: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    handlers = importlib.import_module("probe.handlers")

    class Echo(handlers.OperationHandlers):  # type: ignore[name-defined, misc]
        async def probe(self, **values: Any) -> JSONResponse:
            body = values.pop("body").model_dump(exclude_unset=True)
            return JSONResponse(
                {
                    place: {name: [type(v).__name__, str(v)] for name, v in found.items()}
                    for place, found in (("parameters", values), ("body", body))
                }
            )

    app = FastAPI()
    echo = Echo()
    generated.create_router(lambda request: echo, None, router=app.router)
    install_problem_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        yield client


def _query(values: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in values.items()}


async def test_valid_values_reach_the_handler_as_their_types(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        f"/probes/{DAY}/{PROBE_ID}",
        params=_query(VALID),
        headers={"X-Since": VALID["at"]},
        json=VALID,
    )
    assert response.status_code == 200, response.text
    echoed = response.json()
    for place in ("parameters", "body"):
        for name, kind in RECEIVED.items():
            assert echoed[place][name][0] == kind, (place, name)
    assert echoed["parameters"]["day"] == ["date", DAY]
    assert echoed["parameters"]["probe_id"] == ["UUID", PROBE_ID]
    assert echoed["parameters"]["x_since"][0] == "datetime"
    assert echoed["body"]["big"] == ["int", str(VALID["big"])]
    assert echoed["body"]["link"] == ["str", VALID["link"]]  # as sent, not rewritten


@pytest.mark.parametrize(
    ("field", "value"), [(field, value) for field, values in INVALID.items() for value in values]
)
async def test_an_invalid_value_is_a_422_naming_the_field(
    probe: httpx.AsyncClient, field: str, value: Any
) -> None:
    for location in ("query", "body"):
        response = await probe.post(
            f"/probes/{DAY}/{PROBE_ID}",
            params=_query({field: value}) if location == "query" else None,
            json={field: value} if location == "body" else {},
        )
        assert response.status_code == 422, (location, field, value, response.text)
        errors = response.json()["errors"]
        assert [(e["location"], e["field"]) for e in errors] == [(location, field)], errors


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in INVALID_IN_BODY.items() for value in values],
)
async def test_a_json_value_of_another_type_is_a_422(
    probe: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await probe.post(f"/probes/{DAY}/{PROBE_ID}", json={field: value})
    assert response.status_code == 422, response.text
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [("body", field)]


@pytest.mark.parametrize(
    ("day", "probe_id", "field"),
    [("0", PROBE_ID, "day"), ("2026-12-24T00:00:00", PROBE_ID, "day"), (DAY, "nope", "probe_id")],
)
async def test_an_invalid_path_value_is_a_422(
    probe: httpx.AsyncClient, day: str, probe_id: str, field: str
) -> None:
    response = await probe.post(f"/probes/{day}/{probe_id}", json={})
    assert response.status_code == 422
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [("path", field)]


async def test_an_invalid_header_is_a_422(probe: httpx.AsyncClient) -> None:
    response = await probe.post(
        f"/probes/{DAY}/{PROBE_ID}", json={}, headers={"X-Since": "1766534400"}
    )
    assert response.status_code == 422
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [
        ("header", "X-Since")
    ]


FLOW = """
import type { components, operations } from "./probe";

type Formats = components["schemas"]["Formats"];
type Query = operations["probe"]["parameters"]["query"];

export const body: Formats = %(body)s;
export const query: Query = { on: "2026-12-24", small: 7, ratio: 1.5, mail: "ada@example.com" };
// @ts-expect-error a date is text in JSON
export const numberForDate: Formats = { on: 20261224 };
// @ts-expect-error an integer is a number, not text
export const textForInteger: Formats = { small: "7" };
"""


TSC_OPTIONS = ("--strict", "--noEmit", "--target", "es2022")
STRICT_MODULES = ("--module", "es2022", "--moduleResolution", "bundler")


def test_the_typescript_types_take_the_same_values(tmp_path: Path) -> None:
    tools = [NODE_BIN / "openapi-typescript", NODE_BIN / "tsc"]
    if not all(tool.exists() for tool in tools):
        tool_missing("the Node tools are not installed here (make node-install)")
    subprocess.run(
        [str(tools[0]), str(PROBE), "--output", str(tmp_path / "probe.ts")],
        check=True,
        capture_output=True,
    )
    (tmp_path / "flow.ts").write_text(FLOW % {"body": json.dumps(VALID)})
    compiled = subprocess.run(
        [str(tools[1]), *TSC_OPTIONS, *STRICT_MODULES, str(tmp_path / "flow.ts")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
