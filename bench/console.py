"""The web console at scale (issue 16): each list page's first render in Chromium over a
big database, and the console's initial JavaScript.

    .venv/bin/python -m bench.console [--customers 100000] [--campaigns 10000] [--runs 10]
                                      [--api-campaigns 300] [--audit 50000] [--redemptions 20000]
                                      [--calls-only N] [--save-db PATH] [--against DIST]
                                      [--split-cpus]

``--against DIST``: another build of the console (say an older tree's ``console/dist``)
timed with this one, run by run in turn, in the same server, database and browser
(merged_console); each page's rows say which build.

``--split-cpus``: the server and its Redis on the last core, the bench and Chromium on the
others (Linux CPU affinity, inherited by every process and thread each side starts). An
operator's browser runs on their own machine, not on the server's cores; on this 2-core
machine the renders otherwise share both cores with the server they measure.

``--calls-only N``: no browser (and no console build): after the same seeding, the API
calls the calendar (month view) and the analytics page make on their first render, with
the console's parameters, N times each in turn; p50/p95 per call. ``--save-db`` keeps a
copy of the seeded SQLite file (to profile a service call against it).

Set-up (bench.feed's functions, bench.harness.start_server: SQLite in a temporary DATA_DIR,
a redis-server the bench starts): a superadmin made with ``python -m server create-admin``;
50 stores, 5 themes and a POS integration through the admin API; the customers (and their
facts, visits, purchase events) bulk-inserted into the server's SQLite file
(bench.feed.seed_customers). ``--api-campaigns`` campaigns go through the real admin
routes (create, submit, publish: bench.feed.create_campaigns, half of them with a coupon),
then their rows are copied in SQL (``INSERT … SELECT``, with their stores and coupon
templates) until there are ``--campaigns``: creating 10,000 through the API takes longer
than the bench should. The audit log (which the API calls wrote) is copied the same way
up to ``--audit`` rows; a clerk, used vouchers and their redemptions are inserted.

The console is built (scripts/console-build); Chromium (Debian's, via Playwright) logs the
superadmin in through the login form, then for each list page, ``--runs`` times: a full
navigation to ``/admin/<page>`` (the session in localStorage; hashed assets from the
browser's cache after the first run, as for an operator) until the page's table shows its
first row (``.el-table__row`` in the page's table; the calendar: a campaign entry). Two
times per run, both from the ``goto`` call: when the row was attached (a MutationObserver
in the page records it: WATCH) and when Playwright's wait saw it (it polls at 0, 20, 70,
170, 270, 770 ms and every 500 ms after: up to half a second late; the figure of sessions
before 12). Printed: p50/p95 per page of both, rows shown, the initial JS of /admin/ and /staff/ (the entry scripts
index.html names and their static imports, gzip level 9) and the largest lazy chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.feed import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    SERVER_ENV,
    _ts,
    admin_setup,
    campaign_specs,
    create_campaigns,
    seed_customers,
)
from bench.grab import say, start_redis
from bench.harness import ROOT, Server, start_server

DIST = ROOT / "console" / "dist"
#: (page, path under /admin/, what shows its first row). The calendar's entries are in the
#: page as soon as the month arrives, under a loading mask that stays until its overlaps
#: came too; the list of campaigns under the grid comes after the grid has painted: all
#: three are timed.
PAGES = [
    # The machine's floor: a full navigation to the health check (no console, no database
    # read), timed the same way in the same run, so a loaded machine shows as such.
    ("/healthz (baseline)", "/healthz", "body"),
    ("campaigns", "campaigns", "[data-test=campaign-list] .el-table__row"),
    ("redemptions", "redemptions", "[data-test=redemption-list] .el-table__row"),
    ("audit", "audit", "[data-test=audit-list] .el-table__row"),
    ("segments", "segments", "[data-test=segment-list] .el-table__row"),
    ("themes", "themes", ".el-table__row"),
    ("stores", "stores", "[data-test=store-list] .el-table__row"),
    ("notifications", "notifications", "[data-test=outbox-list] .el-table__row"),
    ("automation", "automation", "[data-test=rule-list] .el-table__row"),
    ("analytics ranking", "analytics", "[data-test=overview] .el-table__row"),
    ("calendar (entries in the page)", "calendar", "[data-test=calendar] .entry"),
    ("calendar (loading mask gone)", "calendar", "[data-test=calendar]:not(:has(.el-loading-mask)) .entry"),
    # The list of the window's campaigns under the grid: filled after the grid has painted.
    ("calendar (list under the grid)", "calendar", "[data-test=cal-campaigns] .el-table__row"),
]
#: What an empty list shows instead of a row once loaded (so a page with nothing to list is
#: timed too; a table shows the empty text while loading as well, under its loading mask).
EMPTY = ".el-table:not(:has(.el-loading-mask)) .el-table__empty-text"

#: In the page, from its first script on: the wall-clock time (ms since the epoch) at which
#: each of the page's selectors first matched, in ``window.__attached``. Playwright's wait
#: polls (0, 20, 70, 170, 270, 770 ms, then every 500 ms after it starts waiting), so
#: what it reports is the first poll after the row came: up to 500 ms late. This records
#: the moment the row was attached (a MutationObserver callback runs before the next paint).
WATCH = """
(() => {
  const watched = %s[location.pathname] || [];
  const attached = (window.__attached = {});
  const look = () => {
    for (const selector of watched) {
      if (!(selector in attached) && document.querySelector(selector)) {
        attached[selector] = performance.timeOrigin + performance.now();
      }
    }
    if (Object.keys(attached).length === watched.length) observer.disconnect();
  };
  const observer = new MutationObserver(look);
  observer.observe(document, { childList: true, subtree: true });
})();
"""


def watch_script() -> str:
    """WATCH with, per page path, the selectors that show its first row (and EMPTY)."""
    paths: dict[str, list[str]] = {}
    for _, path, selector in PAGES:
        paths.setdefault(path if path.startswith("/") else f"/admin/{path}", [EMPTY]).append(selector)
    return WATCH % json.dumps(paths)


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def copy_rows(db: sqlite3.Connection, table: str, target: int, overrides: dict[str, str] | None = None) -> int:
    """Copy ``table``'s rows (all columns but ``id``; ``overrides`` gives SQL expressions
    for some, over the copied row and ``:k``, the round) until it holds ``target`` rows.
    Returns the count."""
    overrides = overrides or {}
    cols = [c for c in columns(db, table) if c != "id"]
    select = ", ".join(overrides.get(c, c) for c in cols)
    k = 0
    while (count := db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]) < target:
        k += 1
        db.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} ORDER BY id LIMIT :n",
            {"n": target - count, "k": k},
        )
        db.commit()
    return int(count)


def multiply_campaigns(db: sqlite3.Connection, target: int) -> int:
    """Copies of the API-made campaigns (with their stores and coupon templates) until
    there are ``target``."""
    base = [r[0] for r in db.execute("SELECT id FROM campaigns ORDER BY id")]
    cols = [c for c in columns(db, "campaigns") if c != "id"]
    store_cols = [c for c in columns(db, "campaign_stores") if c not in ("id", "campaign_id")]
    tpl_cols = [c for c in columns(db, "coupon_templates") if c not in ("id", "campaign_id")]
    made = len(base)
    while made < target:
        for source in base:
            if made >= target:
                break
            cur = db.execute(
                f"INSERT INTO campaigns ({', '.join(cols)}) SELECT {', '.join(cols)} FROM campaigns WHERE id = ?",
                (source,),
            )
            new = cur.lastrowid
            db.execute(
                f"INSERT INTO campaign_stores (campaign_id, {', '.join(store_cols)}) "
                f"SELECT ?, {', '.join(store_cols)} FROM campaign_stores WHERE campaign_id = ?",
                (new, source),
            )
            db.execute(
                f"INSERT INTO coupon_templates (campaign_id, {', '.join(tpl_cols)}) "
                f"SELECT ?, {', '.join(tpl_cols)} FROM coupon_templates WHERE campaign_id = ?",
                (new, source),
            )
            made += 1
            if made % 2000 == 0:
                db.commit()
    db.commit()
    return int(db.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0])


def seed_redemptions(db: sqlite3.Connection, count: int, customers: int) -> int:
    """A clerk, ``count`` used vouchers of the coupon templates and their redemptions."""
    now = datetime.now(UTC)
    store = db.execute("SELECT id FROM stores ORDER BY id LIMIT 1").fetchone()[0]
    db.execute(
        "INSERT INTO staff_members (username, password_hash, display_name, role, store_id, is_active, created_at,"
        " token_epoch, must_change_password) VALUES ('bench-clerk', '!', 'Bench clerk', 'clerk', ?, 1, ?, 0, 0)",
        (store, _ts(now)),
    )
    staff = db.execute("SELECT id FROM staff_members WHERE username = 'bench-clerk'").fetchone()[0]
    templates = list(db.execute("SELECT id, campaign_id, face_value FROM coupon_templates ORDER BY id LIMIT 500"))
    if not templates:
        return 0
    vouchers, redemptions = [], []
    for n in range(count):
        template, campaign, face = templates[n % len(templates)]
        at = now - timedelta(minutes=n)
        customer = 1 + (n * 7919) % customers
        vouchers.append((f"bench-claim-{n}", template, campaign, customer, f"B{n:015d}", "used", face,
                         _ts(at - timedelta(days=1)), _ts(at + timedelta(days=30)), _ts(at - timedelta(hours=1)),
                         _ts(at), store, staff, 0))  # fmt: skip
    db.executemany(
        "INSERT INTO vouchers (claim_id, template_id, campaign_id, customer_id, code, status, face_value, valid_from,"
        " valid_until, issued_at, used_at, used_store_id, used_by_staff_id, stock_returned)"
        f" VALUES ({', '.join('?' * 14)})",
        vouchers,
    )
    ids = dict(db.execute("SELECT claim_id, id FROM vouchers WHERE claim_id LIKE 'bench-claim-%'"))
    for n, v in enumerate(vouchers):
        redemptions.append((ids[v[0]], store, staff, v[3], v[2], v[1], v[6], f"order-{n}", v[6] * 3, v[10]))
    db.executemany(
        "INSERT INTO redemptions (voucher_id, store_id, staff_id, customer_id, campaign_id, template_id, face_value,"
        " order_ref, order_amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        redemptions,
    )
    db.commit()
    return len(redemptions)


# --- the console's JavaScript ---------------------------------------------------------------

_STATIC = re.compile(r"""(?:\bfrom|\bimport)\s*["']([^"']+\.js)["']""")
_ENTRY = re.compile(r"""<(?:script[^>]*\bsrc|link[^>]*rel="modulepreload"[^>]*\bhref)="([^"]+\.js)\"""")


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


def _local(url: str, relative_to: Path) -> Path:
    """A built file from a URL in index.html (``/console/assets/x.js``) or an import
    (``./x.js``)."""
    if url.startswith("/"):
        return DIST / url.split("/", 2)[2]
    return (relative_to.parent / url).resolve()


def initial_js(index: Path) -> set[Path]:
    """The JS files ``index`` loads before any navigation: its scripts and module
    preloads, and their static imports (not ``import()``), transitively."""
    todo = [_local(u, index) for u in _ENTRY.findall(index.read_text())]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [_local(u, path) for u in _STATIC.findall(path.read_text())]
    return seen


def js_report() -> list[str]:
    assets = sorted(DIST.rglob("*.js"))
    initial: set[Path] = set()
    lines = ["| entry | initial JS files | raw KB | gzipped KB (aim ≤ 400) |", "|---|---:|---:|---:|"]
    for name in ("admin", "staff"):
        index = next(p for p in (DIST / name / "index.html", DIST / f"{name}.html") if p.exists())
        files = initial_js(index)
        initial |= files
        raw = sum(p.stat().st_size for p in files) / 1024
        lines.append(f"| /{name}/ | {len(files)} | {raw:,.0f} | {sum(gz(p) for p in files) / 1024:,.1f} |")
    lazy = sorted(((gz(p), p) for p in assets if p not in initial), reverse=True)
    lines += ["", "| largest lazy chunks | gzipped KB |", "|---|---:|"]
    lines += [f"| {p.name} | {size / 1024:,.1f} |" for size, p in lazy[:8]]
    lines.append(f"| ({len(lazy)} lazy chunks in all) | {sum(s for s, _ in lazy) / 1024:,.1f} |")
    return lines


# --- first renders -------------------------------------------------------------------------


class Render:
    """One page's runs: ``seconds`` until Playwright's wait saw the first row (what earlier
    sessions recorded), ``attached`` until the row was in the page (WATCH; both from the
    ``goto`` call), the rows the last run showed, and per run the slowest API request's
    seconds (request sent to response read, Chromium's timing: the server's share)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.seconds: list[float] = []
        self.attached: list[float] = []
        self.shown = 0
        self.api: list[float] = []


#: A console build to time: a name for the table ("" alone) and what makes the server
#: answer /admin/ with it.
Variant = tuple[str, Callable[[], None]]


def merged_console(against: Path, into: Path) -> list[Variant]:
    """This build (``DIST``) and ``against`` (another build of the console) served from one
    folder, ``into``: both builds' hashed assets side by side (names differ where contents
    do), and /admin/'s index.html swapped between runs. The server reads the index from
    disk per request (``Cache-Control: no-cache``), so the two alternate run by run in one
    server, database and browser: the same conditions, on a machine whose load drifts."""
    shutil.copytree(DIST, into)
    for asset in (against / "assets").iterdir():
        if not (into / "assets" / asset.name).exists():
            shutil.copy2(asset, into / "assets" / asset.name)
    index = into / "admin" / "index.html"
    index.with_name("index.html.gz").unlink(missing_ok=True)  # else sent instead of the swapped file
    kept = {"this": into / "admin" / "this.index", "against": into / "admin" / "against.index"}
    shutil.copyfile(DIST / "admin" / "index.html", kept["this"])
    shutil.copyfile(against / "admin" / "index.html", kept["against"])
    # copyfile, not copy2: a fresh mtime, so the index's ETag changes with each swap.
    return [(f" ({name})", lambda source=source: shutil.copyfile(source, index)) for name, source in kept.items()]


async def first_renders(base: str, runs: int, limit: float, variants: list[Variant]) -> list[Render]:
    """Each page's runs (Render), per variant: ``runs`` each, alternating run by run (the
    first variant signs in). A run longer than ``limit`` seconds counts as infinite and
    ends that page's runs."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    results = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            ctx = await browser.new_context(
                locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 800}
            )
            ctx.set_default_timeout(60_000)
            await ctx.add_init_script(watch_script())
            page = await ctx.new_page()
            api_seconds: list[float] = []

            def finished(request: Any) -> None:
                if "/api/" in request.url and request.timing.get("responseEnd", -1) >= 0:
                    api_seconds.append(request.timing["responseEnd"] / 1000)

            page.on("requestfinished", finished)
            variants[0][1]()
            await page.goto(f"{base}/admin/")
            await page.fill("input[name=username]", ADMIN_USER)
            await page.fill("input[name=password]", ADMIN_PASSWORD)
            await page.click("[data-test=login]")
            await page.wait_for_selector("[data-test=welcome]")
            timed_out: set[str] = set()
            for label, path, selector in PAGES:
                renders = [Render(f"{label}{name}") for name, _ in variants]
                url = f"{base}{path}" if path.startswith("/") else f"{base}/admin/{path}"
                for run in range(runs * len(variants)):
                    render = renders[run % len(variants)]
                    variants[run % len(variants)][1]()
                    if path in timed_out:  # not run again: the server is still busy with it
                        for r in renders:
                            r.seconds.append(math.inf)
                            r.attached.append(math.inf)
                        break
                    api_seconds.clear()
                    start, start_epoch = time.perf_counter(), time.time()
                    # The first match in the page (a calendar day clips entries past its height).
                    try:
                        await page.goto(url, wait_until="commit", timeout=limit * 1000)
                        await page.locator(f"{selector}, {EMPTY}").first.wait_for(
                            state="attached", timeout=limit * 1000
                        )
                    except PlaywrightTimeout:
                        for r in renders:
                            r.seconds.append(math.inf)
                            r.attached.append(math.inf)
                        timed_out.add(path)
                        break
                    render.seconds.append(time.perf_counter() - start)
                    seen = await page.evaluate("window.__attached")
                    render.attached.append(min(seen[s] for s in (selector, EMPTY) if s in seen) / 1000 - start_epoch)
                    render.shown = await page.locator(selector).count()
                    await page.wait_for_load_state("networkidle", timeout=limit * 1000)
                    render.api.append(max(api_seconds, default=0.0))
                results += renders
                for r in renders:
                    say(f"{r.label}: median {statistics.median(r.seconds) * 1000:.0f} ms (attached at "
                        f"{statistics.median(r.attached) * 1000:.0f} ms), {r.shown} rows shown")  # fmt: skip
            await ctx.close()
        finally:
            await browser.close()
    return results


def api_calls(base: str, token: str, runs: int) -> Any:
    """The calls the calendar (month view) and analytics pages make on their first render,
    with the console's parameters, ``runs`` times each in turn: (label, seconds, bytes)."""

    async def run() -> list[tuple[str, list[float], int]]:
        today = datetime.now(UTC).date()
        first = today.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        window = {"date_from": first.isoformat(), "date_to": last.isoformat()}
        calls = [
            ("GET /admin/calendar (month, per_day 4, limit 20)", "/api/v1/admin/calendar",
             {**window, "per_day": "4", "limit": "20"}),
            ("GET /admin/calendar/overlaps (month)", "/api/v1/admin/calendar/overlaps", window),
            ("GET /admin/analytics/overview (sort vouchers_issued, limit 20)", "/api/v1/admin/analytics/overview",
             {"sort": "vouchers_issued", "limit": "20"}),
            ("GET /admin/analytics/overview (sort budget_spent, limit 20)", "/api/v1/admin/analytics/overview",
             {"sort": "budget_spent", "limit": "20"}),
        ]  # fmt: skip
        out = []
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for label, path, params in calls:
                seconds, size = [], 0
                for _ in range(runs):
                    start = time.perf_counter()
                    async with session.get(f"{base}{path}", params=params) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise SystemExit(f"{path}: {resp.status} {body[:300]!r}")
                    seconds.append(time.perf_counter() - start)
                    size = len(body)
                out.append((label, seconds, size))
                say(f"{label}: median {statistics.median(seconds) * 1000:.0f} ms")
        return out

    return run()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def stop_server(server: Server) -> None:
    """Stopped, or killed when a request still holds it (the calendar's) past 30 s."""
    try:
        server.stop()
    except subprocess.TimeoutExpired:
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        server.process = None
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--api-campaigns", type=int, default=300, help="made through the admin API; the rest copied")
    parser.add_argument("--audit", type=int, default=50_000, help="audit log rows")
    parser.add_argument("--redemptions", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=10, help="first renders per page")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a first render may take")
    parser.add_argument(
        "--calls-only", type=int, metavar="N", default=0,
        help="no browser: time N times each of the API calls the calendar and analytics pages make",
    )  # fmt: skip
    parser.add_argument("--save-db", type=Path, help="copy the seeded SQLite file here (to profile against it)")
    parser.add_argument(
        "--against", type=Path, metavar="DIST",
        help="another build of the console (its console/dist) to time run by run with this one",
    )  # fmt: skip
    parser.add_argument(
        "--split-cpus", action="store_true",
        help="the server and Redis on the last core, the bench and Chromium on the others",
    )  # fmt: skip
    args = parser.parse_args()
    browser_cpus: set[int] | None = None
    if args.split_cpus:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("--split-cpus needs at least 2 cores")
        # Set before Redis and the server start: they inherit it, with every thread they make.
        browser_cpus = set(cpus[:-1])
        os.sched_setaffinity(0, {cpus[-1]})
        say(f"server and Redis on core {cpus[-1]}; the bench and Chromium on {sorted(browser_cpus)}")
    if not args.calls_only:
        built = subprocess.run([str(ROOT / "scripts" / "console-build")], cwd=ROOT)
        if built.returncode != 0:
            raise SystemExit("the console did not build (scripts/console-build)")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        redis_url = start_redis(stack)
        variants: list[Variant] = [("", lambda: None)]
        console_env = {}
        if args.against is not None:
            served = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wxc-console-"))) / "dist"
            variants = merged_console(args.against, served)
            console_env = {"CONSOLE_DIR": str(served)}
        server = start_server({**SERVER_ENV, "REDIS_URL": redis_url, **console_env})
        assert server.process is not None and server.data_dir is not None
        stack.callback(stop_server, server)
        env = {**os.environ, **SERVER_ENV, "DATA_DIR": str(server.data_dir)}
        subprocess.run(
            [sys.executable, "-m", "server", "create-admin", "--username", ADMIN_USER, "--role", "superadmin"],
            cwd=ROOT, env={**env, "ADMIN_PASSWORD": ADMIN_PASSWORD}, check=True, stdout=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip
        token, stores, themes, integration_id = asyncio.run(admin_setup(server.url))
        db = sqlite3.connect(f"{server.data_dir}/app.sqlite3", timeout=60)
        stack.callback(db.close)
        t = time.monotonic()
        counts: dict[str, Any] = seed_customers(db, args.customers, stores, integration_id)
        say(f"customers seeded in {time.monotonic() - t:.1f} s: {counts}")
        t = time.monotonic()
        specs = campaign_specs(min(args.api_campaigns, args.campaigns), stores, themes, coupon_share=0.5)
        asyncio.run(create_campaigns(server.url, token, specs))
        say(f"{len(specs)} campaigns through the admin API in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        counts["campaigns"] = multiply_campaigns(db, args.campaigns)
        counts["audit_log"] = copy_rows(db, "audit_log", args.audit, {"entity_id": "entity_id + :k * 1000000"})
        counts["redemptions"] = seed_redemptions(db, args.redemptions, args.customers)
        say(f"copied and inserted in {time.monotonic() - t:.1f} s: {counts}")
        seeded = time.monotonic() - started
        if args.save_db is not None:
            db.commit()
            with sqlite3.connect(args.save_db) as saved:
                db.backup(saved)
        if args.calls_only:
            load_before = os.getloadavg()
            timed = asyncio.run(api_calls(server.url, token, args.calls_only))
            load_after = os.getloadavg()
            print(
                f"console API calls: {counts['campaigns']:,} campaigns, {counts['customers']:,} customers, "
                f"{counts['redemptions']:,} redemptions; seeded in {seeded:.0f} s; {args.calls_only} calls each"
            )
            print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores")
            print()
            print("| call | p50 ms | p95 ms | max ms | answer bytes |")
            print("|---|---:|---:|---:|---:|")
            for label, seconds, size in timed:
                print(f"| {label} | {statistics.median(seconds) * 1000:.0f} | {p95(seconds) * 1000:.0f} | "
                      f"{max(seconds) * 1000:.0f} | {size:,} |")  # fmt: skip
            return 0
        if browser_cpus is not None:
            os.sched_setaffinity(0, browser_cpus)  # Playwright's driver and Chromium inherit it
        load_before = os.getloadavg()
        results = asyncio.run(first_renders(server.url, args.runs, args.timeout, variants))
        load_after = os.getloadavg()
    split = f"; server and Redis on their own core, Chromium on {sorted(browser_cpus)}" if browser_cpus else ""
    print(f"console: {counts['customers']:,} customers, {counts['campaigns']:,} campaigns, "
          f"{counts['redemptions']:,} redemptions, {counts['audit_log']:,} audit rows; seeded in {seeded:.0f} s; "
          f"{args.runs} first renders per page{split}")  # fmt: skip
    print(f"load average (1/5/15 min) before the renders {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print()
    # "seen": when Playwright's polling wait saw the row (earlier sessions' figure);
    # "attached": when the row was in the page (WATCH). Both from the goto call.
    print("| page | rows shown | attached p50 ms | attached p95 ms | ≤ 1 s p95 | seen p50 / p95 / max ms "
          "| slowest API call p50 / p95 ms |")  # fmt: skip
    print("|---|---:|---:|---:|---|---:|---:|")
    ok = True
    for r in results:
        met = p95(r.attached) <= 1.0
        ok = ok and met
        if math.isinf(max(r.seconds)):
            timed_out = f"> {args.timeout:.0f} s (timed out, run {len(r.seconds)})"
            print(f"| {r.label} | {r.shown} | {timed_out} | | MISSED | | |")
            continue
        api_ms = f"{statistics.median(r.api) * 1000:.0f} / {p95(r.api) * 1000:.0f}" if any(r.api) else "—"
        ms = [f"{v * 1000:.0f}" for v in (statistics.median(r.seconds), p95(r.seconds), max(r.seconds))]
        print(f"| {r.label} | {r.shown} | {statistics.median(r.attached) * 1000:.0f} | {p95(r.attached) * 1000:.0f} | "
              f"{'met' if met else 'MISSED'} | {' / '.join(ms)} | {api_ms} |")  # fmt: skip
    print()
    print("\n".join(js_report()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
