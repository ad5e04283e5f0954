"""What a web frontend relies on: CORS that lets scripts read every documented header, and /docs
that renders from the service alone."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.config import Settings
from tests.conftest import serving

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "task-operations.yaml"
ORIGIN = "https://app.example"


def _mappings(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping anywhere in the contract."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mappings(item)


def _response_headers(spec: dict[str, Any]) -> set[str]:
    """The names of the headers that answers declare (components/headers holds only templates)."""
    answers = [spec["paths"], spec["components"].get("responses", {})]
    return {
        name.lower()
        for node in _mappings(answers)
        if isinstance(node.get("headers"), dict)
        for name in node["headers"]
    }


def _header_parameters(spec: dict[str, Any]) -> set[str]:
    return {node["name"].lower() for node in _mappings(spec) if node.get("in") == "header"}


def _names(header: str) -> set[str]:
    return {name.strip().lower() for name in header.split(",") if name.strip()}


async def test_cors_allows_only_configured_origins(database_url: str) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    configured = Settings(cors_origins=ORIGIN, _env_file=None)
    for settings, allowed in ((configured, True), (Settings(_env_file=None), False)):
        async with serving(database_url, settings) as client:
            response = await client.options("/users/alice/tasks", headers=preflight)
            assert ("access-control-allow-origin" in response.headers) is allowed
            other = await client.get("/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    assert response.status_code == 405  # without CORS, OPTIONS is not an operation


async def test_scripts_can_read_every_header_the_contract_documents(database_url: str) -> None:
    documented = _response_headers(yaml.safe_load(SPEC.read_text()))
    assert {"location", "link", "retry-after", "www-authenticate"} <= documented
    settings = Settings(cors_origins=ORIGIN, _env_file=None)
    async with serving(database_url, settings) as client:
        created = await client.post(
            "/users/alice/tasks", json={"title": "x"}, headers={"Origin": ORIGIN}
        )
        assert created.status_code == 201
        exposed = _names(created.headers["access-control-expose-headers"])
        assert documented | {"x-request-id"} <= exposed
    async with serving("postgresql://postgres@127.0.0.1:1/nothing", settings) as client:
        unavailable = await client.get("/users/alice/tasks", headers={"Origin": ORIGIN})
        assert unavailable.status_code == 503
        assert "retry-after" in _names(unavailable.headers["access-control-expose-headers"])


async def test_preflight_allows_every_request_header_the_contract_documents(
    database_url: str,
) -> None:
    wanted = _header_parameters(yaml.safe_load(SPEC.read_text()))
    wanted |= {"authorization", "content-type", "x-request-id"}
    settings = Settings(cors_origins=ORIGIN, _env_file=None)
    async with serving(database_url, settings) as client:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            response = await client.options(
                "/users/alice/tasks",
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": ", ".join(sorted(wanted)),
                },
            )
            assert response.status_code == 200, (method, response.text)
            assert wanted <= _names(response.headers["access-control-allow-headers"]), method


async def test_docs_render_from_the_service_alone(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), "the page must not load anything from outside"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) >= 3  # the script, the stylesheet, the icon
    spec_url = re.search(r"url: '([^']+)'", page.text)
    assert spec_url is not None
    for url in [*assets, spec_url.group(1)]:
        assert url.startswith("/"), url
        response = await client.get(url)
        assert response.status_code == 200, url
        assert len(response.content) > 500, url
    bundle = await client.get("/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    missing = await client.get("/docs/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
