"""``make demo`` keeps working: the demo runs end to end on a fresh home."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.conftest import clean_environment


@pytest.mark.timeout(240)
def test_the_demo_runs_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, "-m", "openmaker.demo"], capture_output=True,
                          text=True, timeout=200,
                          env=clean_environment({"TMPDIR": str(tmp_path)}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "downloaded copy identical: True" in done.stdout
    assert "demo-xgboost: Completed" in done.stdout
    assert "validation:auc" in done.stdout and "xgboost loads it without pickle" in done.stdout
    assert "demo-tuning: Completed, 6 training jobs completed" in done.stdout
    assert "best training job: demo-tuning-" in done.stdout
    assert "demo-transform: Completed; s3://demo/scores/validation.csv.out holds 119 " \
        "scores" in done.stdout
    assert "demo-report: Completed; wrote s3://demo/report/report.html, " \
        "s3://demo/report/report.json" in done.stdout
