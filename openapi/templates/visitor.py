"""Template variables that fastapi-code-generator does not provide on its own."""

import pprint
import re
from pathlib import Path
from typing import Any

from fastapi_code_generator.parser import OpenAPIParser, snakecase

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CONSTRAINED = {"constr": "str", "conint": "int"}
# Formats the contract's schema checks, kept as the text sent (see the models' template).
AS_TEXT = {"EmailStr": "str", "AnyUrl": "str"}


def _secured_operations(raw: dict[str, Any]) -> set[str]:
    """operationIds whose effective security requirement is not empty."""
    default = raw.get("security", [])
    return {
        operation["operationId"]
        for path_item in raw.get("paths", {}).values()
        for method in METHODS
        if (operation := path_item.get(method)) and operation.get("security", default)
    }


def _resolve(raw: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = raw
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _inlined(raw: dict[str, Any], node: Any) -> Any:
    """`node` with every $ref replaced by what it names (the contract has no recursive schema)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inlined(raw, _resolve(raw, node))
        return {key: _inlined(raw, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(raw, item) for item in node]
    return node


def _request_schemas(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """operationId -> the JSON Schemas a request must match, from the contract alone: one object
    per parameter location (`path`, `query`, `header`; header names in lower case, with the
    contract's spelling in `names`) and the body's (`body`, None without one)."""
    found: dict[str, dict[str, Any]] = {}
    for path_item in raw.get("paths", {}).values():
        for method in METHODS:
            if not (operation := path_item.get(method)):
                continue
            schemas: dict[str, Any] = {"names": {}, "body": None, "body_required": False}
            for location in ("path", "query", "header"):
                schemas[location] = {"type": "object", "properties": {}, "required": []}
            for reference in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
                parameter = _resolve(raw, reference)
                location, name = parameter["in"], parameter["name"]
                if location == "header":
                    schemas["names"][name.lower()] = name
                    name = name.lower()
                component = schemas[location]
                component["properties"][name] = _inlined(raw, parameter.get("schema", {}))
                if parameter.get("required") or location == "path":
                    component["required"].append(name)
            if body := operation.get("requestBody"):
                body = _resolve(raw, body)
                schemas["body"] = _inlined(raw, body["content"]["application/json"]["schema"])
                schemas["body_required"] = bool(body.get("required"))
            found[operation["operationId"]] = schemas
    return found


def _raw_parameters(parser: OpenAPIParser) -> dict[str, dict[str, dict[str, Any]]]:
    """operationId -> the generator's argument name -> that parameter of the contract."""
    raw = parser.raw_obj
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path_item in raw.get("paths", {}).values():
        for method in METHODS:
            if not (operation := path_item.get(method)):
                continue
            parameters = [
                _resolve(raw, parameter)
                for parameter in [
                    *path_item.get("parameters", []),
                    *operation.get("parameters", []),
                ]
            ]
            found[operation["operationId"]] = {
                snakecase(parser.model_resolver.get_valid_field_name(parameter["name"])): parameter
                for parameter in parameters
            }
    return found


def _arguments(parser: OpenAPIParser) -> dict[str, dict[str, dict[str, Any]]]:
    """operationId -> argument -> what the templates need beyond the generator's own view:

    - `name`: a plain Python name (`if_match` for If-Match, where the generator says `if__match`);
    - `plain_type`: the handler's type, constraints left to the router;
    - `query_boolean`: a boolean query parameter, which the router parses strictly.
    """
    raw_parameters = _raw_parameters(parser)
    arguments: dict[str, dict[str, dict[str, Any]]] = {}
    for operation in parser.operations.values():
        operation_id = str(operation.operationId)
        views: dict[str, dict[str, Any]] = {}
        for argument in operation.arguments_list:
            name = str(argument.name)
            parameter = raw_parameters[operation_id].get(name)
            hint = str(argument.type_hint)
            if argument.field is not None:
                data_type = argument.field.data_type
                base = CONSTRAINED.get(
                    str(data_type.type), hint.removeprefix("Optional[").removesuffix("]")
                )
                base = AS_TEXT.get(base, base)
                has_value = argument.required or argument.default_value is not None
                hint = base if has_value else f"{base} | None"
            views[name] = {"name": name, "plain_type": hint, "query_boolean": False}
            if parameter is not None:
                if "alias=" in str(argument.default):
                    views[name]["name"] = re.sub(r"[^0-9A-Za-z]+", "_", parameter["name"]).lower()
                schema = _resolve(parser.raw_obj, parameter.get("schema", {}))
                views[name]["query_boolean"] = (
                    parameter["in"] == "query" and schema.get("type") == "boolean"
                )
        arguments[operation_id] = views
    return arguments


def visit(parser: OpenAPIParser, model_path: Path) -> dict[str, Any]:
    return {
        "arguments": _arguments(parser),
        "secured": _secured_operations(parser.raw_obj),
        "request_schemas": pprint.pformat(_request_schemas(parser.raw_obj), width=96),
    }
