"""Languages: which of a text's translations a caller reads (campaign content, coupon
titles, notification texts all use the same rule)."""

from __future__ import annotations

import functools

#: Languages tried after the caller's, in order (the campaign's default comes first).
FALLBACK_LANGUAGES = ("zh-CN", "en")


def pick_language(accept_language: str | None, available: list[str] | tuple[str, ...], default: str) -> str:
    """The content language for an ``Accept-Language`` header: the caller's preferences
    by q-value (an exact tag, then the same primary language), then the campaign's
    default, then zh-CN, then en, then whatever there is."""
    if accept_language is not None and len(accept_language) > 200:  # bound the cache's memory
        return _pick_language.__wrapped__(accept_language, tuple(available), default)
    return _pick_language(accept_language, tuple(available), default)


# A feed page asks once per item with the same few headers: parse each header once.
@functools.lru_cache(maxsize=2048)
def _pick_language(accept_language: str | None, available: tuple[str, ...], default: str) -> str:
    prefs: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            prefs.append((-q, index, tag))
    lowered = {lang.lower(): lang for lang in available}
    for _, _, tag in sorted(prefs):
        if tag.lower() in lowered:
            return lowered[tag.lower()]
        primary = tag.split("-")[0].lower()
        for lang in available:
            if lang.split("-")[0].lower() == primary:
                return lang
    for lang in (default, *FALLBACK_LANGUAGES):
        if lang in available:
            return lang
    return available[0] if available else default


def localized(titles: dict[str, str], language: str, default: str) -> str:
    """A {language: text} map read in ``language``, with the same fallbacks."""
    if not titles:
        return ""
    return titles[pick_language(language, list(titles), default)]
