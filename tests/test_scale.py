"""Scale: 10 million synthetic leads train within 3 GB of peak memory (slow; `make test-slow`).

The timing comparison with the seed-style approach lives in benchmarks/train_scale.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = 10_000_000
PEAK_RSS_LIMIT_MB = 3000
# A wrapper whose only child is the command: RUSAGE_CHILDREN's peak is exactly that child's.
_PEAK_OF_CHILD = ("import json, resource, subprocess, sys; "
                  "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
                  "print(json.dumps({'code': done.returncode, 'stdout': done.stdout, 'stderr': done.stderr[-2000:], "
                  "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


@pytest.mark.slow
def test_ten_million_rows_train_under_3_gb(tmp_path: Path):
    data = tmp_path / "leads.parquet"
    subprocess.run([sys.executable, "-m", "training", "data", "synth", "--rows", str(ROWS), "--out", str(data)],
                   check=True, capture_output=True)
    command = [sys.executable, "-m", "training", "--home", str(tmp_path / "state"), "train", "--data", str(data),
               "--out", str(tmp_path / "model"), "--json"]
    measured = json.loads(subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, *command], check=True,
                                         capture_output=True, text=True).stdout)
    assert measured["code"] == 0, measured["stderr"]
    result = json.loads(measured["stdout"][measured["stdout"].index("{"):])
    assert measured["peak_mb"] < PEAK_RSS_LIMIT_MB
    assert result["metrics"]["rows"] == ROWS // 5 and result["metrics"]["r2"] > 0.8
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["data"]["fingerprint"]["rows"] == ROWS
