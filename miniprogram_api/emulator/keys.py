"""Application keys of the emulator (kept separate to avoid import cycles)."""

from __future__ import annotations

from aiohttp import web

from .state import EmulatorState

STATE: web.AppKey[EmulatorState] = web.AppKey("miniprogram_emulator_state", EmulatorState)
