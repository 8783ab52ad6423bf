"""TLS and bearer tokens: https:// endpoints, each way of trusting a server, roles."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Iterator

import pytest

import kahuna
from cluster import Cluster


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[Cluster]:
    server = os.environ["KAHUNA_SERVER"]
    c = Cluster(server, tls=True).up()
    try:
        yield c
    finally:
        c.down()


def _key() -> str:
    return f"tls/{uuid.uuid4().hex[:12]}"


def test_https_with_the_system_trust_store(tls_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # A deployment trusts the cluster's CA through the system store; SSL_CERT_FILE is
    # how a test puts the throwaway CA there.
    monkeypatch.setenv("SSL_CERT_FILE", tls_cluster.pki_file("ca.pem"))
    c = kahuna.Client(tls_cluster.endpoints, token=tls_cluster.tokens["readwrite"])
    key = _key()
    with c.lock(key, ttl=30, wait=5, retry=0.2) as lock:
        assert lock.acquired and lock.fencing_token is not None and lock.fencing_token > 0
        assert c.set(key + "/state", "done", fence=lock).succeeded
    kv = c.get(key + "/state")
    assert kv is not None and kv.value_str == "done"
    c.close()


def test_a_private_ca_sync_and_async(tls_cluster: Cluster) -> None:
    token = tls_cluster.tokens["readwrite"]
    tls = kahuna.Tls(ca_cert=tls_cluster.pki_file("ca.pem"))
    key = _key()
    c = kahuna.Client(tls_cluster.endpoints, tls=tls, token=token)
    assert c.set(key, "v").succeeded

    async def read() -> str:
        a = await kahuna.AsyncClient.connect(tls_cluster.endpoints, tls=tls, token=token)
        kv = await a.get(key)
        assert kv is not None
        return kv.value_str

    assert asyncio.run(read()) == "v"
    c.close()


def test_a_pinned_certificate_and_a_wrong_pin(tls_cluster: Cluster) -> None:
    token = tls_cluster.tokens["readwrite"]
    with open(tls_cluster.pki_file("server.sha256")) as f:
        pin = f.read().strip()
    pinned = kahuna.Client(tls_cluster.endpoints, tls=kahuna.Tls(pins=(pin,)), token=token)
    assert pinned.status().leader_id > 0
    wrong = kahuna.Client(
        tls_cluster.endpoints, tls=kahuna.Tls(pins=("00" * 32,)), token=token, timeout=2, lazy=True
    )
    with pytest.raises((kahuna.UnavailableError, kahuna.KahunaTimeoutError)):
        wrong.get(_key())


def test_a_client_certificate_is_presented(tls_cluster: Cluster) -> None:
    tls = kahuna.Tls(
        ca_cert=tls_cluster.pki_file("ca.pem"),
        client_cert=tls_cluster.pki_file("client.pem"),
        client_key=tls_cluster.pki_file("client-key.pem"),
    )
    c = kahuna.Client(tls_cluster.endpoints, tls=tls, token=tls_cluster.tokens["readwrite"])
    assert c.set(_key(), "v").succeeded


def test_tokens_and_roles(tls_cluster: Cluster) -> None:
    tls = tls_cluster.tls
    key = _key()
    with pytest.raises(kahuna.UnauthenticatedError):
        kahuna.Client(tls_cluster.endpoints, tls=tls, lazy=True).get(key)
    with pytest.raises(kahuna.UnauthenticatedError):
        kahuna.Client(tls_cluster.endpoints, tls=tls, token="not-a-token", lazy=True).get(key)
    reader = kahuna.Client(tls_cluster.endpoints, tls=tls, token=tls_cluster.tokens["readonly"])
    assert reader.get(key) is None
    with pytest.raises(kahuna.PermissionDeniedError):
        reader.set(key, "v")
    writer = kahuna.Client(tls_cluster.endpoints, tls=tls, token=tls_cluster.tokens["readwrite"])
    assert writer.set(key, "v").succeeded
    kv = reader.get(key)
    assert kv is not None and kv.value_str == "v"
    with pytest.raises(kahuna.PermissionDeniedError):
        writer.trigger_snapshot()


def test_unusable_tls_options_are_config_errors(tls_cluster: Cluster) -> None:
    ca = tls_cluster.pki_file("ca.pem")
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client(tls_cluster.endpoints, tls=kahuna.Tls(ca_cert=ca, pins=("00" * 32,)), lazy=True)
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client(tls_cluster.endpoints, tls=kahuna.Tls(ca_cert="/nonexistent/ca.pem"), lazy=True)
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client(tls_cluster.endpoints, tls=kahuna.Tls(pins=("not-a-pin",)), lazy=True)
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client(tls_cluster.endpoints, tls=kahuna.Tls(client_cert=ca), lazy=True)
    with pytest.raises(kahuna.ConfigError):
        kahuna.Client(["http://localhost:1"], tls=kahuna.Tls(ca_cert=ca), lazy=True)
