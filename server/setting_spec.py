"""How a setting is declared and read: one :func:`setting` per field of a frozen
dataclass (its environment variable, default, range and help text), parsed from the
environment by :class:`Declared` (server/settings.py declares the fields)."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names it."""


@dataclass(frozen=True)
class Setting:
    """How one field of :class:`Settings` is read from the environment and documented."""

    #: The environment variable.
    env: str
    #: The meaning, in the README table's markdown.
    help: str
    #: The inclusive range of a number (required for int and float settings).
    lo: float | None = None
    hi: float | None = None
    #: A default computed from settings declared earlier (their parsed values by attribute).
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    #: The default as the table shows it, when the bare value would mislead.
    shown_default: str | None = None
    #: Applied to a raw value before it is checked (LOG_LEVEL is case-insensitive).
    normalize: Callable[[str], str] | None = None


def setting(
    env: str,
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    derive: Callable[[Mapping[str, Any]], Any] | None = None,
    shown_default: str | None = None,
    normalize: Callable[[str], str] | None = None,
    repr: bool = True,
) -> Any:
    """A :class:`Settings` field: ``default`` is the value without the variable (and of
    ``Settings()``); ``derive``, when given, computes it in ``from_env`` instead."""
    spec = Setting(env, help, lo, hi, derive, shown_default, normalize)
    return field(default=default, repr=repr, metadata={"setting": spec})


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of a variable; None when unset or blank."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw.strip()


def _parse_int(name: str, raw: str, lo: float, hi: float) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {number_text(lo)} and {number_text(hi)}, got {value}")
    return value


def _parse_float(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def choices_error(name: str, choices: tuple[str, ...], value: object) -> SettingsError:
    listed = ", ".join(choices[:-1]) + " or " + choices[-1]
    return SettingsError(f"{name} must be {listed}, got {value!r}")


def number_text(value: float) -> str:
    """A number as written in messages and the table: 5.0 as 5, 1.5 as 1.5."""
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Declared:
    """One setting with its attribute, type and default: what parsing and the table need."""

    attr: str
    kind: type  # bool, int, float, str or Path
    optional: bool  # None is a value (unset)
    choices: tuple[str, ...]  # a Literal type's values, else ()
    default: Any
    spec: Setting

    def parse(self, env: Mapping[str, str], parsed: Mapping[str, Any]) -> Any:
        """This setting's value from ``env``; ``parsed`` holds those declared before it."""
        spec = self.spec
        raw = _raw(env, spec.env)
        if raw is None:
            return spec.derive(parsed) if spec.derive is not None else self.default
        if spec.normalize is not None:
            raw = spec.normalize(raw)
        if self.choices and raw not in self.choices:
            raise choices_error(spec.env, self.choices, raw)
        if self.kind is bool:
            return _parse_bool(spec.env, raw)
        if self.kind is int:
            assert spec.lo is not None and spec.hi is not None
            return _parse_int(spec.env, raw, spec.lo, spec.hi)
        if self.kind is float:
            assert spec.lo is not None and spec.hi is not None
            return _parse_float(spec.env, raw, spec.lo, spec.hi)
        if self.kind is Path:
            return Path(raw)
        return raw


def kind_of(hint: Any) -> tuple[type, bool, tuple[str, ...]]:
    """(base type, optional, choices) of a Settings annotation."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        [base] = [a for a in args if a is not type(None)]
        kind, _, choices = kind_of(base)
        return kind, True, choices
    if typing.get_origin(hint) is Literal:
        return str, False, tuple(args)
    if hint in (bool, int, float, str, Path):
        return hint, False, ()
    raise TypeError(f"unsupported setting type {hint!r}")


@cache
def declared_of(cls: type) -> tuple[Declared, ...]:
    """Every setting of the dataclass ``cls`` in declaration order (the order
    ``from_env`` reads them in)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        kind, optional, choices = kind_of(hints[f.name])
        if kind in (int, float) and (spec.lo is None or spec.hi is None):
            raise TypeError(f"setting {spec.env} needs a range")
        out.append(Declared(f.name, kind, optional, choices, f.default, spec))
    return tuple(out)


#: A QR signing key id: short, because it travels in every payload.
_QR_KID = re.compile(r"^[A-Za-z0-9]{1,8}$")


def parse_qr_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """``QR_SIGNING_KEYS`` as ((kid, secret), ...): "kid1:secret1,kid2:secret2", the first
    signs. Kids are upper-cased (payloads use the QR alphanumeric alphabet). Messages name
    the kid, never the secret."""
    keys: list[tuple[str, str]] = []
    for part in raw.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not _QR_KID.match(kid):
            raise SettingsError("QR_SIGNING_KEYS: kid:secret pairs separated by commas (kid: 1-8 letters, digits)")
        if len(secret.strip()) < 32:
            raise SettingsError(f"QR_SIGNING_KEYS: the secret of key {kid!r} must be at least 32 characters")
        if any(k == kid.upper() for k, _ in keys):
            raise SettingsError(f"QR_SIGNING_KEYS: key id {kid!r} is given twice")
        keys.append((kid.upper(), secret.strip()))
    return tuple(keys)


def parse_kids(raw: str) -> frozenset[str]:
    kids = [k.strip() for k in raw.split(",") if k.strip()]
    for kid in kids:
        if not _QR_KID.match(kid):
            raise SettingsError(f"QR_RETIRED_KEYS: {kid!r} is not a key id (1-8 letters/digits)")
    return frozenset(k.upper() for k in kids)
