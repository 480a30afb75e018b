"""Hyperparameter tuning jobs end to end: a real server, boto3, built-in XGBoost."""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.training.test_xgboost_jobs import csv_rows

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "tuning"
OBJECTIVE = {"Type": "Minimize", "MetricName": "validation:rmse"}


@pytest.fixture(scope="module")
def tuning_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("tuning-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(400, 5))
    labels = features[:, 0] * 2 + np.sin(features[:, 1] * 3) + rng.normal(0, 0.1, 400)
    s3.put_object(Bucket=BUCKET, Key="train/data.csv", Body=csv_rows(features[:300], labels[:300]))
    s3.put_object(Bucket=BUCKET, Key="validation/data.csv",
                  Body=csv_rows(features[300:], labels[300:]))
    yield running
    running.stop()


def channel(name: str) -> dict:
    return {"ChannelName": name, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{name}",
        "S3DataDistributionType": "FullyReplicated"}}}


def definition(static: dict | None = None, **extra) -> dict:
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "StaticHyperParameters": {"objective": "reg:squarederror", "num_round": "8",
                                  **(static or {})},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        **extra}


RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "6"}],
}


def config(strategy: str = "Random", max_jobs: int | None = 4, parallel: int = 2,
           ranges: dict | None = None, **extra) -> dict:
    limits = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {"Strategy": strategy, "HyperParameterTuningJobObjective": OBJECTIVE,
            "ResourceLimits": limits, "ParameterRanges": RANGES if ranges is None else ranges,
            **extra}


def create(server, tuning_config: dict, job_definition: dict | None = None, **request) -> str:
    name = request.pop("name", None) or f"tune-{uuid.uuid4().hex[:8]}"
    # the server, not botocore, must catch bad requests
    client = server.client("sagemaker", parameter_validation=False)
    client.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=tuning_config,
        TrainingJobDefinition=job_definition or definition(), **request)
    return name


def wait(server, name: str, timeout: float = 180) -> dict:
    client = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"tuning job {name} did not end within {timeout} s: {job}")


def training_jobs(server, name: str, **params) -> list[dict]:
    client = server.client("sagemaker")
    pages = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    return [summary for page in pages.paginate(HyperParameterTuningJobName=name, **params)
            for summary in page["TrainingJobSummaries"]]


def test_random_search_runs_ordinary_training_jobs_and_picks_the_best(tuning_server):
    name = create(tuning_server, config(), Tags=[{"Key": "team", "Value": "ml"}])
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["TrainingJobStatusCounters"] == {
        "Completed": 4, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0,
        "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    summaries = training_jobs(tuning_server, name)
    assert len(summaries) == 4
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    best = job["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Minimize", "MetricName": "validation:rmse", "Value": min(values)}
    assert set(best["TunedHyperParameters"]) == {"eta", "max_depth"}
    client = tuning_server.client("sagemaker")
    for summary in summaries:
        assert summary["TrainingJobName"].startswith(f"{name}-")
        assert summary["ObjectiveStatus"] == "Succeeded"
        described = client.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert described["TuningJobArn"] == job["HyperParameterTuningJobArn"]
        hyperparameters = described["HyperParameters"]
        assert hyperparameters["_tuning_objective_metric"] == "validation:rmse"
        assert hyperparameters["num_round"] == "8"
        # two jobs at once share the machine's cores: each gets half for its thread pools
        share = str(max(1, (os.cpu_count() or 1) // 2))
        assert described["Environment"]["OMP_NUM_THREADS"] == share
        assert 0.05 <= float(hyperparameters["eta"]) <= 0.5
        assert 1 <= int(hyperparameters["max_depth"]) <= 6
        tags = client.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
        assert {"Key": "team", "Value": "ml"} in tags
    ordered = training_jobs(tuning_server, name, SortBy="FinalObjectiveMetricValue",
                            SortOrder="Ascending")
    assert [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in ordered] == \
        sorted(values)
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 0
    listed = client.list_hyper_parameter_tuning_jobs(NameContains=name)
    assert [s["HyperParameterTuningJobName"]
            for s in listed["HyperParameterTuningJobSummaries"]] == [name]
    assert listed["HyperParameterTuningJobSummaries"][0]["Strategy"] == "Random"


# -- script-mode jobs whose objective curve a hyperparameter sets --------------------------
SCRIPT_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
CURVE = '''
import argparse, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--factor", type=float, default=1.0)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--fail", default="no")
args, _ = parser.parse_known_args()
if args.fail == "yes":
    sys.exit("this configuration diverged")
for epoch in range(1, args.epochs + 1):
    print(f"epoch {epoch} loss={args.factor / epoch:.6f}", flush=True)
    time.sleep(0.25)
'''
LOSS = [{"Name": "loss", "Regex": "loss=([0-9.]+)"}]


@pytest.fixture(scope="module")
def curve_source(tuning_server):
    from tests.training.test_jobs import source_tar

    key = "source/curve/sourcedir.tar.gz"
    tuning_server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=source_tar(CURVE))
    return f"s3://{BUCKET}/{key}"


def curve_definition(source: str, static: dict | None = None) -> dict:
    return {
        "AlgorithmSpecification": {"TrainingImage": SCRIPT_IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": LOSS},
        "RoleArn": ROLE,
        "StaticHyperParameters": {"sagemaker_program": '"train.py"',
                                  "sagemaker_submit_directory": f'"{source}"',
                                  **(static or {})},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300}}


def curve_config(strategy: str = "Random", max_jobs: int = 6, parallel: int = 1,
                 **extra) -> dict:
    return {"Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs,
                               "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "factor", "MinValue": "1", "MaxValue": "10"}]},
            **extra}


@pytest.mark.parametrize("strategy", ["Random", "Bayesian"])
def test_early_stopping_follows_the_median_of_running_averages_rule(tuning_server,
                                                                     curve_source, strategy):
    name = create(tuning_server, curve_config(strategy, max_jobs=8, RandomSeed=11,
                                              TrainingJobEarlyStoppingType="Auto"),
                  curve_definition(curve_source))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    summaries = training_jobs(tuning_server, name, SortBy="CreationTime")
    assert len(summaries) == 8
    client = tuning_server.client("sagemaker")
    # Replay the rule over the jobs' own histories: a job is stopped exactly when, at some
    # epoch k it reached, its loss was above the median over earlier finished jobs of their
    # running average up to k (once at least 3 earlier jobs reached k).
    curves: list[list[float]] = []
    stopped = 0
    for summary in summaries:
        factor = float(summary["TunedHyperParameters"]["factor"])
        values = [round(factor / epoch, 6) for epoch in range(1, 11)]
        described = client.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        last = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        history = values[:values.index(last) + 1]  # the epochs it reached
        fires = False
        for epoch in range(1, len(history) + 1):
            averages = [sum(c[:epoch]) / epoch for c in curves if len(c) >= epoch]
            if len(averages) >= 3 and history[epoch - 1] > float(np.median(averages)):
                fires = True
                break
        expected = "Stopped" if fires else "Completed"
        assert summary["TrainingJobStatus"] == expected, (summary, curves)
        assert summary["ObjectiveStatus"] == "Succeeded"  # a stopped job's value counts
        if fires:
            stopped += 1
            transitions = [t["StatusMessage"] for t in described["SecondaryStatusTransitions"]]
            assert any("Stopped early by the hyperparameter tuning job" in t
                       for t in transitions)
        curves.append(history)
    assert stopped >= 1
    assert job["TrainingJobStatusCounters"]["Stopped"] == stopped
    assert job["TrainingJobStatusCounters"]["Completed"] == 8 - stopped


def tuned_sequence(server, name: str) -> list[dict]:
    return [s["TunedHyperParameters"]
            for s in training_jobs(server, name, SortBy="CreationTime")]


def test_grid_runs_every_combination_once_and_defaults_its_job_count(tuning_server,
                                                                       curve_source):
    ranges = {"CategoricalParameterRanges": [
        {"Name": "factor", "Values": ["1", "2", "3"]}, {"Name": "epochs", "Values": ["1", "2"]}]}
    grid = curve_config("Grid", parallel=3, ParameterRanges=ranges)
    del grid["ResourceLimits"]["MaxNumberOfTrainingJobs"]
    name = create(tuning_server, grid, curve_definition(curve_source))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    combinations = tuned_sequence(tuning_server, name)
    assert sorted((c["factor"], c["epochs"]) for c in combinations) == [
        (f, e) for f in ("1", "2", "3") for e in ("1", "2")]
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"factor": "1", "epochs": "2"}


def test_random_seed_makes_the_proposals_reproducible(tuning_server, curve_source):
    static = {"epochs": "1"}
    sequences = []
    for strategy, seed in (("Random", 7), ("Random", 7), ("Bayesian", 7), ("Bayesian", 7),
                           ("Random", 8)):
        name = create(tuning_server, curve_config(strategy, max_jobs=4, RandomSeed=seed),
                      curve_definition(curve_source, static))
        assert wait(tuning_server, name)["HyperParameterTuningJobStatus"] == "Completed"
        sequences.append(tuned_sequence(tuning_server, name))
    assert sequences[0] == sequences[1]
    assert sequences[2] == sequences[3]
    assert sequences[0] != sequences[4]


def test_failed_training_jobs_count_but_only_all_failing_fails_the_tuning_job(
        tuning_server, curve_source):
    ranges = {"CategoricalParameterRanges": [{"Name": "fail", "Values": ["yes", "no"]}]}
    mixed = curve_config("Grid", max_jobs=2, parallel=2, ParameterRanges=ranges)
    name = create(tuning_server, mixed, curve_definition(curve_source, {"epochs": "1"}))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["TrainingJobStatusCounters"]["NonRetryableError"] == 1
    assert job["TrainingJobStatusCounters"]["Completed"] == 1
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 1, "Pending": 0, "Failed": 1}
    failed = training_jobs(tuning_server, name, StatusEquals="Failed")
    assert len(failed) == 1 and "diverged" in failed[0]["FailureReason"]
    assert failed[0]["ObjectiveStatus"] == "Failed"

    only_failing = {"CategoricalParameterRanges": [{"Name": "fail", "Values": ["yes"]}]}
    name = create(tuning_server, curve_config("Grid", max_jobs=1, ParameterRanges=only_failing),
                  curve_definition(curve_source))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("All training jobs failed")
    assert "diverged" in job["FailureReason"]
    assert "BestTrainingJob" not in job


def test_stop_stops_the_running_training_jobs(tuning_server, curve_source):
    name = create(tuning_server, curve_config(max_jobs=6, parallel=2),
                  curve_definition(curve_source, {"epochs": "200"}))
    client = tuning_server.client("sagemaker")
    deadline = time.monotonic() + 60
    while len(training_jobs(tuning_server, name, StatusEquals="InProgress")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)  # both emit a few values
    client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    job = wait(tuning_server, name, timeout=60)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2
    assert job["TrainingJobStatusCounters"]["InProgress"] == 0
    assert "BestTrainingJob" in job  # the stopped jobs' values count
    with pytest.raises(ClientError) as error:
        client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_target_objective_value_and_not_improving_complete_the_job_early(tuning_server,
                                                                         curve_source):
    target = curve_config(max_jobs=10, RandomSeed=3,
                          TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 9.0})
    name = create(tuning_server, target, curve_definition(curve_source, {"epochs": "1"}))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
              for s in training_jobs(tuning_server, name, SortBy="CreationTime")]
    assert values[-1] <= 9.0 and all(v > 9.0 for v in values[:-1])
    assert len(values) < 10

    ranges = {"CategoricalParameterRanges": [{"Name": "factor", "Values": ["5"]}]}
    patience = {"BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}}
    flat = curve_config("Random", max_jobs=10, ParameterRanges=ranges,
                        TuningJobCompletionCriteria=patience)
    name = create(tuning_server, flat, curve_definition(curve_source, {"epochs": "1"}))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 4  # the first, then 3 no better
    assert job["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3


def test_convergence_detection_completes_a_search_that_stopped_improving(tuning_server,
                                                                        curve_source):
    ranges = {"CategoricalParameterRanges": [{"Name": "factor", "Values": ["5"]}]}
    converging = curve_config("Random", max_jobs=30, parallel=2, ParameterRanges=ranges,
                              TuningJobCompletionCriteria={
                                  "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}})
    name = create(tuning_server, converging, curve_definition(curve_source, {"epochs": "1"}))
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert 11 <= job["TrainingJobStatusCounters"]["Completed"] <= 13
    assert "ConvergenceDetectedTime" in job["TuningJobCompletionDetails"]


def test_hyperparameter_tuning_resource_config_picks_the_first_instance_config(
        tuning_server, curve_source):
    flexible = curve_definition(curve_source, {"epochs": "1"})
    del flexible["ResourceConfig"]
    flexible["HyperParameterTuningResourceConfig"] = {
        "AllocationStrategy": "Prioritized", "InstanceConfigs": [
            {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 5},
            {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5}]}
    name = create(tuning_server, curve_config(max_jobs=1), flexible)
    assert wait(tuning_server, name)["HyperParameterTuningJobStatus"] == "Completed"
    [summary] = training_jobs(tuning_server, name)
    described = tuning_server.client("sagemaker").describe_training_job(
        TrainingJobName=summary["TrainingJobName"])
    assert described["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert described["ResourceConfig"]["InstanceCount"] == 2


def test_hyperband_stops_jobs_by_its_brackets_and_at_max_resource(tuning_server,
                                                                  curve_source):
    hyperband = curve_config("Hyperband", max_jobs=9, parallel=1, RandomSeed=2,
                             StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1,
                                                                         "MaxResource": 6}})
    name = create(tuning_server, hyperband, curve_definition(curve_source, {"epochs": "40"}))
    job = wait(tuning_server, name, timeout=240)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["TrainingJobStatusCounters"]["Stopped"] == 9  # none runs its 40 epochs
    reached = []
    for summary in training_jobs(tuning_server, name):
        factor = float(summary["TunedHyperParameters"]["factor"])
        last = summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        reached.append(round(factor / last))
    assert max(reached) < 10  # stopped at MaxResource (6), give or take a value in flight
    assert min(reached) < 6  # and some earlier, by a bracket's rung
    best = job["BestTrainingJob"]
    factor = float(best["TunedHyperParameters"]["factor"])
    assert round(factor / best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]) >= 6


def test_several_training_job_definitions(tuning_server, curve_source):
    first = {**curve_definition(curve_source, {"epochs": "1"}), "DefinitionName": "small",
             "TuningObjective": {"Type": "Minimize", "MetricName": "loss"},
             "HyperParameterRanges": {"ContinuousParameterRanges": [
                 {"Name": "factor", "MinValue": "1", "MaxValue": "2"}]}}
    second = {**curve_definition(curve_source, {"epochs": "1"}), "DefinitionName": "large",
              "TuningObjective": {"Type": "Minimize", "MetricName": "loss"},
              "HyperParameterRanges": {"IntegerParameterRanges": [
                  {"Name": "factor", "MinValue": "50", "MaxValue": "60"}]}}
    tuning = {"Strategy": "Random", "RandomSeed": 1,
              "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}}
    name = f"multi-{uuid.uuid4().hex[:8]}"
    tuning_server.client("sagemaker").create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=tuning,
        TrainingJobDefinitions=[first, second])
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    summaries = training_jobs(tuning_server, name)
    by_definition = {s["TrainingJobDefinitionName"] for s in summaries}
    assert by_definition == {"small", "large"}
    for summary in summaries:
        factor = float(summary["TunedHyperParameters"]["factor"])
        assert (1 <= factor <= 2) if summary["TrainingJobDefinitionName"] == "small" \
            else (50 <= factor <= 60 and factor.is_integer())
    assert job["BestTrainingJob"]["TrainingJobDefinitionName"] == "small"


def test_warm_start_learns_from_parents_and_reports_the_overall_best(tuning_server,
                                                                     curve_source):
    parent = create(tuning_server, curve_config(max_jobs=3, parallel=3, RandomSeed=4),
                    curve_definition(curve_source, {"epochs": "1"}))
    parent_job = wait(tuning_server, parent)
    narrow = {"ContinuousParameterRanges": [{"Name": "factor", "MinValue": "8",
                                             "MaxValue": "10"}]}
    child = create(tuning_server, curve_config(max_jobs=2, parallel=2, ParameterRanges=narrow),
                   curve_definition(curve_source, {"epochs": "1"}),
                   WarmStartConfig={"WarmStartType": "IdenticalDataAndAlgorithm",
                                    "ParentHyperParameterTuningJobs": [
                                        {"HyperParameterTuningJobName": parent}]})
    job = wait(tuning_server, child)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 2  # the parent's don't count
    assert job["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
    parent_best = parent_job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    own_best = job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]
    overall = job["OverallBestTrainingJob"]
    expected = min(parent_best["Value"], own_best["Value"])
    assert overall["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == expected
    if parent_best["Value"] < own_best["Value"]:
        assert overall["TuningJobName"] == parent

    other = curve_definition(curve_source, {"epochs": "2"})
    other["InputDataConfig"] = [channel("train")]
    with pytest.raises(ClientError) as error:
        create(tuning_server, curve_config(max_jobs=1), other,
               WarmStartConfig={"WarmStartType": "IdenticalDataAndAlgorithm",
                                "ParentHyperParameterTuningJobs": [
                                    {"HyperParameterTuningJobName": parent}]})
    assert "TransferLearning" in error.value.response["Error"]["Message"]
    transfer = create(tuning_server, curve_config(max_jobs=1), other,
                      WarmStartConfig={"WarmStartType": "TransferLearning",
                                       "ParentHyperParameterTuningJobs": [
                                           {"HyperParameterTuningJobName": parent}]})
    assert wait(tuning_server, transfer)["HyperParameterTuningJobStatus"] == "Completed"


def _with_ranges(ranges: dict, **extra) -> dict:
    return config(ranges=ranges, **extra)


TOO_MANY = {"IntegerParameterRanges": [
    {"Name": f"p{i}", "MinValue": "1", "MaxValue": "2"} for i in range(20)],
    "ContinuousParameterRanges": [
    {"Name": f"q{i}", "MinValue": "0", "MaxValue": "1"} for i in range(11)]}


@pytest.mark.parametrize(("tuning_config", "job_definition", "message"), [
    (_with_ranges({"IntegerParameterRanges": [
        {"Name": "max_depth", "MinValue": "5", "MaxValue": "2"}]}), None,
     "ParameterRanges.IntegerParameterRanges.1: MinValue (5) must be less than or equal to "
     "MaxValue (2)"),
    (_with_ranges({"ContinuousParameterRanges": [
        {"Name": "alpha", "MinValue": "0", "MaxValue": "2", "ScalingType": "Logarithmic"}]}),
     None, "ContinuousParameterRanges.1: Logarithmic scaling needs MinValue greater than 0"),
    (_with_ranges({"ContinuousParameterRanges": [
        {"Name": "subsample", "MinValue": "0.5", "MaxValue": "1",
         "ScalingType": "ReverseLogarithmic"}]}),
     None, "ReverseLogarithmic scaling needs 0 <= MinValue <= MaxValue < 1"),
    (_with_ranges({"CategoricalParameterRanges": [{"Name": "booster", "Values": []}]}), None,
     "categoricalParameterRanges.1.member.values"),
    (config("Grid"), None,
     "IntegerParameterRanges.1: the Grid strategy supports categorical parameter ranges only; "
     "'max_depth' is an integer range"),
    (_with_ranges(TOO_MANY), None, "at most 30 tunable hyperparameters"),
    (_with_ranges({"CategoricalParameterRanges": [
        {"Name": "booster", "Values": [str(i) for i in range(31)]}]}), None,
     "member.values' failed to satisfy constraint: Member must have length less than or equal "
     "to 30"),
    ({**config(), "HyperParameterTuningJobObjective": {"Type": "Maximize",
                                                       "MetricName": "validation:nope"}},
     None, "HyperParameterTuningJobObjective.MetricName: 'validation:nope' is not a metric "
     "emitted by the xgboost algorithm"),
    (config(), definition({"eta": "0.1"}),
     "hyperparameter 'eta' is tuned and also set in TrainingJobDefinition.StaticHyperParameters"),
    (_with_ranges({"ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.5", "MaxValue": "3"}]}), None,
     "ContinuousParameterRanges.1: HyperParameters.eta: 3"),
    (_with_ranges({"IntegerParameterRanges": [
        {"Name": "max_depth", "MinValue": "one", "MaxValue": "3"}]}), None,
     "IntegerParameterRanges.1.MinValue: 'one' is not an integer"),
    (config(max_jobs=None), None, "ResourceLimits.MaxNumberOfTrainingJobs is required"),
    (config("Hyperband", TrainingJobEarlyStoppingType="Auto"), None,
     "TrainingJobEarlyStoppingType must be Off with the Hyperband strategy"),
    (config("Hyperband"), None, "HyperbandStrategyConfig.MaxResource is required"),
    (config(), definition({"num_round": "0"}),
     "TrainingJobDefinition.StaticHyperParameters: HyperParameters.num_round"),
    (config(), definition({"objective": "bogus:thing"}),
     "TrainingJobDefinition.StaticHyperParameters: HyperParameters.objective"),
    (config(), {**definition(), "InputDataConfig": [
        {**channel("train"), "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/missing/"}}}]},
     "TrainingJobDefinition: No S3 objects found"),
])
def test_bad_requests_are_refused_naming_the_field(tuning_server, tuning_config, job_definition,
                                                   message):
    client = tuning_server.client("sagemaker")
    name = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as error:
        create(tuning_server, tuning_config, job_definition, name=name)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert message in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as missing:  # nothing was stored
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"


def test_unknown_tuning_jobs_and_taken_names(tuning_server):
    client = tuning_server.client("sagemaker")
    for call in (client.describe_hyper_parameter_tuning_job,
                 client.stop_hyper_parameter_tuning_job,
                 client.list_training_jobs_for_hyper_parameter_tuning_job):
        with pytest.raises(ClientError) as error:
            call(HyperParameterTuningJobName="no-such-tuning-job")
        assert error.value.response["Error"]["Code"] == "ResourceNotFound"
    name = create(tuning_server, config(max_jobs=1, parallel=1))
    with pytest.raises(ClientError) as error:
        create(tuning_server, config(max_jobs=1, parallel=1), name=name)
    assert error.value.response["Error"]["Code"] == "ResourceInUse"
    wait(tuning_server, name)


def test_a_restarted_server_resumes_the_tuning_job_and_reruns_the_cut_off_jobs(tmp_path):
    from tests.training.test_jobs import source_tar

    home = tmp_path / "home"
    server = start_server(home)
    cut_off = []
    try:
        server.client("s3").create_bucket(Bucket=BUCKET)
        key = "source/curve/sourcedir.tar.gz"
        server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=source_tar(CURVE))
        # 20 epochs take 5 s: a job seen running is still running when the server stops
        name = create(server, curve_config(max_jobs=3, RandomSeed=5),
                      curve_definition(f"s3://{BUCKET}/{key}", {"epochs": "20"}))
        for restart in range(2):  # cut off the second job, then the job that reruns it
            deadline = time.monotonic() + 60
            while True:
                summaries = training_jobs(server, name, SortBy="CreationTime")
                if len(summaries) == 2 + restart and \
                        summaries[-1]["TrainingJobStatus"] == "InProgress":
                    break
                assert time.monotonic() < deadline, summaries
                time.sleep(0.05)
            cut_off.append(summaries[-1])
            server.stop()
            server = start_server(home)
        job = wait(server, name)
        assert job["HyperParameterTuningJobStatus"] == "Completed", job
        assert job["TrainingJobStatusCounters"] == {
            "Completed": 3, "InProgress": 0, "RetryableError": 2, "NonRetryableError": 0,
            "Stopped": 0}
        summaries = training_jobs(server, name, SortBy="CreationTime")
        assert len(summaries) == 5
        assert [s["TrainingJobName"] for s in summaries[1:3]] == \
            [c["TrainingJobName"] for c in cut_off]
        assert [s["TrainingJobStatus"] for s in summaries] == \
            ["Completed", "Failed", "Failed", "Completed", "Completed"]
        tuned = [s["TunedHyperParameters"] for s in summaries]
        assert tuned[1] == tuned[2] == tuned[3] != tuned[4]
    finally:
        server.stop()


def test_max_runtime_stops_the_tuning_job_and_its_running_training_job(tmp_path):
    # In process: the API (botocore's model) allows no limit under 120 s.
    from tests.training.test_jobs import source_tar

    from openmaker.config import load_settings
    from openmaker.core.platform import Platform, RequestContext
    from openmaker.tuning import service

    platform = Platform(load_settings(home=tmp_path))
    platform.objects.create_bucket(BUCKET)
    key = "source/curve/sourcedir.tar.gz"
    platform.objects.put_object(BUCKET, key, [source_tar(CURVE)])
    ctx = RequestContext(platform, region="us-east-1", account_id="000000000000",
                         request_id="test")
    limited = curve_config(max_jobs=5)
    limited["ResourceLimits"]["MaxRuntimeInSeconds"] = 3
    started = time.monotonic()
    service.create_hyper_parameter_tuning_job(ctx, {
        "HyperParameterTuningJobName": "limited", "HyperParameterTuningJobConfig": limited,
        "TrainingJobDefinition": curve_definition(f"s3://{BUCKET}/{key}", {"epochs": "400"})})
    deadline = time.monotonic() + 60
    while True:
        job = service.describe_hyper_parameter_tuning_job(
            ctx, {"HyperParameterTuningJobName": "limited"})
        if job["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert 3 <= time.monotonic() - started < 30
    assert job["TrainingJobStatusCounters"]["Stopped"] == 1
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 3
    assert "BestTrainingJob" in job
    platform.close()


def test_other_built_in_algorithms_metrics_are_tuning_objectives(tuning_server):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=8, size=(4, 3))
    points = np.concatenate([c + rng.normal(size=(60, 3)) for c in centres])
    body = "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in points).encode()
    s3 = tuning_server.client("s3")
    for name in ("train", "test"):
        s3.put_object(Bucket=BUCKET, Key=f"blobs/{name}/data.csv", Body=body)
    kmeans = definition(static={})
    kmeans["AlgorithmSpecification"]["TrainingImage"] = \
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
    kmeans["StaticHyperParameters"] = {"feature_dim": "3"}
    kmeans["InputDataConfig"] = [
        {**channel(name), "ContentType": "text/csv;label_size=0", "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/blobs/{name}/",
                             "S3DataDistributionType": "FullyReplicated"}}}
        for name in ("train", "test")]
    grid = {"Strategy": "Grid",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "test:msd"},
            "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"CategoricalParameterRanges": [
                {"Name": "k", "Values": ["2", "4"]}]}}
    name = create(tuning_server, grid, kmeans)
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["BestTrainingJob"]["TunedHyperParameters"] == {"k": "4"}  # the true count
    assert job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"][
        "MetricName"] == "test:msd"
    with pytest.raises(ClientError) as error:
        create(tuning_server, {**grid, "HyperParameterTuningJobObjective": {
            "Type": "Minimize", "MetricName": "validation:rmse"}}, kmeans)
    assert "not a metric emitted by the kmeans algorithm" in \
        error.value.response["Error"]["Message"]
