"""The OpenAPI document as client generators read it (openapi-python-client,
openapi-typescript): checked on the document itself, without a server.

Two defects broke generated clients: nullable enums that did not list ``null`` (a
generated client refused a ``null`` the server sends) and model names shared by two
modules (pydantic then qualifies them with the module path, and a generator dropped
a route).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from handlers import all_routes
from server.openapi import build_openapi
from services.core import ErrorOut


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # What create_app serves at /api/openapi.json.
    return build_openapi(all_routes().routes, title="t", version="0")


def _nodes(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, f"{where}/{index}")


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _all_models() -> set[type[BaseModel]]:
    """Every model the routes use, and every model nested in their fields."""
    todo: list[type[BaseModel]] = [ErrorOut]
    for route in all_routes().routes:
        todo.extend(m for m in (route.body, route.query, route.response) if m is not None)
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return seen


def test_every_nullable_enum_lists_null(document: dict[str, Any]) -> None:
    missing = [
        where
        for where, node in _nodes(document)
        if node.get("nullable") is True and "enum" in node and None not in node["enum"]
    ]
    assert missing == []


def test_nullable_enums_were_found(document: dict[str, Any]) -> None:
    # Guards the test above against walking nothing.
    nullable_enums = [n for _, n in _nodes(document) if n.get("nullable") is True and "enum" in n]
    assert len(nullable_enums) >= 20
    assert all(n["enum"][-1] is None for n in nullable_enums)


def test_model_names_are_unique_and_none_is_dropped(document: dict[str, Any]) -> None:
    models = _all_models()
    by_name: dict[str, list[str]] = {}
    for model in models:
        by_name.setdefault(model.__name__, []).append(f"{model.__module__}.{model.__qualname__}")
    assert {name: where for name, where in by_name.items() if len(where) > 1} == {}

    components = document["components"]["schemas"]
    # Named plainly (not pydantic's module-qualified fallback), and every model has one.
    assert [name for name in components if "__" in name] == []
    assert sorted(set(by_name) - set(components)) == []


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    refs = {node["$ref"] for _, node in _nodes(document) if isinstance(node.get("$ref"), str)}
    assert refs and all(ref.startswith(prefix) for ref in refs)
    assert sorted(ref for ref in refs if ref[len(prefix) :] not in components) == []


def test_every_route_has_its_operation(document: dict[str, Any]) -> None:
    routes = all_routes().routes
    operations = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert {(r.method, r.path) for r in routes} == operations
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_path_ids_are_typed_as_the_server_reads_them(document: dict[str, Any]) -> None:
    """A voucher's path id is its claim id (text); the other ``{id}``s are database keys.
    Typed as integers, a generated client cannot call the wallet's voucher routes."""
    for path, item in document["paths"].items():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] != "path" or param["name"] != "id":
                    continue
                schema = param["schema"]
                if path.startswith("/api/v1/me/vouchers/"):
                    assert schema["type"] == "string" and schema["pattern"] == "^[0-9A-Z]{1,40}$", (path, schema)
                else:
                    assert schema["type"] == "integer", (path, schema)
