"""Cost of authentication on a request: `GET /api/v1/me` (JWT check + one primary-key
read) against `GET /healthz` (no auth, no I/O) on the same server in the same run.

    .venv/bin/python -m bench.auth [--seconds 5] [--connections 64] [--customers 200]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import login_customers, start_server, wrk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    server = start_server()
    try:
        tokens = asyncio.run(login_customers(server.url, args.customers))
        baseline = wrk("GET /healthz (baseline)", server.url, ["GET\t/healthz\t-\t-"], args.connections, args.seconds)
        me = wrk(
            "GET /api/v1/me (JWT + DB read)",
            server.url,
            [f"GET\t/api/v1/me\tBearer {t}\t-" for t in tokens],
            args.connections,
            args.seconds,
        )
    finally:
        server.stop()
    print(baseline.line())
    print(me.line())
    print(f"ratio me/healthz: {me.rate / baseline.rate:.2f}")


if __name__ == "__main__":
    main()
