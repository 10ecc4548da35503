"""An open-loop load generator: requests leave at a fixed arrival rate whatever the server
does, and each one's latency is counted from the time it was *scheduled* to be sent.

    .venv/bin/python -m bench.open_loop --base URL --lines FILE --rate R --seconds T
                                        [--max-requests N] [--timeout S] [--connections C]

Why not wrk: wrk is closed-loop. With C connections each waits for its answer before
sending the next request, so when the server stalls the load generator stalls with it and
the requests that *should* have been sent meanwhile are never timed (coordinated
omission); p99 then measures ``C / throughput`` rather than the server. Here a request
that cannot leave on time (every connection busy) waits in the generator's own queue and
that wait counts in its latency, as it would for a customer whose tap arrived then.

The generator is its own process (``python -m bench.open_loop``), bounded in time
(``--seconds``) and count (``--max-requests``), speaking plain HTTP/1.1 keep-alive over
asyncio streams with requests encoded in advance, so its own cost per request is small
against the server's. It prints one line ``OPEN_LOOP_JSON {...}`` with the figures,
including its own lag (how late it dispatched requests): if that lag is large the run
measured the generator, and the report says so.

Request lines have the format the wrk drivers read (``bench/wrk_report.lua``):
``<method>\\t<path>\\t<authorization or ->\\t<body or ->``, sent in order, one per
arrival, wrapping round when the list is shorter than the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

#: The answer of a request that failed without an HTTP status (timeout, reset).
NO_STATUS = 0
#: A rate is *served* only when under 1% of its requests fail AND its p99 is at most this
#: (milliseconds). The error rate alone (an answer later than the timeout is an error)
#: accepts rates at which a queue is already growing over a short step: the feed's
#: search reported 375/s with p50 at 0.5 s. 100 ms is a tap that still feels immediate,
#: and 4 to 25 times the p99 these endpoints show well below their capacity.
P99_BOUND_MS = 100.0


def encode(line: str, host: str) -> bytes:
    """One request line as the bytes sent on the wire (keep-alive HTTP/1.1)."""
    method, path, auth, body = line.rstrip("\n").split("\t", 3)
    payload = b"" if body == "-" else body.encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    if auth != "-":
        head.append(f"Authorization: {auth}")
    if payload or method in ("POST", "PUT", "PATCH"):
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class Connection:
    """One keep-alive connection; a request at a time (no pipelining)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its whole answer; returns the status. Raises on a
        broken connection (the caller drops it)."""
        self.writer.write(request)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    rate: float
    seconds: float
    scheduled: int
    sent: int
    statuses: dict[int, int]
    errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    #: How late the generator dispatched requests against their schedule (its own lag,
    #: not the server's): a large value means the run measured the generator.
    lag_p99_ms: float
    wall_s: float
    connections_opened: int
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 1.0


def quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method (what p99 conventionally means)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


async def drive(
    *,
    base: str,
    lines: list[str],
    rate: float,
    seconds: float,
    max_requests: int,
    answer_within: float,
    connections: int,
    ok: frozenset[int],
) -> Result:
    """Send ``min(rate * seconds, max_requests)`` requests at ``rate`` per second.

    Preconditions: ``lines`` is non-empty; ``rate`` > 0. A request whose answer is not in
    ``ok`` (or none came within ``answer_within`` seconds of its scheduled time) is an error.
    """
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    wire = [encode(line, f"{host}:{port}") for line in lines]
    total = min(int(rate * seconds), max_requests)
    idle: list[Connection] = []
    opened = 0
    # Bounds the connections: a request waits for a free one in the generator (and that
    # wait counts in its latency, measured from its scheduled time).
    slots = asyncio.Semaphore(connections)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    # perf_counter, not the loop's clock: uvloop's loop.time() has millisecond resolution.
    clock = time.perf_counter

    async def one(index: int, scheduled: float) -> None:
        nonlocal opened
        status = NO_STATUS
        try:
            async with asyncio.timeout(scheduled + answer_within - clock()), slots:
                conn = idle.pop() if idle else None
                if conn is None:
                    reader, writer = await asyncio.open_connection(host, port)
                    conn = Connection(reader, writer)
                    opened += 1
                try:
                    status = await conn.exchange(wire[index % len(wire)])
                except BaseException:
                    conn.close()
                    raise
                idle.append(conn)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        latencies.append((clock() - scheduled) * 1000)
        statuses[status] += 1

    start = clock() + 0.05
    tasks: list[asyncio.Task[None]] = []
    interval = 1.0 / rate
    index = 0
    while index < total:
        now = clock()
        due = min(total, int((now - start) / interval) + 1) if now >= start else 0
        while index < due:
            scheduled = start + index * interval
            lags.append((now - scheduled) * 1000)
            tasks.append(asyncio.create_task(one(index, scheduled)))
            index += 1
        if index < total:
            await asyncio.sleep(max(0.0, start + index * interval - clock()))
    if tasks:
        await asyncio.wait(tasks)
    wall = clock() - start
    for conn in idle:
        conn.close()
    latencies.sort()
    lags.sort()
    errors = sum(n for status, n in statuses.items() if status not in ok)
    return Result(
        rate=rate, seconds=seconds, scheduled=total, sent=len(latencies), statuses=dict(statuses), errors=errors,
        p50_ms=quantile(latencies, 0.5), p99_ms=quantile(latencies, 0.99), p999_ms=quantile(latencies, 0.999),
        max_ms=latencies[-1] if latencies else math.nan, lag_p99_ms=quantile(lags, 0.99), wall_s=wall,
        connections_opened=opened,
    )  # fmt: skip


def run(
    *,
    base: str,
    lines_file: Path,
    rate: float,
    seconds: float,
    max_requests: int = 10**7,
    timeout: float = 2.0,
    connections: int = 512,
    ok: tuple[int, ...] = (200, 201),
) -> Result:
    """One open-loop run in its own process (so the generator never shares an event loop
    or a core's time slice accounting with the caller); returns its figures."""
    command = [
        sys.executable, "-m", "bench.open_loop", "--base", base, "--lines", str(lines_file), "--rate", str(rate),
        "--seconds", str(seconds), "--max-requests", str(max_requests), "--timeout", str(timeout),
        "--connections", str(connections), "--ok", ",".join(map(str, ok)),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + timeout + 120,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    line = next((r for r in done.stdout.splitlines() if r.startswith("OPEN_LOOP_JSON ")), None)
    if line is None:
        raise RuntimeError(f"the generator printed no summary:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("OPEN_LOOP_JSON "))
    data["statuses"] = {int(k): v for k, v in data["statuses"].items()}
    return Result(**data)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (``--workers N``
    runs the server as a parent and N children), read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += children.get(current, [])
    return total


def wait_idle(pid: int, *, busy_below: float = 0.25, limit: float = 120.0) -> float:
    """Wait until the server (``pid`` and its children) uses less than ``busy_below`` of a
    core over half a second: requests a run gave up on are still queued in the server
    (aiohttp finishes a handler whose client left), and the next run must not pay for
    them. Returns the seconds waited (at most ``limit``)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = tree_cpu_seconds(pid)
        time.sleep(0.5)
        if tree_cpu_seconds(pid) - before < busy_below * 0.5:
            break
    return time.monotonic() - started


@dataclass
class Endpoint:
    """What an open-loop run drives: a server (``pid``: its process, whose CPU and its
    children's is counted), its request lines (used in order across runs, so that a
    limited resource such as a customer's one coupon is not asked for twice while the
    list lasts), and the answers that count as served."""

    label: str
    base: str
    pid: int
    lines: list[str]
    ok: tuple[int, ...] = (200, 201)
    offset: int = 0

    def take(self, count: int, directory: Path) -> Path:
        """A file of the next ``count`` lines (wrapping round the list)."""
        chosen = [self.lines[(self.offset + i) % len(self.lines)] for i in range(count)]
        self.offset += count
        path = directory / f"lines-{self.offset}"
        path.write_text("\n".join(chosen) + "\n")
        return path


@dataclass
class Measured:
    result: Result
    #: Server CPU (the process and its children) per request sent, in milliseconds.
    cpu_ms: float

    def served(self, p99_bound_ms: float = P99_BOUND_MS) -> bool:
        """Under 1% errors (an answer later than the timeout after its schedule is one) and
        a p99 of at most ``p99_bound_ms``."""
        return self.result.error_rate < 0.01 and self.result.p99_ms <= p99_bound_ms


def measure(endpoint: Endpoint, *, rate: float, seconds: float, timeout: float, directory: Path) -> Measured:
    count = max(1, int(rate * seconds))
    lines_file = endpoint.take(count, directory)
    before = tree_cpu_seconds(endpoint.pid)
    result = run(base=endpoint.base, lines_file=lines_file, rate=rate, seconds=seconds, timeout=timeout, ok=endpoint.ok)
    cpu = tree_cpu_seconds(endpoint.pid) - before
    return Measured(result, cpu * 1000 / max(1, result.sent))


@dataclass
class Capacity:
    rate: float
    steps: list[Measured]
    #: True when the highest rate tried was still served: the figure is a lower bound
    #: (the search stopped at ``max_rate``).
    bounded_by_search: bool


def find_capacity(
    endpoint: Endpoint,
    *,
    start: float,
    max_rate: float,
    seconds: float,
    timeout: float,
    directory: Path,
    refine: int = 3,
    p99_bound_ms: float = P99_BOUND_MS,
    say: Callable[[str], None] = print,
) -> Capacity:
    """The highest arrival rate served (Measured.served: under 1% errors and p99 at most
    ``p99_bound_ms``): doubling from ``start`` until a rate fails, then ``refine``
    bisections between the last served and the first failed. Each step is a fresh
    ``seconds``-long run. Precondition: 0 < start <= max_rate."""
    steps: list[Measured] = []

    def attempt(rate: float) -> bool:
        got = measure(endpoint, rate=rate, seconds=seconds, timeout=timeout, directory=directory)
        steps.append(got)
        r = got.result
        # Which answers failed: 0 is "none within the timeout", others a wrong status.
        failed = {status: n for status, n in sorted(r.statuses.items()) if status not in endpoint.ok}
        say(
            f"  {endpoint.label} at {rate:,.0f}/s: errors {r.error_rate:.2%}{f' {failed}' if failed else ''}, "
            f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, CPU {got.cpu_ms:.3f} ms/req, "
            f"generator lag p99 {r.lag_p99_ms:.1f} ms"
        )
        wait_idle(endpoint.pid)  # the queue a failed run left must not land on the next
        return got.served(p99_bound_ms)

    good, bad = 0.0, None
    rate = start
    while rate <= max_rate:
        if attempt(rate):
            good = rate
            rate *= 2
        else:
            bad = rate
            break
    if bad is None:
        return Capacity(good, steps, bounded_by_search=True)
    for _ in range(refine):
        middle = (good + bad) / 2 if good else bad / 2
        if attempt(middle):
            good = middle
        else:
            bad = middle
    return Capacity(good, steps, bounded_by_search=False)


@dataclass
class Profile:
    """An endpoint's capacity, its latency at fractions of it, and a ceiling's CPU per
    request at the same rates (the bare endpoint or ``/healthz``, same run)."""

    capacity: Capacity
    at: dict[float, Measured]
    ceiling_at: dict[float, Measured]
    p99_bound_ms: float = P99_BOUND_MS
    warm_up: Measured | None = None


def profile(
    endpoint: Endpoint,
    ceiling: Endpoint,
    *,
    start: float,
    max_rate: float,
    step_seconds: float,
    seconds: float,
    fractions: list[float],
    timeout: float,
    directory: Path,
    settle: Callable[[], None] = lambda: None,
    p99_bound_ms: float = P99_BOUND_MS,
    say: Callable[[str], None] = print,
) -> Profile:
    """A warm-up (2 s at half of ``start``, not counted: each server process's first
    requests fill its pools and caches), find_capacity, then a ``seconds``-long run at
    each fraction of the capacity found, each followed by the ceiling at the same rate.
    ``settle`` runs after each run of the endpoint (e.g. waiting for a background worker
    to drain) so the next is not charged for it. Returns the warm-up's figures too."""
    warm = measure(endpoint, rate=start / 2, seconds=2.0, timeout=timeout, directory=directory)
    settle()
    wait_idle(endpoint.pid)
    say(f"capacity of {endpoint.label} (after a warm-up at {start / 2:,.0f}/s, errors {warm.result.error_rate:.2%}):")
    capacity = find_capacity(
        endpoint, start=start, max_rate=max_rate, seconds=step_seconds, timeout=timeout, directory=directory,
        p99_bound_ms=p99_bound_ms, say=say,
    )  # fmt: skip
    settle()
    at: dict[float, Measured] = {}
    ceiling_at: dict[float, Measured] = {}
    if capacity.rate <= 0:
        say(f"{endpoint.label}: not even {start / 2**3:,.0f}/s was served; no runs at fractions of it")
        fractions = []
    for fraction in fractions:
        rate = capacity.rate * fraction
        wait_idle(endpoint.pid)
        say(f"{fraction:.0%} of capacity: {rate:,.0f}/s for {seconds:.0f} s, then {ceiling.label} at that rate")
        at[fraction] = measure(endpoint, rate=rate, seconds=seconds, timeout=timeout, directory=directory)
        settle()
        wait_idle(ceiling.pid)
        ceiling_at[fraction] = measure(ceiling, rate=rate, seconds=seconds, timeout=timeout, directory=directory)
    return Profile(capacity, at, ceiling_at, p99_bound_ms, warm)


def table(label: str, ceiling: str, got: Profile) -> list[str]:
    """The figures as a Markdown table, for bench/RESULTS.md."""
    bound = " (the search's upper bound: at least this)" if got.capacity.bounded_by_search else ""
    rows = [
        f"{label}: capacity (highest rate with < 1% failures and p99 <= {got.p99_bound_ms:g} ms) "
        f"{got.capacity.rate:,.0f}/s{bound}",
        f"| load | rate/s | p50 ms | p99 ms | p99.9 ms | max ms | failed | server CPU ms/req | {ceiling} CPU ms/req "
        "| CPU ratio | generator lag p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fraction, measured in got.at.items():
        r, base = measured.result, got.ceiling_at[fraction]
        rows.append(
            f"| {fraction:.0%} | {r.rate:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.p999_ms:.1f} | {r.max_ms:.1f} "
            f"| {r.error_rate:.2%} | {measured.cpu_ms:.3f} | {base.cpu_ms:.3f} "
            f"| {measured.cpu_ms / max(base.cpu_ms, 1e-9):.2f}x | {r.lag_p99_ms:.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--lines", type=Path, required=True, help="request lines (see the module's docstring)")
    parser.add_argument("--rate", type=float, required=True, help="arrivals per second")
    parser.add_argument("--seconds", type=float, required=True, help="length of the schedule")
    parser.add_argument("--max-requests", type=int, default=10**7, help="bound on the count")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds; a later answer is an error")
    parser.add_argument("--connections", type=int, default=512, help="most connections open at once")
    parser.add_argument("--ok", default="200,201", help="statuses that are not errors")
    args = parser.parse_args()
    lines = [line for line in args.lines.read_text().splitlines() if line]
    if not lines or args.rate <= 0 or args.seconds <= 0:
        parser.error("needs request lines, a positive rate and a positive length")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in requirements.txt
        runner = asyncio.run
    result = runner(
        drive(
            base=args.base,
            lines=lines,
            rate=args.rate,
            seconds=args.seconds,
            max_requests=args.max_requests,
            answer_within=args.timeout,
            connections=args.connections,
            ok=frozenset(int(s) for s in args.ok.split(",")),
        )
    )
    print("OPEN_LOOP_JSON " + json.dumps(asdict(result) | {"latencies_ms": []}))


if __name__ == "__main__":
    main()
