"""Subscribe-message templates: which WeChat template each notification kind uses, and how
a notification's payload becomes the template's ``data``.

``NOTIFY_TEMPLATES`` is JSON: ``{kind: {"template_id", "page", "fields": {keyword: text}}}``.
A text may name payload values as ``<name>`` (``"<campaign_title>"``, ``"Ends <ends_at>"``);
each kind offers the names in PLACEHOLDERS. A kind left out sends nothing (its rows are
recorded as skipped). WeChat checks each keyword by the type in its name (``thing1`` is a
``thing``: at most 20 characters), so rendering fits each value to its type: texts are
cut (with an ellipsis), times are formatted in the configured UTC offset, numbers keep
their digits. Pure functions: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

#: The payload names each kind's texts may use.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "new_campaign": frozenset({"campaign_id", "campaign_title", "starts_at", "ends_at"}),
    "campaign_ending": frozenset({"campaign_id", "campaign_title", "ends_at"}),
    "reward": frozenset({"campaign_id", "campaign_title", "reward", "points", "earned_at"}),
    "voucher_expiring": frozenset({"voucher_id", "campaign_id", "coupon_title", "valid_until"}),
    "group_result": frozenset({"campaign_id", "group_id", "campaign_title", "result", "closed_at"}),
    "bargain_result": frozenset({"campaign_id", "bargain_id", "campaign_title", "result", "value", "finished_at"}),
    # To admins who opted in (services.outbound.alerts), not customers: an alert raised.
    "alert": frozenset({"alert_id", "rule", "campaign_id", "message", "raised_at"}),
}
KINDS = tuple(PLACEHOLDERS)

#: What the local setup uses with the emulator (which accepts any template id).
EMULATOR_TEMPLATES: dict[str, dict[str, Any]] = {
    "new_campaign": {
        "template_id": "emu_new_campaign",
        "page": "pages/campaign/detail?id=<campaign_id>",
        "fields": {"thing1": "<campaign_title>", "time2": "<starts_at>", "time3": "<ends_at>"},
    },
    "campaign_ending": {
        "template_id": "emu_campaign_ending",
        "page": "pages/campaign/detail?id=<campaign_id>",
        "fields": {"thing1": "<campaign_title>", "time2": "<ends_at>", "thing3": "活动即将结束,别错过"},
    },
    "reward": {
        "template_id": "emu_reward",
        "page": "pages/campaign/detail?id=<campaign_id>",
        "fields": {"thing1": "<campaign_title>", "thing2": "<reward>", "time3": "<earned_at>"},
    },
    "voucher_expiring": {
        "template_id": "emu_voucher_expiring",
        "page": "pages/wallet/detail?id=<voucher_id>",
        "fields": {"thing1": "<coupon_title>", "time2": "<valid_until>", "thing3": "券即将过期,请尽快使用"},
    },
    "group_result": {
        "template_id": "emu_group_result",
        "page": "pages/group/detail?id=<group_id>",
        "fields": {"thing1": "<campaign_title>", "phrase2": "<result>", "time3": "<closed_at>"},
    },
    "bargain_result": {
        "template_id": "emu_bargain_result",
        "page": "pages/bargain/detail?id=<bargain_id>",
        "fields": {"thing1": "<campaign_title>", "phrase2": "<result>", "time3": "<finished_at>"},
    },
    "alert": {
        "template_id": "emu_alert",
        "fields": {"thing1": "<rule>", "thing2": "<message>", "time3": "<raised_at>"},
    },
}

_KEYWORD = re.compile(r"^([a-z_]+?)([0-9]+)$")
_PLACEHOLDER = re.compile(r"<([a-z_]+)>")
_CJK = re.compile(r"^[\u4e00-\u9fff]+$")
MAX_TEMPLATE_ID = 64
_FILLER = {"letter": "x", "phrase": "通知", "number": "0"}


class TemplateConfigError(ValueError):
    """NOTIFY_TEMPLATES is malformed: the message names the place."""


@dataclass(frozen=True)
class TemplateSpec:
    kind: str
    template_id: str
    page: str | None
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NotifyTemplates:
    """The parsed configuration: kind -> template."""

    by_kind: Mapping[str, TemplateSpec]

    def get(self, kind: str) -> TemplateSpec | None:
        return self.by_kind.get(kind)

    def template_ids(self) -> dict[str, list[str]]:
        """Configured template id -> the kinds using it."""
        out: dict[str, list[str]] = {}
        for spec in self.by_kind.values():
            out.setdefault(spec.template_id, []).append(spec.kind)
        return out


def _text_ok(kind: str, where: str, text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise TemplateConfigError(f"NOTIFY_TEMPLATES: {where} must be a non-empty string")
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS[kind])
    if unknown:
        allowed = ", ".join(f"<{n}>" for n in sorted(PLACEHOLDERS[kind]))
        raise TemplateConfigError(f"NOTIFY_TEMPLATES: {where} uses <{unknown[0]}>; {kind} offers {allowed}")
    return text


@lru_cache(maxsize=16)
def parse_templates(raw: str) -> NotifyTemplates:
    """Parse and check ``NOTIFY_TEMPLATES`` (cached: settings ask for it often)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise TemplateConfigError("NOTIFY_TEMPLATES must be a JSON object") from None
    if not isinstance(data, dict):
        raise TemplateConfigError("NOTIFY_TEMPLATES must be a JSON object of kind -> template")
    by_kind: dict[str, TemplateSpec] = {}
    for kind, spec in data.items():
        if kind not in PLACEHOLDERS:
            raise TemplateConfigError(f"NOTIFY_TEMPLATES: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
        if not isinstance(spec, dict) or set(spec) - {"template_id", "page", "fields"}:
            raise TemplateConfigError(f"NOTIFY_TEMPLATES.{kind}: an object with template_id, page, fields")
        template_id = spec.get("template_id")
        if not isinstance(template_id, str) or not 1 <= len(template_id) <= MAX_TEMPLATE_ID:
            raise TemplateConfigError(f"NOTIFY_TEMPLATES.{kind}.template_id: 1-{MAX_TEMPLATE_ID} characters")
        page = spec.get("page")
        if page is not None:
            page = _text_ok(kind, f"{kind}.page", page)
        fields = spec.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise TemplateConfigError(f"NOTIFY_TEMPLATES.{kind}.fields: a non-empty object of keyword -> text")
        checked = []
        for keyword, text in fields.items():
            if not _KEYWORD.match(keyword):
                raise TemplateConfigError(f"NOTIFY_TEMPLATES.{kind}.fields: {keyword!r} is not a keyword (thing1)")
            checked.append((keyword, _text_ok(kind, f"{kind}.fields.{keyword}", text)))
        by_kind[kind] = TemplateSpec(kind, template_id, page, tuple(checked))
    return NotifyTemplates(by_kind)


def default_templates_json(emulator: bool) -> str:
    """The embedded default: the emulator's templates locally, none with a real WeChat app
    (made-up template ids must never reach WeChat)."""
    return json.dumps(EMULATOR_TEMPLATES if emulator else {}, ensure_ascii=False)


# --- rendering ------------------------------------------------------------------------


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _local_time(value: str, offset: timedelta, fmt: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone(offset))
    return moment.strftime(fmt)


def fit(keyword_type: str, value: str, offset: timedelta) -> str:
    """``value`` shaped to what WeChat accepts for a keyword of this type."""
    value = value.strip()
    match keyword_type:
        case "thing":
            out = _cut(value, 20)
        case "time":
            out = _local_time(value, offset, "%Y-%m-%d %H:%M")
        case "date":
            out = _local_time(value, offset, "%Y-%m-%d")
        case "number":
            found = re.search(r"[0-9]+(\.[0-9]+)?", value)
            out = found.group(0)[:32] if found else "0"
        case "character_string":
            out = "".join(ch for ch in value if "\x21" <= ch <= "\x7e")[:32]
        case "letter":
            out = "".join(ch for ch in value if ch.isascii() and ch.isalpha())[:32]
        case "phrase":
            out = "".join(ch for ch in value if _CJK.match(ch))[:5]
        case "name":
            out = _cut(value, 10 if _CJK.match(value) else 20)
        case "car_number":
            out = value[:8]
        case "symbol":
            out = value[:5]
        case _:
            out = _cut(value, 20)
    # Nothing left (an empty title, no letters): a filler WeChat accepts for the type.
    return out or _FILLER.get(keyword_type, "-")


def _substitute(text: str, payload: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(payload.get(m.group(1), "")), text)


def render(
    spec: TemplateSpec, payload: Mapping[str, Any], offset: timedelta
) -> tuple[dict[str, dict[str, str]], str | None]:
    """The ``data`` and ``page`` of one message: placeholders substituted, then each value
    fitted to its keyword's type (a time keyword's ISO value becomes local time)."""
    data = {}
    for keyword, text in spec.fields:
        match = _KEYWORD.match(keyword)
        assert match is not None  # checked by parse_templates
        data[keyword] = {"value": fit(match.group(1), _substitute(text, payload), offset)}
    page = _substitute(spec.page, payload) if spec.page is not None else None
    return data, page
