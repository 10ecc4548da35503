"""The API and error tables in docs/api.md are a contract: they list every route and code."""

from __future__ import annotations

from pathlib import Path

from handlers import all_routes
from services.core import catalogue

API_DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()


def test_api_doc_lists_every_route():
    missing = [f"{r.method} {r.path}" for r in all_routes().routes if f"| `{r.method}` | `{r.path}` |" not in API_DOC]
    assert not missing, missing


def test_api_doc_lists_every_error_code_with_its_status():
    missing = [e.code for e in catalogue() if f"| `{e.code}` | {e.status} |" not in API_DOC]
    assert not missing, missing
