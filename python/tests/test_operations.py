"""The server's operations port, read the way Prometheus reads it: the /metrics text
is parsed by prometheus_client's parser (Prometheus's text format), and /livez and
/readyz answer for a member with a leader."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from typing import Dict, Iterator, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

import kahuna
from cluster import Cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def member() -> Iterator[Tuple[Cluster, str]]:
    server = os.environ.get("KAHUNA_SERVER")
    if not server:
        pytest.fail("KAHUNA_SERVER must name the kahuna-server binary (python/test.sh sets it)")
    c = Cluster(server, size=1)
    metrics = f"127.0.0.1:{_free_port()}"
    c.extra = ["--metrics-listen", metrics]
    c.up()
    try:
        yield c, metrics
    finally:
        c.down()


def _get(url: str) -> Tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


def test_metrics_parse_as_prometheus_text(member: Tuple[Cluster, str]) -> None:
    cluster, metrics = member
    with kahuna.Client(cluster.endpoints) as c:
        for i in range(10):
            c.set(f"ops/{i}", "v")
        with pytest.raises(kahuna.InvalidArgumentError):
            c.set("", "v")
    status, body = _get(f"http://{metrics}/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    kinds: Dict[str, str] = {name: f.type for name, f in families.items()}
    assert kinds["kahuna_grpc_request_duration_seconds"] == "histogram"
    assert kinds["kahuna_read_index_rounds"] == "counter"  # the parser drops `_total`
    assert kinds["kahuna_raft_term"] == "gauge"
    assert len(families) >= 25, sorted(families)

    def sample(name: str, **labels: str) -> float:
        for f in families.values():
            for s in f.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        raise AssertionError(f"no sample {name} {labels}")

    assert sample("kahuna_grpc_request_duration_seconds_count", rpc="kahuna.v1.Kv.Set", code="OK") >= 10
    assert sample("kahuna_grpc_request_duration_seconds_count", rpc="kahuna.v1.Kv.Set", code="INVALID_ARGUMENT") == 1
    assert sample("kahuna_raft_is_leader") == 1
    assert sample("kahuna_keys") >= 10
    assert sample("kahuna_log_append_duration_seconds_count") >= 1
    assert sample("kahuna_process_resident_memory_bytes") > 1_000_000


def test_live_and_ready(member: Tuple[Cluster, str]) -> None:
    _, metrics = member
    assert _get(f"http://{metrics}/livez") == (200, "ok\n")
    assert _get(f"http://{metrics}/readyz") == (200, "ok\n")
    assert _get(f"http://{metrics}/other")[0] == 404
