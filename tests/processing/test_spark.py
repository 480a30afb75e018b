"""``smspark-submit`` as the Spark processing image's command: the ``spark-submit`` command
line it builds (container paths mapped, configuration.json's spark-defaults as --conf,
event logs) and its refusal without pyspark. The real local Spark run, where pyspark is
installed, is in tests/e2e/test_sagemaker_sdk_processing.py."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from openmaker.processing import spark


@pytest.fixture
def fake_pyspark(monkeypatch, tmp_path):
    """A stand-in ``pyspark`` module naming where its bin/spark-submit would be, for the
    command-line tests only (the real run below needs the real pyspark)."""
    module = types.ModuleType("pyspark")
    module.__file__ = str(tmp_path / "site" / "pyspark" / "__init__.py")
    monkeypatch.setitem(sys.modules, "pyspark", module)
    return tmp_path / "site" / "pyspark"


def test_the_sdk_options_become_a_local_spark_submit(fake_pyspark, tmp_path, monkeypatch):
    root = tmp_path / "algo-1" / "opt" / "ml"
    configuration = root / "processing" / "input" / "conf" / "configuration.json"
    configuration.parent.mkdir(parents=True)
    configuration.write_text(json.dumps([
        {"Classification": "spark-defaults", "Properties": {"spark.executor.memory": "2g"}},
        {"Classification": "yarn-site", "Properties": {"yarn.x": "ignored"}}]))
    monkeypatch.setenv("OPENMAKER_OPT_ML_ROOT", str(root))
    staged = root / "processing" / "input" / "py-files"
    staged.mkdir(parents=True)
    (staged / "b.py").write_text("")
    (staged / "a.py").write_text("")
    command = spark.submit_command([
        "--py-files", "/opt/ml/processing/input/py-files,/opt/ml/processing/input/extra.py",
        "--jars", "s3://bucket/lib.jar",
        "--local-spark-event-logs-dir", "/opt/ml/processing/spark-events/",
        "/opt/ml/processing/input/code/app.py", "--rows", "10"])
    assert command[:3] == [str(fake_pyspark / "bin" / "spark-submit"), "--master", "local[*]"]
    assert command[command.index("--py-files") + 1] == (
        f"{staged}/a.py,{staged}/b.py,{root}/processing/input/extra.py")
    assert command[command.index("--jars") + 1] == "s3://bucket/lib.jar"
    confs = [command[i + 1] for i, part in enumerate(command) if part == "--conf"]
    assert "spark.executor.memory=2g" in confs
    assert "spark.eventLog.enabled=true" in confs
    assert f"spark.eventLog.dir=file://{root}/processing/spark-events" in confs
    assert not any("yarn" in conf for conf in confs)
    assert command[-3:] == [f"{root}/processing/input/code/app.py", "--rows", "10"]
    assert (root / "processing" / "spark-events").is_dir()


def test_without_pyspark_smspark_submit_fails_saying_so():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyspark is installed")
    result = subprocess.run([sys.executable, "-m", "openmaker.processing.spark", "app.py"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 127
    assert "pyspark is not installed" in result.stderr
