"""docs/architecture.md names every module of every services package, and no module that
is gone: the layout table stays true as packages change."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_services_table_lists_each_module_once_and_only_existing_ones() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    problems = []
    for package in sorted(p for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()):
        [row] = [line for line in doc.splitlines() if line.startswith(f"| `{package.name}` |")]
        named = set(re.findall(r"`([a-z0-9_]+\.(?:py|lua))`", row))
        present = {f.name for f in package.iterdir() if f.suffix in (".py", ".lua") and f.name != "__init__.py"}
        problems += [f"{package.name}/{m} not in docs/architecture.md" for m in sorted(present - named)]
        problems += [f"{package.name}/{m} named but gone" for m in sorted(named - present)]
    assert not problems, problems
