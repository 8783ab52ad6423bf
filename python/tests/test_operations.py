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


def test_the_grafana_dashboard_uses_only_metrics_the_server_serves(member: Tuple[Cluster, str]) -> None:
    """deploy/grafana/kahuna-dashboard.json: every metric its queries name is one this
    server exports, with the suffixes its type has (a renamed metric breaks a panel
    silently in Grafana, so it breaks this test instead)."""
    import json
    import re

    _, metrics = member
    status, body = _get(f"http://{metrics}/metrics")
    assert status == 200
    kinds = {f.name: f.type for f in text_string_to_metric_families(body)}
    path = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana", "kahuna-dashboard.json")
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v.get("query", "") for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(exprs) >= 15
    used: set[str] = set()
    for expr in exprs:
        for name in re.findall(r"\bkahuna_[a-z_]+", expr):
            used.add(name)
            for suffix, kind in (("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram"), ("_total", "counter")):
                if name.endswith(suffix) and name[: -len(suffix)] in kinds:
                    assert kinds[name[: -len(suffix)]] == kind, f"{name}: {kinds[name[: -len(suffix)]]} has no {suffix}"
                    break
            else:
                assert kinds.get(name) == "gauge", f"{expr!r} names {name}, which the server does not export as a gauge"
    # The panels cover leadership, requests, durability and sizes.
    for needed in ("kahuna_raft_has_leader", "kahuna_grpc_request_duration_seconds_bucket", "kahuna_log_append_duration_seconds_bucket", "kahuna_raft_apply_lag_entries", "kahuna_keys"):
        assert needed in used, needed
    # No two panels overlap on the grid.
    cells: set[Tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
