"""``smspark-submit`` for the SageMaker Spark processing image, on a local Spark session.

The SageMaker SDK's ``PySparkProcessor``/``SparkJarProcessor`` run ``smspark-submit
[--py-files A,B] [--jars A,B] [--files A,B] [--class C] [--local-spark-event-logs-dir D]
[-v] <app> [args...]``, with Spark properties in
``/opt/ml/processing/input/conf/configuration.json`` (EMR-style ``Classification`` /
``Properties`` objects). In the image, smspark-submit forms a YARN cluster over the job's
instances; here one instance runs ``spark-submit --master local[*]`` from pyspark, with
the ``spark-defaults`` properties as ``--conf`` and event logs written to the given
directory. Run as ``python -m openmaker.processing.spark``; needs pyspark and Java.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CONFIGURATION = "/opt/ml/processing/input/conf/configuration.json"


def _mapped(path: str) -> str:
    root = os.environ.get("OPENMAKER_OPT_ML_ROOT")
    if root and (path == "/opt/ml" or path.startswith("/opt/ml/")):
        return root + path[len("/opt/ml"):]
    return path


def _mapped_list(value: str) -> str:
    """A comma-separated option with each container path mapped and each directory
    expanded to the files in it, as smspark-submit does with the SDK's staged
    ``py-files``/``jars``/``files`` inputs."""
    items: list[str] = []
    for item in filter(None, value.split(",")):
        path = Path(_mapped(item))
        if path.is_dir():
            items.extend(str(child) for child in sorted(path.iterdir()) if child.is_file())
        else:
            items.append(str(path) if "://" not in item else item)
    return ",".join(items)


def spark_defaults(configuration: Path) -> dict[str, str]:
    """The ``spark-defaults`` properties of an EMR-style configuration file."""
    if not configuration.is_file():
        return {}
    document = json.loads(configuration.read_text())
    entries = document if isinstance(document, list) else [document]
    properties: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("Classification") == "spark-defaults":
            properties.update({str(k): str(v) for k, v in (entry.get("Properties") or {}).items()})
    return properties


def submit_command(argv: list[str]) -> list[str]:
    """The ``spark-submit`` command line for smspark-submit's ``argv``."""
    import pyspark

    parser = argparse.ArgumentParser(prog="smspark-submit")
    for option in ("--py-files", "--jars", "--files"):
        parser.add_argument(option)
    parser.add_argument("--class", dest="main_class")
    parser.add_argument("--local-spark-event-logs-dir")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("app")
    parser.add_argument("app_arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    command = [str(spark_submit), "--master", "local[*]"]
    for option, value in (("--py-files", args.py_files), ("--jars", args.jars),
                          ("--files", args.files)):
        if value:
            command += [option, _mapped_list(value)]
    if args.main_class:
        command += ["--class", args.main_class]
    properties = spark_defaults(Path(_mapped(CONFIGURATION)))
    if args.local_spark_event_logs_dir:
        directory = Path(_mapped(args.local_spark_event_logs_dir))
        directory.mkdir(parents=True, exist_ok=True)
        properties.update({"spark.eventLog.enabled": "true",
                           "spark.eventLog.dir": directory.as_uri()})
    for key, value in sorted(properties.items()):
        command += ["--conf", f"{key}={value}"]
    if args.verbose:
        command.append("--verbose")
    return [*command, _mapped(args.app), *args.app_arguments]


def main(argv: list[str] | None = None) -> int:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("smspark-submit: pyspark is not installed where the openmaker server runs",
              file=sys.stderr)
        return 127
    command = submit_command(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
