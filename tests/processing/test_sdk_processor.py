"""openmaker's own Processor and ScriptProcessor (the SageMaker SDK's argument names)
against a real server: the request they send, logs while waiting, outputs, failures."""

from __future__ import annotations

import pytest
from tests.conftest import start_server

from openmaker import Session
from openmaker.sdk.processing import (
    ProcessingInput,
    ProcessingJobFailedError,
    ProcessingOutput,
    Processor,
    ScriptProcessor,
)

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
BUCKET = "sdk-processor-data"
COUNT = '''
import sys
rows = open("/opt/ml/processing/input/data/rows.csv").read().splitlines()
open("/opt/ml/processing/output/count.txt", "w").write(str(len(rows)) + sys.argv[1])
print("counted", len(rows))
'''


@pytest.fixture(scope="module")
def processor_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("sdk-processor-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/rows.csv", Body=b"1\n2\n3\n")
    yield running
    running.stop()


@pytest.fixture
def session(processor_server, tmp_path) -> Session:
    return Session(processor_server.url, home=tmp_path / "client-home")


def test_script_processor_uploads_the_code_and_the_outputs_land_by_default(session, tmp_path,
                                                                           capsys):
    (tmp_path / "count.py").write_text(COUNT)
    processor = ScriptProcessor(IMAGE, command=["python3"], session=session,
                                base_job_name="counting", env={"A": "1"})
    processor.run(code=str(tmp_path / "count.py"),
                  inputs=[ProcessingInput(f"s3://{BUCKET}/data/",
                                          "/opt/ml/processing/input/data")],
                  outputs=[ProcessingOutput("/opt/ml/processing/output", output_name="count")],
                  arguments=["!"])
    assert "counted 3" in capsys.readouterr().out
    job = processor.describe()
    assert job["ProcessingJobName"].startswith("counting-")
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/processing/input/code/count.py"]
    assert job["Environment"] == {"A": "1"}
    destination = job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert destination.endswith(f"/{job['ProcessingJobName']}/output/count")
    bucket, _, key = destination[len("s3://"):].partition("/")
    body = session.s3.get_object(Bucket=bucket, Key=f"{key}/count.txt")["Body"].read()
    assert body == b"3!"


def test_a_failed_job_raises_with_its_reason(session):
    processor = Processor(IMAGE, entrypoint=["python3", "-c", "raise SystemExit('no data')"],
                          session=session)
    with pytest.raises(ProcessingJobFailedError, match="no data") as caught:
        processor.run(logs=False)
    assert caught.value.job_name == processor.latest_job


def test_run_without_waiting_then_stop(session):
    processor = Processor(IMAGE, entrypoint=["python3", "-c", "import time; time.sleep(60)"],
                          session=session, max_runtime_in_seconds=120)
    processor.run(wait=False)
    assert processor.describe()["StoppingCondition"] == {"MaxRuntimeInSeconds": 120}
    processor.stop()
    assert processor.wait(logs=False)["ProcessingJobStatus"] == "Stopped"
