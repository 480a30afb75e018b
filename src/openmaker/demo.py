"""The end-to-end demo behind ``make demo``: start a server on the embedded defaults (a
fresh home with a local object store and SQLite), then drive it with unmodified boto3.

It grows with every capability; for now it stores, lists, reads and presigns objects,
asks the SageMaker and STS APIs what they have, trains the built-in XGBoost algorithm on
scikit-learn's bundled breast-cancer data set (reading its metrics and model back), tunes
it, scores the held-out rows with a batch transform job, and has a processing job write a
data-quality report of the training data.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    from openmaker.api.server import read_server_info

    process = subprocess.Popen(
        [sys.executable, "-m", "openmaker", "server", "--home", str(home), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = read_server_info(home)
        if info is not None and info["pid"] == process.pid:
            return process, info["url"]
        if process.poll() is not None:
            raise SystemExit(f"the server exited early:\n{process.stdout.read()}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not start within 60 s")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="openmaker-demo-"))
    step(f"Starting `openmaker server` with home {home}")
    process, url = start_server(home)
    print(f"listening on {url}")
    os.environ["AWS_ENDPOINT_URL"] = url  # how unmodified boto3 code finds openmaker
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        run_demo(home)
    finally:
        step("Stopping the server (SIGTERM)")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        print(f"stopped (exit status {process.returncode}); the home stays at {home}")
    return 0


def run_demo(home: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    step("S3: create a bucket and put two small objects")
    s3.create_bucket(Bucket="demo")
    s3.put_object(Bucket="demo", Key="data/train.csv", Body=b"1,0.5,0.25\n0,0.1,0.75\n",
                  ContentType="text/csv")
    s3.put_object(Bucket="demo", Key="data/validation.csv", Body=b"1,0.4,0.2\n")
    print("put s3://demo/data/train.csv and s3://demo/data/validation.csv")

    step("S3: upload a 20 MB file with boto3's managed (multipart) upload")
    big = home / "big.bin"
    big.write_bytes(os.urandom(20 * 1024 * 1024))
    started = time.perf_counter()
    s3.upload_file(str(big), "demo", "models/big.bin")
    elapsed = time.perf_counter() - started
    head = s3.head_object(Bucket="demo", Key="models/big.bin")
    print(f"uploaded in {elapsed:.2f} s; ETag {head['ETag']} (a multipart ETag ends in -parts)")

    step("S3: list with a delimiter, as `aws s3 ls` does")
    listing = s3.list_objects_v2(Bucket="demo", Delimiter="/", Prefix="")
    for prefix in listing.get("CommonPrefixes", []):
        print(f"  PRE {prefix['Prefix']}")
    for item in s3.list_objects_v2(Bucket="demo", Prefix="data/")["Contents"]:
        print(f"  {item['Key']:<24} {item['Size']:>6} bytes  {item['ETag']}")

    step("S3: download and check the big file, and read a byte range")
    copy = home / "big.copy"
    s3.download_file("demo", "models/big.bin", str(copy))
    same = hashlib.md5(copy.read_bytes()).digest() == hashlib.md5(big.read_bytes()).digest()
    print(f"downloaded copy identical: {same}")
    ranged = s3.get_object(Bucket="demo", Key="data/train.csv", Range="bytes=0-5")["Body"].read()
    print(f"bytes 0-5 of train.csv: {ranged!r}")

    step("S3: a presigned URL works from plain urllib")
    presigned = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "demo", "Key": "data/train.csv"}, ExpiresIn=300
    )
    with urllib.request.urlopen(presigned) as response:
        print(f"GET presigned URL -> {response.status}, {len(response.read())} bytes")

    step("STS and SageMaker answer too")
    identity = boto3.client("sts").get_caller_identity()
    print(f"account {identity['Account']}, caller {identity['Arn']}")
    sagemaker = boto3.client("sagemaker")
    print(f"training jobs: {sagemaker.list_training_jobs()['TrainingJobSummaries']}")
    print(f"endpoints:     {sagemaker.list_endpoints()['Endpoints']}")
    try:
        sagemaker.create_training_job(TrainingJobName="not-yet")
    except Exception as exc:  # botocore validates client-side first
        print(f"create_training_job without its required fields -> {type(exc).__name__}")

    train_xgboost(s3, sagemaker)
    tune_xgboost(sagemaker)
    batch_transform(s3, sagemaker)
    quality_report(s3, sagemaker)

    step("The objects are plain files in the home's object store")
    for path in sorted((home / "storage" / "demo").rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(home)}")


def train_xgboost(s3, sagemaker) -> None:
    import io
    import tarfile

    import numpy as np
    import xgboost
    from sklearn.datasets import load_breast_cancer

    step("SageMaker: train the built-in XGBoost algorithm (label first, no header CSV)")
    features, labels = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    features, labels = features[order], labels[order]

    def csv(rows: slice) -> bytes:
        table = np.column_stack([labels[rows], features[rows]])
        return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in table).encode()

    s3.put_object(Bucket="demo", Key="cancer/train/train.csv", Body=csv(slice(0, 450)))
    s3.put_object(Bucket="demo", Key="cancer/validation/validation.csv",
                  Body=csv(slice(450, None)))

    def channel(name: str) -> dict:
        return {"ChannelName": name, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://demo/cancer/{name}/"}}}

    sagemaker.create_training_job(
        TrainingJobName="demo-xgboost",
        AlgorithmSpecification={  # what sagemaker.image_uris.retrieve("xgboost", ...) gives
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::000000000000:role/demo",
        HyperParameters={"objective": "binary:logistic", "num_round": "50", "max_depth": "4",
                         "eta": "0.2", "eval_metric": "auc,error"},
        InputDataConfig=[channel("train"), channel("validation")],
        OutputDataConfig={"S3OutputPath": "s3://demo/models/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    while True:
        job = sagemaker.describe_training_job(TrainingJobName="demo-xgboost")
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.5)
    path = " -> ".join(t["Status"] for t in job["SecondaryStatusTransitions"])
    print(f"demo-xgboost: {job['TrainingJobStatus']} ({path}) in "
          f"{job['TrainingTimeInSeconds']} s")
    if job["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"training failed: {job.get('FailureReason')}")
    for metric in job["FinalMetricDataList"]:
        print(f"  {metric['MetricName']:<18} {metric['Value']:.4f}")
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    body = s3.get_object(Bucket="demo", Key=uri.split("s3://demo/", 1)[1])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        model = xgboost.Booster()
        model.load_model(bytearray(archive.extractfile("xgboost-model").read()))
    held_out = model.predict(xgboost.DMatrix(features[450:]))
    accuracy = float(((held_out > 0.5) == labels[450:]).mean())
    print(f"{uri}: xgboost loads it without pickle; held-out accuracy {accuracy:.3f}")



def tune_xgboost(sagemaker) -> None:
    step("SageMaker: tune eta and max_depth of the same job (Bayesian search, 2 at a time)")
    definition = sagemaker.describe_training_job(TrainingJobName="demo-xgboost")
    static = {k: v for k, v in definition["HyperParameters"].items()
              if k not in ("eta", "max_depth")}
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="demo-tuning",
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian", "RandomSeed": 0,
            "HyperParameterTuningJobObjective": {"Type": "Maximize",
                                                 "MetricName": "validation:auc"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05",
                                               "MaxValue": "0.5",
                                               "ScalingType": "Logarithmic"}],
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2",
                                            "MaxValue": "6"}]}},
        TrainingJobDefinition={
            key: definition[key] for key in ("RoleArn", "InputDataConfig", "OutputDataConfig",
                                             "ResourceConfig", "StoppingCondition")}
        | {"StaticHyperParameters": static,
           "AlgorithmSpecification": {
               "TrainingImage": definition["AlgorithmSpecification"]["TrainingImage"],
               "TrainingInputMode": "File"}})
    while True:
        job = sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="demo-tuning")
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.5)
    print(f"demo-tuning: {job['HyperParameterTuningJobStatus']}, "
          f"{job['TrainingJobStatusCounters']['Completed']} training jobs completed")
    if job["HyperParameterTuningJobStatus"] != "Completed":
        raise SystemExit(f"tuning failed: {job.get('FailureReason')}")
    summaries = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="demo-tuning", SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending")["TrainingJobSummaries"]
    for summary in summaries:
        tuned = ", ".join(f"{k}={v}" for k, v in sorted(summary["TunedHyperParameters"].items()))
        objective = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        print(f"  {summary['TrainingJobName']:<32} validation:auc {objective:.4f}  {tuned}")
    best = job["BestTrainingJob"]
    print(f"best training job: {best['TrainingJobName']}")


def wait_until_done(describe, status_field: str) -> dict:
    while True:
        job = describe()
        if job[status_field] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.2)


def batch_transform(s3, sagemaker) -> None:
    step("SageMaker: batch transform the validation rows with the trained model")
    trained = sagemaker.describe_training_job(TrainingJobName="demo-xgboost")
    sagemaker.create_model(
        ModelName="demo-xgboost", ExecutionRoleArn="arn:aws:iam::000000000000:role/demo",
        PrimaryContainer={"Image": trained["AlgorithmSpecification"]["TrainingImage"],
                          "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"]})
    rows = s3.get_object(Bucket="demo", Key="cancer/validation/validation.csv")["Body"].read()
    labels = [float(line.split(b",", 1)[0]) for line in rows.splitlines()]
    s3.put_object(Bucket="demo", Key="cancer/batch/validation.csv",  # features only
                  Body=b"".join(line.split(b",", 1)[1] + b"\n" for line in rows.splitlines()))
    sagemaker.create_transform_job(
        TransformJobName="demo-transform", ModelName="demo-xgboost",
        BatchStrategy="MultiRecord", MaxConcurrentTransforms=2,
        TransformInput={"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://demo/cancer/batch/"}},
            "ContentType": "text/csv", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": "s3://demo/scores/", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    job = wait_until_done(
        lambda: sagemaker.describe_transform_job(TransformJobName="demo-transform"),
        "TransformJobStatus")
    if job["TransformJobStatus"] != "Completed":
        raise SystemExit(f"batch transform failed: {job.get('FailureReason')}")
    scores = s3.get_object(Bucket="demo", Key="scores/validation.csv.out")["Body"].read()
    predicted = [float(score) > 0.5 for score in scores.split()]
    accuracy = sum(p == bool(y) for p, y in zip(predicted, labels, strict=True)) / len(labels)
    print(f"demo-transform: Completed; s3://demo/scores/validation.csv.out holds "
          f"{len(predicted)} scores, accuracy {accuracy:.3f}")


REPORT_SCRIPT = """
import glob
import pandas as pd
from openmaker.processing.transforms import data_quality_report
paths = sorted(glob.glob("/opt/ml/processing/input/data/*.csv"))
frame = pd.concat([pd.read_csv(path, header=None) for path in paths], ignore_index=True)
frame.columns = ["label"] + [f"feature_{i}" for i in range(1, frame.shape[1])]
report = data_quality_report(frame, target="label", output_dir="/opt/ml/processing/report")
print("rows:", report["rows"], "columns:", report["column_count"])
"""


def quality_report(s3, sagemaker) -> None:
    step("SageMaker: a processing job writes a data-quality report of the training data")
    s3.put_object(Bucket="demo", Key="code/report.py", Body=REPORT_SCRIPT.encode())
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    sagemaker.create_processing_job(
        ProcessingJobName="demo-report", RoleArn="arn:aws:iam::000000000000:role/demo",
        AppSpecification={"ImageUri": image, "ContainerEntrypoint": [
            "python3", "/opt/ml/processing/input/code/report.py"]},
        ProcessingInputs=[
            {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local,
                                            "S3DataType": "S3Prefix", "S3InputMode": "File"}}
            for name, uri, local in (
                ("code", "s3://demo/code/report.py", "/opt/ml/processing/input/code"),
                ("data", "s3://demo/cancer/train/", "/opt/ml/processing/input/data"))],
        ProcessingOutputConfig={"Outputs": [{"OutputName": "report", "S3Output": {
            "S3Uri": "s3://demo/report/", "LocalPath": "/opt/ml/processing/report",
            "S3UploadMode": "EndOfJob"}}]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 1,
                                               "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 5}},
        StoppingCondition={"MaxRuntimeInSeconds": 300})
    job = wait_until_done(
        lambda: sagemaker.describe_processing_job(ProcessingJobName="demo-report"),
        "ProcessingJobStatus")
    if job["ProcessingJobStatus"] != "Completed":
        raise SystemExit(f"processing failed: {job.get('FailureReason')}")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="demo", Prefix="report/")[
        "Contents"]]
    print(f"demo-report: Completed; wrote {', '.join(f's3://demo/{key}' for key in keys)}")


if __name__ == "__main__":
    raise SystemExit(main())
