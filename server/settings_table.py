"""The configuration table of the README, generated from the settings' declarations
(``python -m server settings-table``; tests/platform/test_settings_table.py fails when the
README and the declarations differ)."""

from __future__ import annotations

from server.setting_spec import Declared, SettingsError, declared_of, number_text
from server.settings import Settings

# --- the README's table --------------------------------------------------------------------

#: The README holds the generated table between these lines.
TABLE_BEGIN = "<!-- settings-table:begin -->"
TABLE_END = "<!-- settings-table:end -->"
#: What regenerates it (named by the test that compares the two).
TABLE_COMMAND = "python -m server settings-table --write README.md"


def _shown_default(one: Declared) -> str:
    if one.spec.shown_default is not None:
        return one.spec.shown_default
    value = one.default
    if value is None:
        return "*(unset)*"
    if value == "":
        return "*(none)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{number_text(value)}`"
    return f"`{value}`"


def _shown_range(one: Declared) -> str:
    if one.choices:
        return ", ".join(f"`{c}`" for c in one.choices)
    if one.kind is bool:
        return "`true`, `false`"
    if one.spec.lo is not None and one.spec.hi is not None:
        return f"{number_text(one.spec.lo)}–{number_text(one.spec.hi)}"
    return ""


def settings_table() -> str:
    """The markdown table of every setting, in declaration order (no trailing newline)."""
    rows = ["| name | default | range | meaning |", "|---|---|---|---|"]
    for one in declared_of(Settings):
        cells = (f"`{one.spec.env}`", _shown_default(one), _shown_range(one), one.spec.help)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def table_block() -> str:
    """What a document holds between the markers: a do-not-edit note and the table."""
    return f"<!-- generated from server/settings.py by `{TABLE_COMMAND}`: edit the declarations -->\n" + (
        settings_table()
    )


def table_in(document: str) -> str | None:
    """The text between the table markers of a document (stripped), None without them."""
    begin, end = document.find(TABLE_BEGIN), document.find(TABLE_END)
    if begin < 0 or end < begin:
        return None
    return document[begin + len(TABLE_BEGIN) : end].strip()


def with_table(document: str) -> str:
    """``document`` with the generated table between its markers.

    Precondition: the document holds both markers, begin first (SettingsError otherwise)."""
    begin, end = document.find(TABLE_BEGIN), document.find(TABLE_END)
    if begin < 0 or end < begin:
        raise SettingsError(f"no {TABLE_BEGIN} ... {TABLE_END} lines to put the settings table between")
    return document[: begin + len(TABLE_BEGIN)] + "\n" + table_block() + "\n" + document[end:]
