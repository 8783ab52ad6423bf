"""A 3-node cluster of real kahuna-server processes, started and stopped by the tests."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Set

import kahuna


# Ports below the kernel's ephemeral range (32768 and up), each handed out once per
# test process (as testkit does). A port from bind(0) could be reused by a later
# cluster while a client or a member of an earlier one still retries a stopped member
# there, and Raft messages from the other cluster then reach the new one.
_FIRST, _COUNT = 20000, 12000
_next = [_FIRST + (os.getpid() * 7919) % _COUNT]
_given: Set[int] = set()


def _bindable(p: int) -> bool:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _free_ports(n: int) -> List[int]:
    """n client ports whose next port (the peer port) is free too, never given before."""
    ports: List[int] = []
    for _ in range(_COUNT):
        if len(ports) == n:
            break
        p = _FIRST + (_next[0] - _FIRST) % (_COUNT - 1)
        _next[0] += 2
        if p in _given or p + 1 in _given:
            continue
        if _bindable(p) and _bindable(p + 1):
            ports.append(p)
            _given.update((p, p + 1))
    if len(ports) < n:
        raise RuntimeError(f"no {n} free port pairs in {_FIRST}..{_FIRST + _COUNT}")
    return ports


ROLES = ("admin", "readwrite", "readonly")


class Cluster:
    """With ``tls=True``: TLS on both ports (a throwaway CA from kahuna-dev-certs, next
    to the server binary, in ``dir/pki``), endpoints ``https://localhost:PORT``, and a
    bearer token per role in ``tokens`` that calls must carry (``--auth-tokens``)."""

    def __init__(self, server: str, size: int = 3, tls: bool = False) -> None:
        self.server = server
        self.dir = tempfile.mkdtemp(prefix="kahuna-py-")
        self.ports = _free_ports(size)
        self.ids = list(range(1, size + 1))
        self.procs: Dict[int, subprocess.Popen[bytes]] = {}
        self.initial = ",".join(f"{i}=127.0.0.1:{self.ports[i - 1] + 1}" for i in self.ids)
        self.pki = os.path.join(self.dir, "pki")
        self.tokens: Dict[str, str] = {}
        self.extra: List[str] = []
        self.tls: Optional[kahuna.Tls] = None
        if tls:
            self._make_pki()

    def _make_pki(self) -> None:
        certs = os.path.join(os.path.dirname(self.server), "kahuna-dev-certs")
        subprocess.run([certs, self.pki, "localhost", "127.0.0.1"], check=True, stdout=subprocess.DEVNULL)
        lines = []
        for role in ROLES:
            token = secrets.token_hex(16)
            self.tokens[role] = token
            lines.append(f"sha256:{hashlib.sha256(token.encode()).hexdigest()} {role}")
        tokens_file = os.path.join(self.dir, "auth-tokens")
        with open(tokens_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        cert, key, ca = (os.path.join(self.pki, f) for f in ("server.pem", "server-key.pem", "ca.pem"))
        self.extra = [
            "--tls-cert", cert, "--tls-key", key,
            "--peer-tls-cert", cert, "--peer-tls-key", key, "--peer-tls-ca", ca,
            "--auth-tokens", tokens_file,
        ]
        self.tls = kahuna.Tls(ca_cert=ca)

    def pki_file(self, name: str) -> str:
        return os.path.join(self.pki, name)

    @property
    def endpoints(self) -> List[str]:
        return [self.endpoint(i) for i in self.ids]

    def endpoint(self, i: int) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.ports[i - 1]}"
        return f"127.0.0.1:{self.ports[i - 1]}"

    def start(self, i: int) -> None:
        base = self.ports[i - 1]
        log = open(os.path.join(self.dir, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [
                self.server,
                "--node-id", str(i),
                "--listen", f"127.0.0.1:{base}",
                "--peer-listen", f"127.0.0.1:{base + 1}",
                "--data-dir", os.path.join(self.dir, f"node{i}"),
                "--initial-cluster", self.initial,
                "--heartbeat-ms", "100",
                "--election-timeout-ms", "1000",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def up(self) -> "Cluster":
        for i in self.ids:
            self.start(i)
        self.leader(timeout=30)
        return self

    def leader(self, timeout: float = 20, exclude: Optional[int] = None) -> int:
        """The leader's id, asked of the running members (not `exclude`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.ids:
                if i == exclude or i not in self.procs or self.procs[i].poll() is not None:
                    continue
                try:
                    c = kahuna.Client(
                        self.endpoint(i), timeout=1, attempt_timeout=0.5, discover_members=False, lazy=True,
                        tls=self.tls, token=self.tokens.get("admin"),
                    )
                    s = c.status()
                except kahuna.KahunaError:
                    continue
                if s.leader_id and s.leader_id != exclude:
                    return s.leader_id
            time.sleep(0.1)
        raise RuntimeError(f"no leader within {timeout} s (logs in {self.dir})")

    def serving_leader(self, timeout: float = 30) -> int:
        """The leader, once it takes a write through its own endpoint: a test that talks
        to the leader alone needs one that is not about to lose an election (on a
        loaded machine the first leader of a new cluster sometimes does)."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.leader(timeout=max(1.0, deadline - time.monotonic()))
            try:
                c = kahuna.Client(
                    self.endpoint(i), timeout=2, attempt_timeout=0.5, discover_members=False, lazy=True,
                    tls=self.tls, token=self.tokens.get("admin"),
                )
                c.set("cluster/serving-leader", str(i))
                return i
            except kahuna.KahunaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill(self, i: int) -> None:
        p = self.procs.pop(i, None)
        if p is not None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait(10)

    def pause(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)

    def down(self) -> None:
        for i in list(self.procs):
            self.kill(i)
        if not os.environ.get("KAHUNA_KEEP_BUILD"):
            shutil.rmtree(self.dir, ignore_errors=True)
