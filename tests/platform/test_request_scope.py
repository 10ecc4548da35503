"""The three hot requests stay inside their domain: a coupon grab runs code of
``services.stock`` and ``services.core`` only, a staff redemption ``services.wallet`` and
``core``, a feed page ``services.feed`` and ``core`` (the layout's promise, issue 13) and the
experiments' exposure check (issue 18),
plus the caller checks of issue 15 that run before any handler: the erased-customer
gate (``services.privacy.gate``) on customer requests and the token epoch
(``services.accounts.epochs``) on staff requests.

Measured by tracing which files' functions run while the server answers one warm
request (the caches loaded by an earlier request of the same kind), so the test follows
the code that runs, not the import lines."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from tests.journey.fixtures import make_campaign, shoppers
from tests.stock.fixtures import customers, live_coupon
from tests.wallet.fixtures import REDEEM, qr_payload, staff_login, store, vouchers

ROOT = Path(__file__).resolve().parents[2]
APP_DIRS = ("services", "handlers", "server", "models")


async def files_run_by(request: Callable[[], Awaitable[Any]]) -> set[str]:
    """The app files (relative paths) whose functions ran while ``request`` was awaited."""
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(profile)
    try:
        await request()
    finally:
        sys.setprofile(None)
    files = set()
    for name in seen:
        path = Path(name)
        if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in APP_DIRS:
            files.add(str(path.relative_to(ROOT)))
    return files


def service_packages(files: set[str]) -> set[str]:
    return {Path(f).parts[1] for f in files if f.startswith("services/")}


def gate_only(files: set[str]) -> bool:
    """The privacy and accounts code a request ran is their caller checks and nothing else."""
    outside = {f for f in files if f.startswith(("services/privacy/", "services/accounts/"))}
    return outside <= {"services/privacy/gate.py", "services/accounts/epochs.py"}


def report(name: str, files: set[str]) -> None:
    # Printed for the record (pytest -s): how many app files one request runs.
    print(f"\n{name}: {len(files)} app files, services packages {sorted(service_packages(files))}")
    for f in sorted(files):
        print("   ", f)


async def test_a_grab_runs_stock_and_core_only(client):
    coupon = await live_coupon(client, stock=10)
    first, second = await customers(client, 2)
    assert (await client.post(coupon.grab_path, headers=first)).status == 201

    async def grab() -> None:
        assert (await client.post(coupon.grab_path, headers=second)).status == 201

    files = await files_run_by(grab)
    report("grab", files)
    # privacy: the caller check every customer request runs (an erased customer's token
    # is refused: services/privacy/gate.py, one set lookup), not domain code.
    # experiments: whether one runs on the campaign (services/experiments/exposure.py, a dict
    # lookup when none does): the arm's stock share is taken in the same script.
    assert service_packages(files) == {"stock", "core", "privacy", "experiments"} and gate_only(files)
    assert {f for f in files if f.startswith("services/experiments/")} == {"services/experiments/exposure.py"}


async def test_a_redemption_runs_wallet_and_core_only(client):
    shop = await store()
    clerk = await staff_login(client, shop.id, "clara")
    held = await vouchers(client, 2)
    payloads = [await qr_payload(client, h) for h in held]
    assert (await client.post(REDEEM, json={"payload": payloads[0]}, headers=clerk)).status == 201

    async def redeem() -> None:
        assert (await client.post(REDEEM, json={"payload": payloads[1]}, headers=clerk)).status == 201

    files = await files_run_by(redeem)
    report("redemption", files)
    # accounts: the caller check every staff request runs (the token epoch of a disabled
    # or changed account: services/accounts/epochs.py), not domain code.
    assert service_packages(files) == {"wallet", "core", "accounts"} and gate_only(files)


async def test_a_feed_page_runs_feed_and_core_only(client):
    for _ in range(5):
        await make_campaign(coupons=1)
    first, second = await shoppers(client, 2)
    assert (await client.get("/api/v1/feed", headers=first.headers)).status == 200

    async def feed() -> None:
        assert (await client.get("/api/v1/feed", headers=second.headers)).status == 200

    files = await files_run_by(feed)
    report("feed", files)
    # privacy: as for the grab. experiments: which campaigns an experiment's holdout hides
    # (services/experiments/exposure.py; a dict lookup when none runs), nothing else of it.
    assert service_packages(files) == {"feed", "core", "privacy", "experiments"} and gate_only(files)
    assert {f for f in files if f.startswith("services/experiments/")} == {"services/experiments/exposure.py"}
