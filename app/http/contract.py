"""The contract file as the service uses it at run time: served as written, shown by /docs, and
read for the headers that browsers may send and read."""

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "task-operations.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Swagger UI, pinned and vendored by the fastapi-swagger package: /docs needs no CDN.
SWAGGER_UI = resources.files("fastapi_swagger") / "resources"
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


class Contract:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.text = path.read_text(encoding="utf-8")
        self.spec: dict[str, Any] = yaml.safe_load(self.text)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def _operations(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (path_item, operation)
            for path_item in self.spec["paths"].values()
            for method in METHODS
            if (operation := path_item.get(method))
        ]

    def response_headers(self) -> list[str]:
        """Every header that some answer of the contract declares."""
        names = {
            name
            for _, operation in self._operations()
            for response in operation.get("responses", {}).values()
            for name in self._resolve(response).get("headers", {})
        }
        return sorted(names)

    def request_headers(self) -> list[str]:
        """Every header parameter that some operation of the contract takes."""
        names = {
            parameter["name"]
            for path_item, operation in self._operations()
            for reference in [*path_item.get("parameters", []), *operation.get("parameters", [])]
            if (parameter := self._resolve(reference))["in"] == "header"
        }
        return sorted(names)

    def install_routes(self, app: FastAPI) -> None:
        """/openapi.yaml and /openapi.json serve the file itself; /docs shows it."""
        title = self.spec["info"]["title"]

        @app.get("/openapi.yaml", include_in_schema=False)
        async def contract_yaml() -> Response:
            return Response(self.text, media_type="application/yaml")

        @app.get("/openapi.json", include_in_schema=False)
        async def contract_json() -> Response:
            return JSONResponse(self.spec)

        @app.get("/docs", include_in_schema=False)
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=title,
                swagger_js_url="/docs/swagger-ui-bundle.js",
                swagger_css_url="/docs/swagger-ui.css",
                swagger_favicon_url="/docs/favicon-32x32.png",
                # No badge from the public validator service: the page makes no outside request.
                swagger_ui_parameters={"validatorUrl": None},
            )

        @app.get("/docs/{asset}", include_in_schema=False)
        async def docs_asset(asset: str) -> Response:
            if asset not in DOCS_ASSETS:
                raise HTTPException(status_code=404)
            return FileResponse(str(SWAGGER_UI / asset), media_type=DOCS_ASSETS[asset])
