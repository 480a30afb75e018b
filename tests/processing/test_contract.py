"""The processing container contract without a server: command lines under Docker's
override rules, container paths mapped to the job's tree (arguments, shell scripts, and
Python's file functions through pathmap/sitecustomize.py), config files, exit messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from openmaker.processing.contract import (
    ProcessingLayout,
    command_line,
    exit_message,
    processing_relative,
    resource_config,
    script_to_translate,
    translate_argument,
    translate_script,
)
from openmaker.processing.runner import PATHMAP_DIR


@pytest.fixture
def layout(tmp_path):
    layout = ProcessingLayout(tmp_path / "work" / "job", 1)
    layout.create()
    return layout


def test_entrypoint_and_arguments_follow_docker_override_rules():
    app = {"ContainerEntrypoint": ["python3", "run.py"], "ContainerArguments": ["--x", "1"]}
    assert command_line(app, ("smspark-submit",)) == ["python3", "run.py", "--x", "1"]
    assert command_line({"ContainerArguments": ["app.py"]}, ("smspark-submit",)) == [
        "smspark-submit", "app.py"]
    assert command_line({"ContainerArguments": ["python3", "a.py"]}, ()) == ["python3", "a.py"]
    assert command_line({}, ()) == []


def test_arguments_with_container_paths_are_mapped(layout):
    root = str(layout.root)
    assert translate_argument("/opt/ml/processing/input/data", layout) == \
        f"{root}/processing/input/data"
    assert translate_argument("--input=/opt/ml/processing/in", layout) == \
        f"--input={root}/processing/in"
    assert translate_argument("/opt/mlx/data", layout) == "/opt/mlx/data"
    assert translate_argument("s3://bucket/opt/ml/x", layout) == "s3://bucket/opt/ml/x"
    assert translate_argument("python3", layout) == "python3"


@pytest.mark.parametrize("path", ["/tmp/data", "/opt/ml/input/data", "/opt/ml/processing/",
                                  "/opt/ml/processing/../model", "opt/ml/processing/x"])
def test_local_paths_must_lie_under_opt_ml_processing(path):
    with pytest.raises(ValueError, match="S3Input.LocalPath"):
        processing_relative(path, "S3Input.LocalPath")


def test_a_shell_script_run_from_the_tree_gets_its_paths_mapped(layout):
    script = layout.container_path("/opt/ml/processing/input/entrypoint/run.sh")
    script.parent.mkdir(parents=True)
    script.write_text("cd /opt/ml/processing/input/code/\ncat /opt/mlx/keep\n"
                      "echo x > '/opt/ml/output/message'\n")
    script.chmod(0o750)
    assert script_to_translate(["/bin/bash", "-e", str(script)], layout) == script
    assert script_to_translate(["python3", str(script)], layout) is None
    assert translate_script(script, layout)
    assert script.read_text() == (f"cd {layout.root}/processing/input/code/\n"
                                  "cat /opt/mlx/keep\n"
                                  f"echo x > '{layout.root}/output/message'\n")
    assert script.stat().st_mode & 0o777 == 0o750
    assert not translate_script(script, layout)  # nothing left to map


def test_an_executable_script_is_mapped_only_with_a_shell_shebang(layout):
    script = layout.container_path("/opt/ml/processing/input/code/run")
    script.parent.mkdir(parents=True)
    script.write_text("#!/usr/bin/env bash\nls /opt/ml/processing\n")
    assert script_to_translate([str(script)], layout) == script
    script.write_text("#!/usr/bin/env python3\nprint('/opt/ml/processing')\n")
    assert script_to_translate([str(script)], layout) is None


def test_resource_config_lists_every_host():
    record = {"ProcessingResources": {"ClusterConfig": {"InstanceCount": 3}}}
    assert resource_config(record, 2) == {"current_host": "algo-2",
                                          "hosts": ["algo-1", "algo-2", "algo-3"]}


def test_exit_message_joins_hosts_and_refuses_non_utf8(tmp_path):
    layouts = [ProcessingLayout(tmp_path, index) for index in (1, 2)]
    for layout in layouts:
        layout.create()
    assert exit_message(layouts) == ""
    layouts[0].message_file.write_text("é" * 600)  # 1200 bytes
    layouts[1].message_file.write_text("second")
    message = exit_message(layouts)
    assert message == "é" * 512 and len(message.encode()) == 1024
    layouts[1].message_file.write_bytes(b"\xff")
    with pytest.raises(UnicodeDecodeError):
        exit_message(layouts)


MAPPED = '''
import glob, json, os, pathlib, shutil
import pandas as pd
out = "/opt/ml/processing/output"
os.makedirs(out + "/deep/er", exist_ok=True)
with open("/opt/ml/processing/input/data/rows.csv") as f:
    rows = f.read().splitlines()
pathlib.Path(out, "path.txt").write_text("via pathlib")
shutil.copy("/opt/ml/processing/input/data/rows.csv", out + "/copy.csv")
os.rename(out + "/copy.csv", out + "/deep/moved.csv")
frame = pd.read_csv("/opt/ml/processing/input/data/rows.csv", header=None)
frame.to_csv(out + "/deep/er/frame.csv", index=False, header=False)
frame.columns = ["a", "b"]
frame.to_parquet(out + "/frame.parquet")
parquet_rows = len(pd.read_parquet(out + "/frame.parquet"))
import socket
os.chdir("/opt/ml/processing/input")
report = {
    "rows": rows,
    "exists": os.path.exists("/opt/ml/processing/input/data/rows.csv"),
    "isdir": os.path.isdir("/opt/ml/processing/output/deep"),
    "listdir": sorted(os.listdir("/opt/ml/processing/output")),
    "glob": sorted(glob.glob("/opt/ml/processing/output/deep/**/*.csv", recursive=True)),
    "walk": sorted(f for _, _, files in os.walk("/opt/ml/processing/output") for f in files),
    "cwd_listing": os.listdir("."),
    "size": os.path.getsize("/opt/ml/processing/output/path.txt"),
    "outside": os.path.exists("/opt/mlx"),
    "parquet_rows": parquet_rows,
    "peer": socket.gethostbyname("algo-2"),
}
os.remove(out + "/path.txt")
print(json.dumps(report))
'''


def test_python_file_functions_see_container_paths_in_the_tree(layout, tmp_path):
    data = layout.container_path("/opt/ml/processing/input/data")
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("1,2\n3,4\n")
    env = {"PYTHONPATH": str(PATHMAP_DIR), "OPENMAKER_OPT_ML_ROOT": str(layout.root),
           "PATH": os.environ["PATH"],
           "OPENMAKER_HOST_ADDRESSES": json.dumps({"algo-2": "127.0.0.1"})}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(MAPPED)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    out = layout.container_path("/opt/ml/processing/output")
    assert report["rows"] == ["1,2", "3,4"]
    assert report["exists"] and report["isdir"] and not report["outside"]
    assert report["listdir"] == ["deep", "frame.parquet", "path.txt"]
    assert report["parquet_rows"] == 2
    assert report["peer"] == "127.0.0.1"  # the training area's host names resolve too
    assert report["glob"] == ["/opt/ml/processing/output/deep/er/frame.csv",
                              "/opt/ml/processing/output/deep/moved.csv"]
    assert report["walk"] == ["frame.csv", "frame.parquet", "moved.csv", "path.txt"]
    assert report["cwd_listing"] == ["data"]
    assert report["size"] == len("via pathlib")
    assert not (out / "path.txt").exists()
    assert (out / "deep" / "moved.csv").read_text() == "1,2\n3,4\n"
    assert (out / "deep" / "er" / "frame.csv").read_text() == "1,2\n3,4\n"
    assert not os.path.exists("/opt/ml/processing/output/path.txt")
