"""Batch transform through built-in XGBoost against one Python process doing the same work.

A booster (50 features, 100 trees, depth 6, ``reg:squarederror``) is trained here on
generated data; a CSV of ``--rows`` rows (default 1,000,000) of 50 features is written and
uploaded to a fresh openmaker server.

- ours: ``CreateTransformJob`` (the built-in ``sagemaker-xgboost:1.7-1`` image, SplitType
  ``Line``, BatchStrategy ``MultiRecord``, ``MaxConcurrentTransforms=2``, ``MaxPayloadInMB=6``,
  ``AssembleWith=Line``) until ``DescribeTransformJob``, polled every 0.1 s, says Completed:
  model-server start, reading the object, cutting it into 6 MB requests, HTTP, CSV parsing
  and prediction in the model server, writing and uploading ``.out``.
- peer: a fresh ``python -c`` process that reads the same CSV with
  ``pandas.read_csv(header=None, dtype=float32)`` and calls ``booster.predict`` on a
  ``DMatrix`` of it, start to exit.

Both figures are rows/s; the target is ours/peer >= 0.8. The ``.out`` object is checked
against the peer's predictions.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    aws_client,
    format_table,
    isolate_aws_environment,
    load_note,
    median,
    openmaker_server,
    ratio,
    record,
    run_main,
    s3_client,
)

FEATURES = 50
TREES = 100
TARGET_RATIO = 0.8
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "transform-benchmark"
DATA_KEY = "input/rows.csv"

# ``python -c PEER model csv predictions.npy``: prints its phase timings as one JSON line.
PEER = """
import json, sys, time
started = time.perf_counter()
import numpy, pandas, xgboost
imported = time.perf_counter()
booster = xgboost.Booster(model_file=sys.argv[1])
data = pandas.read_csv(sys.argv[2], header=None, dtype=numpy.float32).to_numpy()
parsed = time.perf_counter()
predictions = booster.predict(xgboost.DMatrix(data))
predicted = time.perf_counter()
numpy.save(sys.argv[3], predictions)
print(json.dumps({"import_s": imported - started, "parse_s": parsed - imported,
                  "predict_s": predicted - parsed}))
"""


def train_booster(path: Path):
    import numpy as np
    import xgboost

    rng = np.random.default_rng(0)
    features = rng.normal(size=(10_000, FEATURES)).astype(np.float32)
    labels = features @ rng.normal(size=FEATURES) + rng.normal(size=10_000)
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 6},
                            xgboost.DMatrix(features, label=labels), TREES)
    path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    return booster


def make_csv(path: Path, rows: int) -> None:
    """``rows`` x 50 numbers with four decimals, written in blocks."""
    import numpy as np

    rng = np.random.default_rng(20240501)
    block = 100_000
    with open(path, "wb") as out:
        for start in range(0, rows, block):
            values = rng.normal(size=(min(block, rows - start), FEATURES)).astype(np.float32)
            buffer = io.StringIO()
            np.savetxt(buffer, values, fmt="%.4f", delimiter=",")
            out.write(buffer.getvalue().encode())


def run_peer(model: Path, csv: Path, predictions: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEER, str(model), str(csv), str(predictions)],
                            capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **json.loads(result.stdout.strip().splitlines()[-1])}


def run_job(sagemaker, concurrency: int, payload_mb: int) -> dict:
    name = f"bt-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    sagemaker.create_transform_job(
        TransformJobName=name, ModelName="xgb", MaxConcurrentTransforms=concurrency,
        MaxPayloadInMB=payload_mb, BatchStrategy="MultiRecord",
        TransformInput={"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{DATA_KEY}"}},
            "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/output/{name}/",
                         "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1})
    while True:
        job = sagemaker.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if job["TransformJobStatus"] != "Completed":
        raise RuntimeError(f"transform job {name} ended {job['TransformJobStatus']}: "
                           f"{job.get('FailureReason')}")
    return {"seconds": seconds, "job": name,
            "recorded_s": (job["TransformEndTime"] - job["CreationTime"]).total_seconds()}


def check_output(s3, job: str, predictions: Path, rows: int) -> float:
    """The largest difference between the .out and the peer's predictions."""
    import numpy as np

    body = s3.get_object(Bucket=BUCKET, Key=f"output/{job}/rows.csv.out")["Body"].read()
    ours = np.array(body.split(), dtype=np.float32)
    theirs = np.load(predictions)
    if ours.shape != (rows,):
        raise RuntimeError(f"the .out holds {ours.shape[0]} predictions for {rows} rows")
    return float(np.max(np.abs(ours - theirs)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--concurrency", type=int, default=2, help="MaxConcurrentTransforms")
    parser.add_argument("--payload-mb", type=int, default=6, help="MaxPayloadInMB")
    args = parser.parse_args()
    isolate_aws_environment()
    load = load_note()
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-bench-transform-"))
    peers: list[dict] = []
    jobs: list[dict] = []
    try:
        model, csv, predictions = (scratch / "model.ubj", scratch / "rows.csv",
                                   scratch / "predictions.npy")
        train_booster(model)
        make_csv(csv, args.rows)
        print(f"{csv}: {args.rows:,} x {FEATURES} ({csv.stat().st_size / 1e6:.1f} MB)",
              flush=True)
        with openmaker_server() as server:
            s3 = s3_client(server.url)
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(csv), BUCKET, DATA_KEY)
            archive = io.BytesIO()
            with tarfile.open(fileobj=archive, mode="w:gz") as tar:
                tar.add(model, arcname="xgboost-model")
            s3.put_object(Bucket=BUCKET, Key="model/model.tar.gz", Body=archive.getvalue())
            sagemaker = aws_client("sagemaker", server.url)
            sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
                "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz"})
            for number in range(args.rounds):
                peers.append(run_peer(model, csv, predictions))
                jobs.append(run_job(sagemaker, args.concurrency, args.payload_mb))
                print(f"  round {number + 1}: peer {peers[-1]['seconds']:.2f} s, job "
                      f"{jobs[-1]['seconds']:.2f} s", flush=True)
            difference = check_output(s3, jobs[-1]["job"], predictions, args.rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ours = args.rows / median([j["seconds"] for j in jobs])
    peer = args.rows / median([p["seconds"] for p in peers])
    value = ratio(ours, peer)
    met = value is not None and value >= TARGET_RATIO
    print(f"\nbatch transform, {args.rows:,} x {FEATURES} CSV, {TREES} trees, "
          f"MaxConcurrentTransforms={args.concurrency}; median of {args.rounds}")
    print(format_table(
        ["side", "seconds", "rows/s", "import", "parse", "predict"],
        [["transform job (ours)", median([j["seconds"] for j in jobs]), ours, None, None, None],
         ["pandas + booster.predict (peer)", median([p["seconds"] for p in peers]), peer,
          median([p["import_s"] for p in peers]), median([p["parse_s"] for p in peers]),
          median([p["predict_s"] for p in peers])]]))
    print(f"\nours {ours:,.0f} rows/s, peer {peer:,.0f} rows/s: ratio {value:.3f} (target >= "
          f"{TARGET_RATIO:g}): {'met' if met else 'NOT MET'}; largest difference from the "
          f"peer's predictions {difference:.2e}")
    if load:
        print(load)
    record(f"batch_transform.csv_{args.rows}x{FEATURES}_{TREES}_trees", ours=ours, peer=peer,
           unit="rows/s", target=f"ratio >= {TARGET_RATIO:g}", met=met, better="higher",
           peer_name="python + pandas.read_csv + booster.predict",
           details={"concurrency": args.concurrency, "payload_mb": args.payload_mb,
                    "jobs": jobs, "peer": peers, "max_difference": difference, "load": load})
    print("(appended to benchmarks/results/results.jsonl)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
