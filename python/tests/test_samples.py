from __future__ import annotations

import os
import subprocess
import sys

from cluster import Cluster


def test_samples_run(cluster: Cluster) -> None:
    samples = os.environ.get("KAHUNA_SAMPLES") or os.path.join(os.path.dirname(__file__), "..", "..", "samples", "python")
    r = subprocess.run(
        [sys.executable, os.path.join(samples, "run_samples.py"), ",".join(cluster.endpoints)],
        cwd=samples,
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "samples: 4 workflows passed" in r.stdout
