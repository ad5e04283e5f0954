"""Template variables that fastapi-code-generator does not provide on its own."""

from pathlib import Path
from typing import Any

from fastapi_code_generator.parser import OpenAPIParser, snakecase

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CONSTRAINED = {"constr": "str", "conint": "int"}


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


def _query_booleans(raw: dict[str, Any]) -> dict[str, set[str]]:
    """operationId -> the boolean query parameters, which the router parses strictly."""
    booleans: dict[str, set[str]] = {}
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
            booleans[operation["operationId"]] = {
                snakecase(parameter["name"])
                for parameter in parameters
                if parameter["in"] == "query"
                and _resolve(raw, parameter.get("schema", {})).get("type") == "boolean"
            }
    return booleans


def _plain_types(parser: OpenAPIParser) -> dict[str, dict[str, str]]:
    """The handler's view of each argument: the Python type, constraints left to the router."""
    types: dict[str, dict[str, str]] = {}
    for operation in parser.operations.values():
        arguments: dict[str, str] = {}
        for argument in operation.arguments_list:
            hint = str(argument.type_hint)
            if argument.field is not None:
                data_type = argument.field.data_type
                base = CONSTRAINED.get(
                    str(data_type.type), hint.removeprefix("Optional[").removesuffix("]")
                )
                has_value = argument.required or argument.default not in (None, "None")
                hint = base if has_value else f"{base} | None"
            arguments[str(argument.name)] = hint
        types[str(operation.operationId)] = arguments
    return types


def visit(parser: OpenAPIParser, model_path: Path) -> dict[str, Any]:
    return {
        "plain_types": _plain_types(parser),
        "secured": _secured_operations(parser.raw_obj),
        "query_booleans": _query_booleans(parser.raw_obj),
    }
