"""Real servers for the test suite: a redis-server and a throwaway PostgreSQL cluster on
loopback, started once per test session and stopped at its end."""

from __future__ import annotations

import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {seconds} s")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run ./scripts/test, which installs it")
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port, 10, "redis-server")
        return cls(port, process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql: run ./scripts/test")
    return Path(found[-1]).parent


@dataclass
class PostgresCluster:
    """A cluster in a temporary directory. PostgreSQL refuses to run as root, so as root
    the cluster belongs to the `postgres` system user."""

    port: int
    datadir: Path
    bindir: Path
    run_as: list[str]

    @property
    def admin_dsn(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> PostgresCluster:
        bindir = _pg_bindir()
        root = Path(tempfile.mkdtemp(prefix="wxc-pg-"))
        datadir = root / "data"
        run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            run_as = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        port = free_port()
        # Durability off: a throwaway cluster trades crash safety for speed.
        options = " ".join(
            [f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-c fsync=off -c full_page_writes=off",
             "-c synchronous_commit=off -c max_connections=200"]
        )  # fmt: skip
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(root / "log"),
             "-w", "start"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return cls(port, datadir, bindir, run_as)

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus port (port + 10000) is free and valid too."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randint(20000, 50000)
        if port not in ports and _bindable(port) and _bindable(port + 10000):
            ports.append(port)
    return ports


@dataclass
class RedisClusterServers:
    """Three masters on loopback, joined with `redis-cli --cluster create`."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @classmethod
    def start(cls) -> RedisClusterServers:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server / redis-cli are not installed: run ./scripts/test")
        workdir = Path(tempfile.mkdtemp(prefix="wxc-cluster-"))
        ports = _cluster_ports(3)
        processes = []
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--dir",
                        str(node_dir),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _wait_for_port(port, 10, "redis-server (cluster node)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
        # Wait until every node agrees the cluster is up.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [
                subprocess.run([cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True).stdout
                for p in ports
            ]
            if all("cluster_state:ok" in s for s in states):
                return cls(ports, processes, workdir)
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not come up")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)
