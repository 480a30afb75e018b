"""The SageMaker Python SDK's processors, unmodified, against openmaker: ScriptProcessor,
SKLearnProcessor and FrameworkProcessor (the runproc.sh flow) with ``wait=True`` and logs,
and PySparkProcessor where pyspark is installed."""

from __future__ import annotations

import json

import pytest
from tests.e2e.test_sagemaker_sdk import ROLE, sdk_session

BUCKET = "sdk-processing-bucket"

PREPROCESS = '''
import argparse, glob, json, os
import pandas as pd
parser = argparse.ArgumentParser()
parser.add_argument("--threshold", type=float, default=0.0)
args = parser.parse_args()
frames = [pd.read_csv(path, header=None)
          for path in sorted(glob.glob("/opt/ml/processing/input/data/*.csv"))]
data = pd.concat(frames)
positive = data[data[1] > args.threshold]
os.makedirs("/opt/ml/processing/output/train", exist_ok=True)
positive.to_csv("/opt/ml/processing/output/train/positive.csv", header=False, index=False)
with open("/opt/ml/processing/output/train/stats.json", "w") as f:
    json.dump({"rows": len(data), "positive": len(positive)}, f)
print(f"kept {len(positive)} of {len(data)} rows")
'''


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    with sdk_session(tmp_path_factory.mktemp("sdk-processing-home"), BUCKET) as (
            session, data, features, _):
        yield session, data, int((features[:, 0] > 0).sum())


def stats(session, uri: str) -> dict:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = session.boto_session.client("s3").get_object(
        Bucket=bucket, Key=f"{key.rstrip('/')}/stats.json")["Body"].read()
    return json.loads(body)


def inputs_and_outputs(data: str):
    from sagemaker.processing import ProcessingInput, ProcessingOutput

    return ([ProcessingInput(source=data, destination="/opt/ml/processing/input/data")],
            [ProcessingOutput(output_name="train", source="/opt/ml/processing/output/train")])


@pytest.mark.timeout(180)
def test_script_processor_runs_the_code_with_arguments(sdk, tmp_path, capsys):
    import sagemaker
    from sagemaker.processing import ScriptProcessor

    session, data, positive = sdk
    (tmp_path / "preprocess.py").write_text(PREPROCESS)
    image = sagemaker.image_uris.retrieve("sklearn", "us-east-1", "1.2-1")
    processor = ScriptProcessor(command=["python3"], image_uri=image, role=ROLE,
                                instance_count=1, instance_type="ml.m5.large",
                                sagemaker_session=session)
    inputs, outputs = inputs_and_outputs(data)
    processor.run(code=str(tmp_path / "preprocess.py"), inputs=inputs, outputs=outputs,
                  arguments=["--threshold", "0"], wait=True, logs=True)
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed"
    assert f"kept {positive} of 200 rows" in capsys.readouterr().out  # the SDK tailed the log
    uri = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert stats(session, uri) == {"rows": 200, "positive": positive}


@pytest.mark.timeout(180)
def test_sklearn_processor(sdk, tmp_path):
    from sagemaker.sklearn.processing import SKLearnProcessor

    session, data, positive = sdk
    (tmp_path / "preprocess.py").write_text(PREPROCESS)
    processor = SKLearnProcessor(framework_version="1.2-1", role=ROLE, instance_count=1,
                                 instance_type="ml.m5.large", sagemaker_session=session)
    inputs, outputs = inputs_and_outputs(data)
    processor.run(code=str(tmp_path / "preprocess.py"), inputs=inputs, outputs=outputs,
                  wait=True, logs=False)
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert stats(session, job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])[
        "rows"] == 200


HELPER = '''
def threshold():
    return 0.0
'''
FRAMEWORK_SCRIPT = '''
import json, os
import joblib  # from requirements.txt, already installed
from helper import threshold
rows = open("/opt/ml/processing/input/data/train.csv").read().splitlines()
positive = [row for row in rows if float(row.split(",")[1]) > threshold()]
os.makedirs("/opt/ml/processing/output/train", exist_ok=True)
with open("/opt/ml/processing/output/train/stats.json", "w") as f:
    json.dump({"rows": len(rows), "positive": len(positive), "cwd": os.getcwd()}, f)
'''


@pytest.mark.timeout(240)
def test_framework_processor_runs_runproc_sh_with_source_dir_and_requirements(sdk, tmp_path,
                                                                            capsys):
    from sagemaker.processing import FrameworkProcessor
    from sagemaker.sklearn import SKLearn

    session, data, positive = sdk
    source = tmp_path / "src"
    source.mkdir()
    (source / "process.py").write_text(FRAMEWORK_SCRIPT)
    (source / "helper.py").write_text(HELPER)
    (source / "requirements.txt").write_text("joblib\n")
    processor = FrameworkProcessor(estimator_cls=SKLearn, framework_version="1.2-1", role=ROLE,
                                   instance_count=1, instance_type="ml.m5.large",
                                   sagemaker_session=session)
    inputs, outputs = inputs_and_outputs(data)
    processor.run(code="process.py", source_dir=str(source), inputs=inputs, outputs=outputs,
                  wait=True, logs=True)
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AppSpecification"]["ContainerEntrypoint"][:2] == [
        "/bin/bash", "/opt/ml/processing/input/entrypoint/runproc.sh"]
    assert "Requirement already satisfied: joblib" in capsys.readouterr().out
    result = stats(session, job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])
    assert result["rows"] == 200 and result["positive"] == positive
    assert result["cwd"].endswith("/opt/ml/processing/input/code")


SPARK_APP = '''
import sys
from pyspark.sql import SparkSession
from spark_helper import label_column
spark = SparkSession.builder.appName("openmaker-test").getOrCreate()
assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
frame = spark.read.csv(sys.argv[1]).withColumnRenamed("_c0", label_column())
frame.groupBy(label_column()).count().write.mode("overwrite").csv(sys.argv[2])
print("spark rows", frame.count())
spark.stop()
'''
SPARK_HELPER = '''
def label_column():
    return "label"
'''


@pytest.mark.timeout(300)
def test_pyspark_processor_runs_on_a_local_spark_session(sdk, tmp_path, capsys):
    pytest.importorskip("pyspark")
    from sagemaker.processing import ProcessingOutput
    from sagemaker.spark.processing import PySparkProcessor

    session, data, _ = sdk
    (tmp_path / "app.py").write_text(SPARK_APP)
    (tmp_path / "spark_helper.py").write_text(SPARK_HELPER)
    processor = PySparkProcessor(framework_version="3.3", role=ROLE, instance_count=1,
                                 instance_type="ml.m5.large", sagemaker_session=session)
    output = f"s3://{BUCKET}/spark-output"
    processor.run(submit_app=str(tmp_path / "app.py"),
                  submit_py_files=[str(tmp_path / "spark_helper.py")],
                  inputs=inputs_and_outputs(data)[0],
                  outputs=[ProcessingOutput(source="/opt/ml/processing/output/spark",
                                            destination=output)],
                  arguments=["/opt/ml/processing/input/data", "/opt/ml/processing/output/spark"],
                  configuration=[{"Classification": "spark-defaults",
                                  "Properties": {"spark.sql.shuffle.partitions": "3"}}],
                  wait=True, logs=True)
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert "spark rows 200" in capsys.readouterr().out
    listed = session.boto_session.client("s3").list_objects_v2(Bucket=BUCKET,
                                                               Prefix="spark-output/")
    assert any(item["Key"].endswith(".csv") for item in listed.get("Contents", []))
