from __future__ import annotations

import os
import sys
import uuid
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import kahuna  # noqa: E402
from cluster import Cluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    server = os.environ.get("KAHUNA_SERVER")
    if not server:
        pytest.fail("KAHUNA_SERVER must name the kahuna-server binary (python/test.sh sets it)")
    c = Cluster(server).up()
    try:
        yield c
    finally:
        c.down()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[kahuna.Client]:
    c = kahuna.Client(cluster.endpoints)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"t/{uuid.uuid4().hex[:12]}/"
