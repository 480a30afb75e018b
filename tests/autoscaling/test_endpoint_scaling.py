"""Target tracking on a real endpoint: traffic adds an instance, no traffic takes it away."""

from __future__ import annotations

import time

import numpy as np
import pytest
import xgboost
from tests.conftest import start_server
from tests.hosting.test_endpoints import BUCKET, ROLE, XGBOOST_IMAGE, csv_rows, tar_bytes, wait_for


@pytest.mark.timeout(240)
def test_an_endpoint_scales_out_under_traffic_and_back_in_without_it(tmp_path):
    server = start_server(tmp_path / "home", {"OPENMAKER_AUTOSCALING_INTERVAL_SECONDS": "2"})
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        features = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
        booster = xgboost.train({}, xgboost.DMatrix(features, label=features[:, 0]), 2)
        s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=tar_bytes(
            {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
        sagemaker = server.client("sagemaker")
        sagemaker.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
        sagemaker.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{
            "VariantName": "v", "ModelName": "m", "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        sagemaker.create_endpoint(EndpointName="scaled", EndpointConfigName="c")
        wait_for(server, "scaled", ("InService",))
        scaling = server.client("application-autoscaling")
        resource = "endpoint/scaled/variant/v"
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=resource, MinCapacity=1, MaxCapacity=2,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount")
        scaling.put_scaling_policy(
            PolicyName="per-instance", ServiceNamespace="sagemaker", ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 60.0, "ScaleInCooldown": 0, "ScaleOutCooldown": 0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
        runtime = server.client("sagemaker-runtime")

        def instances() -> int:
            endpoint = sagemaker.describe_endpoint(EndpointName="scaled")
            return endpoint["ProductionVariants"][0]["CurrentInstanceCount"]

        deadline = time.monotonic() + 90
        while instances() < 2:  # about 600 requests a minute against a target of 60
            assert time.monotonic() < deadline
            for _ in range(20):
                runtime.invoke_endpoint(EndpointName="scaled", ContentType="text/csv",
                                        Body=csv_rows(features[:1]))["Body"].read()
        deadline = time.monotonic() + 90
        while instances() > 1:  # no traffic: back to MinCapacity
            assert time.monotonic() < deadline
            time.sleep(0.5)
        activities = scaling.describe_scaling_activities(
            ServiceNamespace="sagemaker", ResourceId=resource)["ScalingActivities"]
        assert [a["StatusCode"] for a in activities][:2] == ["Successful", "Successful"]
    finally:
        server.stop()
