"""Messages in the customer's language, where the campaign has it.

A message's payload is written when its event happens (services/notify/outbox.py and the
callers of ``enqueue``), before anyone knows which template or allowance will carry it.
So each text a template may show is stored in every language the campaign (or coupon)
has, beside the default-language value the payload always had:

- ``campaign_titles`` ({language: title}) for ``campaign_title``,
- ``coupon_titles`` for ``coupon_title``,
- ``reward_texts`` for ``reward``,

with ``default_language``. When sending, the sender reads the customer's language from
the allowance it takes (``NotifySubscription.language``: what the mini program reported
with the customer's last acceptance of that template) and ``localize`` picks each text
with ``services.core.pick_language``: the customer's language, the same primary language,
then the campaign's default, zh-CN, en. A payload without these maps (written before
them) is sent as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from services.core import pick_language

#: payload value -> the map of its translations.
LOCALIZED = {"campaign_title": "campaign_titles", "coupon_title": "coupon_titles", "reward": "reward_texts"}
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def reported_language(value: str | None) -> str | None:
    """The language a client reports (``zh-CN``, or an ``Accept-Language`` header, of
    which the preferred tag is kept), or None when it names none we could use."""
    if not value:
        return None
    best: tuple[float, str] | None = None
    for part in value.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        q = 1.0
        name, _, raw = params.strip().partition("=")
        if name.strip() == "q":
            try:
                q = float(raw)
            except ValueError:
                continue
        tag = tag.strip()
        if _TAG.match(tag) and q > 0 and (best is None or q > best[0]):
            best = (q, tag)
    return best[1] if best else None


def titles_of(content: Mapping[str, Any]) -> dict[str, str]:
    """{language: title} of a campaign's content (languages without a title left out)."""
    return {lang: str((texts or {}).get("title")) for lang, texts in content.items() if (texts or {}).get("title")}


def reward_text_in(language: str, points: int, badge: str | None, coupons: int) -> str:
    """What a reward holds, in ``language`` (Chinese for zh-*, else English)."""
    parts = []
    if language.lower().startswith("zh"):
        if points:
            parts.append(f"{points}积分")
        if badge:
            parts.append(f"徽章{badge}")
        if coupons:
            parts.append(f"{coupons}张优惠券")
        return "、".join(parts)
    if points:
        parts.append(f"{points} points")
    if badge:
        parts.append(f"badge {badge}")
    if coupons:
        parts.append(f"{coupons} coupon{'s' if coupons != 1 else ''}")
    return ", ".join(parts)


def localize(payload: Mapping[str, Any], language: str | None) -> dict[str, Any]:
    """The payload with each localized value in ``language`` (see the module docstring)."""
    out = dict(payload)
    default = str(payload.get("default_language") or "zh-CN")
    for name, maps in LOCALIZED.items():
        texts = payload.get(maps)
        if isinstance(texts, dict) and texts:
            out[name] = texts[pick_language(language, list(texts), default)]
    return out
