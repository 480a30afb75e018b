"""Changing endpoints that serve: blue/green UpdateEndpoint (all at once, canary, linear),
UpdateEndpointWeightsAndCapacities, instances replaced when they die, shadow variants --
without a request failing."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.hosting.test_endpoints import BUCKET, ROLE, XGBOOST_IMAGE, csv_rows, tar_bytes, wait_for


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("deployments-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 3)).astype(np.float32)
    sagemaker = server.client("sagemaker")
    for name, rounds in (("small", 2), ("large", 8)):
        booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(
            features, label=features[:, 0]), rounds)
        s3.put_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz", Body=tar_bytes(
            {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz",
            "Environment": {"OPENMAKER_LOG_LEVEL": "DEBUG"}})
    s3.put_object(Bucket=BUCKET, Key="models/broken/model.tar.gz", Body=b"no archive")
    sagemaker.create_model(ModelName="broken", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/broken/model.tar.gz"})
    yield server, features
    server.stop()


def config(server, variants: list[dict], **extra) -> str:
    name = f"cfg-{uuid.uuid4().hex[:8]}"
    server.client("sagemaker").create_endpoint_config(
        EndpointConfigName=name, ProductionVariants=[
            {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, **v} for v in variants],
        **extra)
    return name


def endpoint(server, config_name: str) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    server.client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=config_name)
    described = wait_for(server, name, ("InService", "Failed"))
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return name


class Traffic:
    """Invokes the endpoint in a loop on a thread, keeping who answered and what failed."""

    def __init__(self, server, name: str, rows: bytes) -> None:
        self.runtime = server.client("sagemaker-runtime")
        self.name, self.rows = name, rows
        self.served: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.runtime.invoke_endpoint(EndpointName=self.name,
                                                      ContentType="text/csv", Body=self.rows)
                answer["Body"].read()
                self.served.append(answer["InvokedProductionVariant"])
            except ClientError as exc:
                self.errors.append(str(exc))
            time.sleep(0.02)


@pytest.mark.timeout(180)
def test_all_at_once_update_serves_every_request(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small"}]))
    green = config(server, [{"VariantName": "green", "ModelName": "large"}])
    sagemaker = server.client("sagemaker")
    with Traffic(server, name, csv_rows(features[:1])) as load:
        time.sleep(0.5)
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=green)
        assert sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
        described = wait_for(server, name, ("InService", "Failed"))
        time.sleep(0.5)
    assert described["EndpointConfigName"] == green
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["green"]
    assert load.errors == []
    assert load.served[0] == "blue" and load.served[-1] == "green"


@pytest.mark.timeout(180)
def test_canary_update_gives_the_new_fleet_a_share_first(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small"}]))
    green = config(server, [{"VariantName": "green", "ModelName": "large"}])
    sagemaker = server.client("sagemaker")
    with Traffic(server, name, csv_rows(features[:1])) as load:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 3,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT",
                                                               "Value": 50}},
                "TerminationWaitInSeconds": 0}})
        described = wait_for(server, name, ("InService", "Failed"))
    assert described["EndpointConfigName"] == green, described.get("FailureReason")
    assert described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert load.errors == []
    first_green = load.served.index("green")
    assert "blue" in load.served[first_green:]  # both served during the canary wait


def test_traffic_shares_for_each_routing_type():
    from openmaker.hosting.endpoints import traffic_shares

    class Green:
        def instance_count(self) -> int:
            return 4

    assert traffic_shares({"Type": "ALL_AT_ONCE"}, Green()) == [1.0]
    assert traffic_shares({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT",
                                                           "Value": 1}}, Green()) == [0.25, 1.0]
    assert traffic_shares({"Type": "LINEAR", "LinearStepSize": {
        "Type": "CAPACITY_PERCENT", "Value": 40}}, Green()) == [0.4, 0.8, 1.0]


@pytest.mark.timeout(180)
def test_an_update_that_cannot_become_healthy_leaves_the_old_fleet_serving(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small"}]))
    broken = config(server, [{"VariantName": "green", "ModelName": "broken"}])
    sagemaker = server.client("sagemaker")
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=broken)
    described = wait_for(server, name, ("InService", "Failed"))
    assert described["EndpointStatus"] == "InService"
    assert described["FailureReason"].startswith("Update failed")
    assert described["EndpointConfigName"] != broken
    answer = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=csv_rows(features[:1]))
    assert answer["InvokedProductionVariant"] == "blue"


@pytest.mark.timeout(180)
def test_weights_and_capacities_change_in_place(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [
        {"VariantName": "blue", "ModelName": "small", "InitialVariantWeight": 1},
        {"VariantName": "green", "ModelName": "large", "InitialVariantWeight": 0}]))
    sagemaker = server.client("sagemaker")
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 0},
            {"VariantName": "green", "DesiredWeight": 1, "DesiredInstanceCount": 2}])
    described = wait_for(server, name, ("InService",))
    variants = {v["VariantName"]: v for v in described["ProductionVariants"]}
    assert variants["green"]["CurrentInstanceCount"] == 2
    assert variants["green"]["CurrentWeight"] == 1.0 and variants["blue"]["CurrentWeight"] == 0
    runtime = server.client("sagemaker-runtime")
    served = {runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                      Body=csv_rows(features[:1]))["InvokedProductionVariant"]
              for _ in range(6)}
    assert served == {"green"}
    with pytest.raises(ClientError) as raised:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "purple",
                                                             "DesiredWeight": 1}])
    assert "DesiredWeightsAndCapacities.1.VariantName" in raised.value.response["Error"]["Message"]


def model_servers(directory: Path) -> list[int]:
    """The pids of model-server processes working under ``directory``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"openmaker.hosting.model_server" in command and cwd.is_relative_to(directory):
            pids.append(int(entry.name))
    return pids


@pytest.mark.timeout(180)
def test_a_dead_instance_is_replaced_and_requests_go_to_the_others(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small",
                                             "InitialInstanceCount": 2}]))
    directory = server.home / "work" / "endpoints" / name
    before = model_servers(directory)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    runtime = server.client("sagemaker-runtime")
    for _ in range(10):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                Body=csv_rows(features[:1]))["Body"].read()
    deadline = time.monotonic() + 60
    while True:
        after = model_servers(directory)
        if len(after) == 2 and before[0] not in after:
            break
        assert time.monotonic() < deadline, after
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_shadow_variant_gets_a_copy_and_its_answers_are_never_returned(hosting):
    server, features = hosting
    name = endpoint(server, config(
        server, [{"VariantName": "production", "ModelName": "small"}],
        ShadowProductionVariants=[{"VariantName": "shadow", "ModelName": "large",
                                   "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                                   "InitialVariantWeight": 1.0}]))
    described = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["shadow"]
    runtime = server.client("sagemaker-runtime")
    for _ in range(5):
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                         Body=csv_rows(features[:1]))
        assert answer["InvokedProductionVariant"] == "production"
    logs = server.client("logs")
    deadline = time.monotonic() + 20
    while True:
        streams = logs.describe_log_streams(logGroupName=f"/aws/sagemaker/Endpoints/{name}",
                                            logStreamNamePrefix="shadow/")["logStreams"]
        messages = [e["message"] for s in streams for e in logs.get_log_events(
            logGroupName=f"/aws/sagemaker/Endpoints/{name}", logStreamName=s["logStreamName"],
            startFromHead=True)["events"]]
        if sum("/invocations" in m for m in messages) >= 5:
            break
        assert time.monotonic() < deadline, messages
        time.sleep(0.5)


@pytest.mark.timeout(180)
def test_an_alarm_during_the_canary_rolls_the_update_back(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small"}]))
    green = config(server, [{"VariantName": "green", "ModelName": "large"}])
    cloudwatch = server.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=f"{name}-errors", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": name},
                    {"Name": "VariantName", "Value": "green"}],
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0,
        ComparisonOperator="GreaterThanThreshold")
    sagemaker = server.client("sagemaker")
    with Traffic(server, name, csv_rows(features[:1])) as load:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 30,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT",
                                                               "Value": 50}}},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"{name}-errors"}]}})
        deadline = time.monotonic() + 60
        while "green" not in load.served:  # the canary serves
            assert time.monotonic() < deadline
            time.sleep(0.1)
        cloudwatch.set_alarm_state(AlarmName=f"{name}-errors", StateValue="ALARM",
                                   StateReason="injected by the test")
        described = wait_for(server, name, ("InService", "Failed"))
        time.sleep(0.5)
    assert described["EndpointConfigName"] != green
    assert "rolled back" in described["FailureReason"] and f"{name}-errors" in \
        described["FailureReason"]
    assert load.errors == []
    assert load.served[-1] == "blue"


@pytest.mark.timeout(180)
def test_a_rolling_update_replaces_the_fleet_in_batches(hosting):
    server, features = hosting
    name = endpoint(server, config(server, [{"VariantName": "blue", "ModelName": "small",
                                             "InitialInstanceCount": 2}]))
    green = config(server, [{"VariantName": "green", "ModelName": "large",
                             "InitialInstanceCount": 2}])
    sagemaker = server.client("sagemaker")
    with Traffic(server, name, csv_rows(features[:1])) as load:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig={
            "RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                                    "WaitIntervalInSeconds": 2}})
        described = wait_for(server, name, ("InService", "Failed"))
    assert described["EndpointConfigName"] == green, described.get("FailureReason")
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert load.errors == []
    assert {"blue", "green"} <= set(load.served)
