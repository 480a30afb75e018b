"""Built-in XGBoost job overhead: a CreateTrainingJob on the built-in algorithm, next to a
plain Python process that loads the same CSV and calls ``xgboost.train`` itself.

Data: a seeded 100,000 x 50 regression CSV (label first, no header, ``%.6g`` floats, about
47 MB). Parameters on both sides: ``objective=reg:squarederror``, ``max_depth=6``,
``eta=0.3``, 100 rounds; everything else is xgboost's default (``tree_method`` auto, which
is hist, and every core).

Peer: a fresh ``python -c`` process that imports pandas and xgboost, reads the CSV with
``pandas.read_csv(path, header=None, dtype=float32)`` (the quickest of the ordinary ways on
this machine: the pyarrow engine, ``numpy.loadtxt`` and ``DMatrix("...?format=csv")`` were no
faster), builds a ``DMatrix`` and runs ``xgboost.train(params, dtrain, 100)``; timed from
process start to exit. Ours: ``CreateTrainingJob`` with the ``sagemaker-xgboost:1.7-1`` image
and no ``sagemaker_program`` (the built-in algorithm), one ``train`` channel (text/csv) over
the uploaded CSV, on a server started beforehand; timed from the CreateTrainingJob call until
DescribeTrainingJob (polled every 0.1 s) says Completed. Each side runs once untimed, then
``--rounds`` times in turn; medians are reported. Target: ours within 1.15x the peer's time
and less than 2 s more. Where the job's time went comes from its SecondaryStatusTransitions
and the in-process timings of a second peer that also evaluates the training set every
round, as the built-in does to print ``train-rmse``. Appends the result to
benchmarks/results/results.jsonl.

    python benchmarks/xgboost_job.py [--rounds 3] [--rows 100000] [--columns 50]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import (
    TRAINING_ROLE,
    aws_client,
    format_table,
    isolate_aws_environment,
    job_phases,
    load_note,
    median,
    openmaker_server,
    ratio,
    record,
    run_main,
    s3_client,
    training_job_events,
    wait_for_training_job,
)

BUCKET = "benchmark-xgboost"
DATA_KEY = "xgboost/train/data.csv"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PARAMS = {"objective": "reg:squarederror", "max_depth": 6, "eta": 0.3}
NUM_ROUND = 100
ROUND_LINE = re.compile(r"^\[\d+\]")  # "[3]#011train-rmse:0.43", one per round
TARGET_RATIO = 1.15
TARGET_EXTRA_SECONDS = 2.0

# The peer, run as ``python -c PEER csv rounds params-json evals``; it prints its own
# phase timings (from interpreter start) as one JSON line.
PEER = """
import json, sys, time
started = time.perf_counter()
import numpy, pandas, xgboost
imported = time.perf_counter()
path, rounds, params, evals = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
data = pandas.read_csv(path, header=None, dtype=numpy.float32).to_numpy()
dtrain = xgboost.DMatrix(data[:, 1:], label=data[:, 0])
loaded = time.perf_counter()
xgboost.train(params, dtrain, rounds,
              evals=[(dtrain, "train")] if evals == "train" else (), verbose_eval=False)
trained = time.perf_counter()
print(json.dumps({"import_s": imported - started, "load_s": loaded - imported,
                  "train_s": trained - loaded}))
"""


def make_csv(path: Path, rows: int, columns: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20240501)
    features = rng.normal(size=(rows, columns)).astype(np.float32)
    weights = rng.normal(size=columns)
    labels = features @ weights + np.sin(3 * features[:, 0]) + 0.1 * rng.normal(size=rows)
    frame = pd.DataFrame(np.column_stack([labels, features]))
    frame.to_csv(path, header=False, index=False, float_format="%.6g")


def run_peer(path: Path, evals: str = "none") -> dict:
    """Seconds for a fresh peer process, start to exit, and its own phase timings."""
    argv = [sys.executable, "-c", PEER, str(path), str(NUM_ROUND), json.dumps(PARAMS), evals]
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **json.loads(result.stdout.strip().splitlines()[-1])}


def run_job(sagemaker, logs) -> dict:
    """Seconds from CreateTrainingJob to a DescribeTrainingJob that says Completed."""
    name = f"xgb-{uuid.uuid4().hex[:10]}"
    hyperparameters = {"num_round": str(NUM_ROUND), **{k: str(v) for k, v in PARAMS.items()}}
    started = time.perf_counter()
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=TRAINING_ROLE,
        HyperParameters=hyperparameters,
        InputDataConfig=[{
            "ChannelName": "train", "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/{DATA_KEY}"}},
        }],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 900},
    )
    created = time.perf_counter()
    job = wait_for_training_job(sagemaker, name, poll=0.1)
    seconds = time.perf_counter() - started
    transitions = job.get("SecondaryStatusTransitions", [])
    # From the job's own clock: creation to the end of its last phase (no polling in it).
    recorded = ((transitions[-1]["StartTime"] - job["CreationTime"]).total_seconds()
                if transitions else None)
    return {"seconds": seconds, "job": name, "create_call_s": created - started,
            "recorded_s": recorded, "phases": job_phases(job),
            "timeline": timeline(job, training_job_events(logs, name))}


def timeline(job: dict, events: list[dict]) -> dict[str, float]:
    """Seconds after CreationTime (the server's clock, as the log timestamps are) at which
    the job reached each point: its phases, its first log line, first and last round."""
    zero = job["CreationTime"].timestamp()
    points = {}
    for transition in job.get("SecondaryStatusTransitions", []):
        points[f"{transition['Status']} starts"] = transition["StartTime"].timestamp() - zero
    rounds = [e for e in events if ROUND_LINE.match(e["message"])]
    if events:
        points["first log line"] = events[0]["timestamp"] / 1000 - zero
    if rounds:
        points["round 0 logged"] = rounds[0]["timestamp"] / 1000 - zero
        points["last round logged"] = rounds[-1]["timestamp"] / 1000 - zero
    if events:
        points["last log line"] = events[-1]["timestamp"] / 1000 - zero
    return dict(sorted(points.items(), key=lambda item: item[1]))


def timeline_rows(jobs: list[dict], points: list[str]) -> list[list]:
    rows, previous = [], 0.0
    for point in points:
        at = median([j["timeline"][point] for j in jobs if point in j["timeline"]])
        rows.append([point, at, at - previous])
        previous = at
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed runs of each side, taken in turn (the median is reported)")
    parser.add_argument("--rows", type=int, default=100_000, help="CSV rows")
    parser.add_argument("--columns", type=int, default=50, help="CSV feature columns")
    args = parser.parse_args()
    isolate_aws_environment()

    load = load_note()
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-bench-xgboost-"))
    peers: list[dict] = []
    peers_eval: list[dict] = []
    jobs: list[dict] = []
    try:
        csv = scratch / "data.csv"
        make_csv(csv, args.rows, args.columns)
        print(f"{csv}: {args.rows:,} x {args.columns} "
              f"({csv.stat().st_size / 1e6:.1f} MB)", flush=True)
        with openmaker_server() as server:
            print(f"openmaker: {server.url} (pid {server.pid})", flush=True)
            s3 = s3_client(server.url)
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(csv), BUCKET, DATA_KEY)
            sagemaker = aws_client("sagemaker", server.url)
            logs = aws_client("logs", server.url)
            warm_peer, warm_job = run_peer(csv), run_job(sagemaker, logs)
            print(f"  warm-up: peer {warm_peer['seconds']:.2f} s, job "
                  f"{warm_job['seconds']:.2f} s", flush=True)
            for number in range(args.rounds):
                peers.append(run_peer(csv))
                jobs.append(run_job(sagemaker, logs))
                peers_eval.append(run_peer(csv, evals="train"))
                print(f"  round {number + 1}: peer {peers[-1]['seconds']:.2f} s, job "
                      f"{jobs[-1]['seconds']:.2f} s ({jobs[-1]['job']}), peer with train "
                      f"eval {peers_eval[-1]['seconds']:.2f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ours = median([j["seconds"] for j in jobs])
    peer = median([p["seconds"] for p in peers])
    value = ratio(ours, peer)
    extra = ours - peer
    met = value is not None and value <= TARGET_RATIO and extra < TARGET_EXTRA_SECONDS

    def peer_row(label: str, runs: list[dict]) -> list:
        return [label, median([r["seconds"] for r in runs]), median([r["import_s"] for r in runs]),
                median([r["load_s"] for r in runs]), median([r["train_s"] for r in runs])]

    print(f"\nxgboost, {args.rows:,} x {args.columns} CSV, {NUM_ROUND} rounds, {PARAMS}; "
          f"median of {args.rounds} (seconds)")
    print(format_table(["peer process", "total", "import", "read CSV + DMatrix", "train"],
                       [peer_row("xgboost.train (peer)", peers),
                        peer_row("  + evals=[train] (diagnostic)", peers_eval)]))
    names = list(dict.fromkeys(name for j in jobs for name in j["phases"]))
    print()
    print(format_table(
        ["built-in job (ours)", "total", "create call", "job's own clock",
         *[f"{name}" for name in names]],
        [["CreateTrainingJob..Completed", ours, median([j["create_call_s"] for j in jobs]),
          median([j["recorded_s"] for j in jobs if j["recorded_s"] is not None]),
          *[median([j["phases"].get(name, 0.0) for j in jobs]) for name in names]]]))
    points = list(dict.fromkeys(point for j in jobs for point in j["timeline"]))
    print("\nthe job's timeline, seconds after CreationTime (median; server clock)")
    print(format_table(["point", "at", "since the previous"], timeline_rows(jobs, points)))
    print(f"\nours {ours:.2f} s, peer {peer:.2f} s: ratio {value:.3f} (target <= "
          f"{TARGET_RATIO:g}), {extra:+.2f} s (target < {TARGET_EXTRA_SECONDS:g} s): "
          f"{'met' if met else 'NOT MET'}")
    if load:
        print(load)
    record(f"xgboost_job.csv_{args.rows}x{args.columns}_{NUM_ROUND}_rounds", ours=ours,
           peer=peer, unit="s", target=f"ratio <= {TARGET_RATIO:g} and ours - peer < "
           f"{TARGET_EXTRA_SECONDS:g} s", met=met, better="lower",
           peer_name="python + pandas.read_csv + xgboost.train",
           details={"extra_seconds": extra, "params": PARAMS, "num_round": NUM_ROUND,
                    "peer": peers, "peer_with_train_eval": peers_eval, "jobs": jobs,
                    "warm_up": {"peer": warm_peer, "job": warm_job}, "load": load})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
