"""The OpenAPI 3.0 document, generated from the route table's own schemas.

Pydantic emits JSON Schema 2020-12 (OpenAPI 3.1); the bundled Swagger UI reads 3.0, so
the few 3.1-only constructs pydantic uses are rewritten (null unions -> nullable, const
-> enum, patternProperties -> additionalProperties). A nullable enum also lists ``null``
among its values: in 3.0.3 ``enum`` restricts values even when ``nullable`` is true, and
generated clients (openapi-python-client) reject a ``null`` the enum does not list.
Component names are the models' class names, so those must be unique across routes
(pydantic would otherwise qualify them with the module path, which generators mangle).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.access import PUBLIC
from server.routing import Route
from services.core import ErrorOut, catalogue, errors

_PATH_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
_REF = "#/components/schemas/{model}"

#: The document's title, as /api/openapi.json and `python -m server openapi` give it.
API_TITLE = "WeChat campaign backend"


def _to_openapi30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _to_openapi30(value) for key, value in node.items()}
    for union in ("anyOf", "oneOf"):
        options = node.get(union)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [option for option in options if option != {"type": "null"}]
            node.pop(union)
            if len(rest) == 1:
                only = rest[0]
                node.update({"allOf": [only]} if "$ref" in only else only)
            else:
                node[union] = rest
            node["nullable"] = True
    if "patternProperties" in node:
        # 3.0 has no patternProperties: keep the value schema, note the key pattern.
        (pattern, schema), *_ = node.pop("patternProperties").items()
        node["additionalProperties"] = schema
        node["x-key-pattern"] = pattern
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("nullable") is True and isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    if "examples" in node and isinstance(node["examples"], list):
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    return node


def build_openapi(routes: list[Route], *, title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for route in routes:
        models.update(m for m in (route.body, route.query, route.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, definitions = models_json_schema(
        [(m, "validation" if _is_input(m, routes) else "serialization") for m in ordered], ref_template=_REF
    )
    # models_json_schema also takes pydantic dataclasses; only BaseModels were given.
    refs = {model: schema for (model, _mode), schema in keyed.items() if issubclass(model, BaseModel)}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, definitions)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": version,
            "description": 'Errors share one shape: `{"error": {"code", "message", "details"}}`. Codes:\n\n'
            + "\n".join(f"- `{e.code}` ({e.status}): {e.default_message}" for e in catalogue()),
        },
        "paths": paths,
        "components": {
            "schemas": _to_openapi30(definitions.get("$defs", {})),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _is_input(model: type[BaseModel], routes: list[Route]) -> bool:
    return any(model in (r.body, r.query) for r in routes)


def _path_param_schema(name: str, text: dict[str, str]) -> dict[str, Any]:
    # Ids are database keys unless the route declares them text (a voucher's claim id);
    # other parameters (a media file's name) are text.
    if name in text:
        return {"type": "string", "pattern": text[name]}
    if name == "id" or name.endswith("_id"):
        return {"type": "integer", "minimum": 1}
    return {"type": "string"}


def _raw_body_schema(route: Route) -> dict[str, Any]:
    """A body the handler parses itself: a multipart upload has one binary ``file`` part."""
    binary = {"type": "string", "format": "binary"}
    if route.request_media_type == "multipart/form-data":
        return {"type": "object", "required": ["file"], "properties": {"file": binary}}
    return binary


def _operation(route: Route, refs: dict[type[BaseModel], Any], definitions: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "tags": list(route.tags),
        "description": f"Access: {route.access.describe()}.",
        "responses": {},
    }
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_param_schema(name, dict(route.text_params))}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        query_schema = definitions["$defs"][route.query.__name__]
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": _to_openapi30(prop)})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[route.body]}}}
    elif route.request_media_type is not None:
        raw_body = {route.request_media_type: {"schema": _raw_body_schema(route)}}
        op["requestBody"] = {"required": True, "content": raw_body}
    if route.access is not PUBLIC:
        op["security"] = [{"bearer": []}]
    if route.response is not None:
        for status in (route.status, *route.also):
            op["responses"][str(status)] = {
                "description": "OK" if status == route.status else "OK (a repeat: the first answer's resource)",
                "content": {"application/json": {"schema": refs[route.response]}},
            }
    elif route.media_type is not None:
        op["responses"][str(route.status)] = {
            "description": "OK",
            "content": {route.media_type: {"schema": {"type": "string"}}},
        }
    else:
        op["responses"][str(route.status)] = {"description": "No content"}
    error_ref = {"content": {"application/json": {"schema": refs[ErrorOut]}}}
    statuses: dict[int, list[str]] = {}
    for err in route.errors:
        statuses.setdefault(err.status, []).append(err.code)
    if _PATH_PARAM.search(route.path) and errors.NotFound.code not in statuses.get(404, []):
        # Any id in the path may name nothing (server.routing.path_int).
        statuses.setdefault(404, []).append(errors.NotFound.code)
    if route.body is not None or route.query is not None:
        statuses.setdefault(400, []).append("invalid_json")
        statuses.setdefault(422, []).append("validation_failed")
    if route.access is not PUBLIC:
        statuses.setdefault(401, []).extend(["unauthenticated", "invalid_token", "token_expired"])
        statuses.setdefault(403, []).append("forbidden")
        if route.access.kind in ("admin", "staff") and not route.open_during_password_change:
            statuses[403].append(errors.PasswordChangeRequired.code)
    for status, codes in sorted(statuses.items()):
        op["responses"][str(status)] = {"description": "Error: " + ", ".join(f"`{c}`" for c in codes), **error_ref}
    return op
