"""Built-in XGBoost beyond the conformance suite: SageMaker's hyperparameter rules and
messages, metric lines, several hosts, checkpoints, warm start, data errors, inference
formats."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import xgboost
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import InferenceError, find_algorithm
from openmaker.algorithms.xgboost import (
    XGBoostPredictor,
    classification_metric,
    load_booster,
    xgboost_params,
)
from openmaker.core.errors import ValidationException
from openmaker.formats import frame_record, write_csv, write_parquet

ALGORITHM = find_algorithm("xgboost")
assert ALGORITHM is not None


def csv_bytes(features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
              ) -> bytes:
    buffer = io.BytesIO()
    if weights is not None:
        features = np.column_stack([weights, features])
    write_csv(buffer, features, labels)
    return buffer.getvalue()


def binary(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = np.round(rng.normal(size=(n, 5)), 4)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(float)
    return features, labels


def multiclass(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target.astype(float)


def csv_job(jobs: JobRunner, hyperparameters: dict[str, str], features: np.ndarray,
            labels: np.ndarray, *, validation: bool = True, **options) -> object:
    split = int(len(features) * 0.75)
    channels = {"train": Channel({"train.csv": csv_bytes(features[:split], labels[:split])},
                                 "text/csv")}
    if validation:
        channels["validation"] = Channel(
            {"validation.csv": csv_bytes(features[split:], labels[split:])}, "text/csv")
    return jobs.run("xgboost", channels, hyperparameters, **options)


# -- hyperparameters ---------------------------------------------------------------------------
@pytest.mark.parametrize(("hyperparameters", "message"), [
    ({"num_round": "10", "eta": "1.5"},
     "HyperParameters.eta: 1.5 is out of range; eta must be a float in [0, 1]"),
    ({"eta": "0.1"}, "HyperParameters.num_round is required for xgboost (an integer >= 1)"),
    ({"num_round": "0"}, "HyperParameters.num_round: 0 is out of range"),
    ({"num_round": "2.5"}, "HyperParameters.num_round: '2.5' is not valid"),
    ({"num_round": "5", "subsample": "0"}, "subsample must be a float in (0, 1]"),
    ({"num_round": "5", "objective": "multi:softmax"},
     "HyperParameters.num_class is required for objective multi:softmax"),
    ({"num_round": "5", "num_class": "3"}, "num_class is only used with objective multi"),
    ({"num_round": "5", "booster": "gbforest"}, "booster must be one of gbtree, gblinear, dart"),
    ({"num_round": "5", "eval_metric": "auc"}, "auc needs a binary:* or rank:* objective"),
    ({"num_round": "5", "eval_metric": "rmse,bogus"}, "'bogus' is not an evaluation metric"),
    ({"num_round": "5", "objective": "binary:logistic", "eval_metric": "f1",
      "tree_method": "exact", "grow_policy": "lossguide"}, "lossguide needs tree_method"),
    ({"num_round": "5", "monotone_constraints": "(1,2)"}, "each entry must be -1, 0 or 1"),
    ({"num_round": "5", "interaction_constraints": "[[0, -1]]"}, "interaction_constraints"),
    ({"num_round": "5", "tweedie_variance_power": "2"}, "tweedie_variance_power must be"),
    ({"num_round": "5", "seed": str(2 ** 40)}, "HyperParameters.seed"),
    ({"num_round": "5", "max_dept": "3"}, "did you mean 'max_depth'?"),
    ({"num_round": "5", "_kfold": "3"}, "k-fold cross-validation is not supported"),
    ({"num_round": "5", "eta": "0.1", "learning_rate": "0.2"}, "given twice"),
    ({"num_round": "5", "_tuning_objective_metric": "validation:nonsense"},
     "_tuning_objective_metric"),
])
def test_hyperparameters_refused_with_a_message_naming_the_field(hyperparameters, message):
    with pytest.raises(ValidationException) as refused:
        ALGORITHM.validate_hyperparameters(hyperparameters)
    assert message in refused.value.message


def test_hyperparameters_parsed_with_aliases_and_sdk_encodings():
    values = ALGORITHM.validate_hyperparameters({
        "num_round": "10", "learning_rate": "0.2", "reg_lambda": "2", "min_split_loss": "0.5",
        "objective": '"multi:softprob"', "num_class": "3", "eval_metric": "mlogloss,merror",
        "save_model_on_termination": "True", "sagemaker_program": "x",
        "_tuning_objective_metric": "validation:merror", "monotone_constraints": "(1,0,-1)",
    })
    assert values["eta"] == 0.2 and values["lambda"] == 2 and values["gamma"] == 0.5
    assert values["objective"] == "multi:softprob" and values["num_class"] == 3
    assert values["eval_metric"] == ["mlogloss", "merror"]
    assert values["save_model_on_termination"] is True


def test_parameters_mapped_onto_xgboost_3():
    params = xgboost_params(ALGORITHM.validate_hyperparameters({
        "num_round": "10", "objective": "reg:linear", "tree_method": "gpu_hist",
        "sketch_eps": "0.1", "dsplit": "row", "predictor": "cpu_predictor",
        "updater": "grow_colmaker,distcol,prune", "early_stopping_rounds": "3",
        "csv_weights": "1", "eval_metric": "rmse,mse", "tweedie_variance_power": "1.2",
    }))
    assert params == {"objective": "reg:squarederror", "tree_method": "hist",
                      "updater": "grow_colmaker,prune", "eval_metric": ["rmse"]}


def test_tuning_objective_is_added_last_to_the_eval_metrics():
    params = xgboost_params(ALGORITHM.validate_hyperparameters({
        "num_round": "3", "objective": "binary:logistic", "eval_metric": "auc,logloss",
        "_tuning_objective_metric": "validation:auc"}))
    assert params["eval_metric"] == ["logloss", "auc"]


def test_objective_metrics_are_the_validation_ones_with_directions():
    objectives = ALGORITHM.objective_metrics()
    assert objectives["validation:auc"] == "Maximize"
    assert objectives["validation:rmse"] == "Minimize"
    assert objectives["validation:f1"] == "Maximize"
    assert not any(name.startswith("train:") for name in objectives)
    names = {d["Name"] for d in ALGORITHM.metric_definitions}
    assert {"train:rmse", "validation:rmse", "validation:tweedie-nloglik"} <= names


# -- channels --------------------------------------------------------------------------------
@pytest.mark.parametrize(("channels", "mode", "message"), [
    ([{"ChannelName": "validation", "ContentType": "text/csv"}], "File",
     "xgboost needs a 'train' channel"),
    ([{"ChannelName": "train", "ContentType": "application/json"}], "File",
     "'application/json' is not supported for channel 'train' of xgboost; accepted: text/libsvm"),
    ([{"ChannelName": "train", "ContentType": "text/csv"},
      {"ChannelName": "test", "ContentType": "text/csv"}], "File",
     "does not read a channel 'test'"),
    ([{"ChannelName": "train"}], "Pipe", "cannot read text/libsvm in Pipe mode"),
    ([{"ChannelName": "train", "ContentType": "text/csv;label_size=2"}], "File",
     "label_size=1"),
    ([{"ChannelName": "train", "ContentType": "text/csv"}], "Streaming",
     "cannot be read in Streaming mode"),
])
def test_channels_refused_with_the_channel_named(channels, mode, message):
    with pytest.raises(ValidationException) as refused:
        ALGORITHM.validate_channels(channels, mode)
    assert message in refused.value.message


def test_channels_accepted():
    ALGORITHM.validate_channels([
        {"ChannelName": "train", "ContentType": "text/csv; label_size=1", "InputMode": "Pipe"},
        {"ChannelName": "validation", "ContentType": "application/x-parquet"},
        {"ChannelName": "model", "ContentType": "application/x-sagemaker-model"},
    ], "File")


# -- metrics -----------------------------------------------------------------------------------
def test_every_requested_metric_is_printed_and_matched(jobs: JobRunner):
    metrics = ["auc", "aucpr", "logloss", "error", "error@0.7", "accuracy", "balanced_accuracy",
               "f1", "f1_binary", "f1_macro", "precision", "precision_macro",
               "precision_micro", "recall", "recall_macro", "recall_micro", "mse", "r2", "rmse",
               "mae"]
    features, labels = binary()
    result = csv_job(jobs, {"num_round": "3", "objective": "binary:logistic",
                            "eval_metric": ",".join(metrics)}, features, labels).check()
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(lines) == 3 and lines[0].startswith("[0]#011train-")
    definitions = [(d["Name"], re.compile(d["Regex"])) for d in ALGORITHM.metric_definitions]
    matched = {}
    for name, pattern in definitions:
        match = pattern.search(lines[-1])
        if match:
            matched[name] = float(match.group(1))
    for metric in metrics:
        base = metric.partition("@")[0]
        for channel in ("train", "validation"):
            assert f"{channel}:{base}" in matched, (metric, lines[-1])
    assert 0.5 < matched["validation:accuracy"] <= 1


def test_classification_metrics_agree_with_scikit_learn():
    from sklearn import metrics

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 300)
    predicted = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 3, 300))
    confusion = np.zeros((3, 3))
    np.add.at(confusion, (truth, predicted), 1)
    assert classification_metric("f1_macro", confusion) == pytest.approx(
        metrics.f1_score(truth, predicted, average="macro"))
    assert classification_metric("balanced_accuracy", confusion) == pytest.approx(
        metrics.balanced_accuracy_score(truth, predicted))
    assert classification_metric("precision_macro", confusion) == pytest.approx(
        metrics.precision_score(truth, predicted, average="macro"))
    assert classification_metric("recall_micro", confusion) == pytest.approx(
        metrics.recall_score(truth, predicted, average="micro"))
    binary_truth, binary_predicted = truth % 2, predicted % 2
    confusion = np.zeros((2, 2))
    np.add.at(confusion, (binary_truth, binary_predicted), 1)
    assert classification_metric("f1", confusion) == pytest.approx(
        metrics.f1_score(binary_truth, binary_predicted))


# -- several hosts -----------------------------------------------------------------------------
def test_two_hosts_train_one_model_on_their_shards(jobs: JobRunner):
    features, labels = binary(400)
    channels = {
        "train": Channel({"part-0.csv": csv_bytes(features[:150], labels[:150]),
                          "part-1.csv": csv_bytes(features[150:300], labels[150:300])},
                         "text/csv", distribution="ShardedByS3Key"),
        "validation": Channel({"v.csv": csv_bytes(features[300:], labels[300:])}, "text/csv"),
    }
    result = jobs.run("xgboost", channels, {"num_round": "5", "objective": "binary:logistic",
                                            "eval_metric": "auc,accuracy"},
                      instance_count=2, timeout=120).check()
    assert [p.name for p in result.layouts[0].model_dir.iterdir()] == ["xgboost-model"]
    assert list(result.layouts[1].model_dir.iterdir()) == []

    def metric_lines(output: str) -> list[str]:
        return [line for line in output.splitlines() if re.match(r"\[[0-9]+\]#011", line)]

    # one model: both hosts saw the same (allreduced) metrics every round
    assert metric_lines(result.outputs[0]) == metric_lines(result.outputs[1])
    assert len(metric_lines(result.outputs[0])) == 5
    # it learned from both shards: close to one host training on all 300 rows (the
    # distributed quantile sketch differs a little), unlike a model of one shard
    single = jobs.run("xgboost", {"train": Channel(
        {"all.csv": csv_bytes(features[:300], labels[:300])}, "text/csv")},
        {"num_round": "5", "objective": "binary:logistic"}).check()
    shard = jobs.run("xgboost", {"train": Channel(
        {"one.csv": csv_bytes(features[:150], labels[:150])}, "text/csv")},
        {"num_round": "5", "objective": "binary:logistic"}).check()
    data = xgboost.DMatrix(features)
    ours = load_booster(result.model_dir).predict(data)
    assert np.abs(ours - load_booster(single.model_dir).predict(data)).mean() < \
        np.abs(ours - load_booster(shard.model_dir).predict(data)).mean()
    booster = load_booster(result.model_dir)
    assert booster.num_boosted_rounds() == 5


def test_a_bad_shard_fails_every_host_promptly(jobs: JobRunner):
    features, labels = binary(100)
    channels = {"train": Channel({"part-0.csv": csv_bytes(features, labels),
                                  "part-1.csv": b"1,2,3,4,5,6\n0,1,2,3,4,oops\n"},
                                 "text/csv", distribution="ShardedByS3Key")}
    started = time.monotonic()
    result = jobs.run("xgboost", channels, {"num_round": "5"}, instance_count=2, timeout=60)
    assert time.monotonic() - started < 30
    assert all(code == 2 for code in result.returncodes)
    assert result.failure(1) == ("ClientError: channel 'train' file part-1.csv, line 2, column "
                                 "6: 'oops' is not a number")
    assert result.failure(0) == f"ClientError: algo-2: {result.failure(1)[13:]}"


# -- checkpoints and warm start ----------------------------------------------------------------
def test_resuming_from_checkpoints_ends_with_exactly_num_round_rounds(jobs: JobRunner,
                                                                      tmp_path: Path):
    features, labels = binary()
    checkpoints = tmp_path / "checkpoints"
    first = csv_job(jobs, {"num_round": "7", "objective": "binary:logistic"}, features, labels,
                    checkpoint_dir=checkpoints).check()
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names == [f"xgboost-checkpoint.{i}" for i in range(2, 7)]  # the last five kept
    # an interrupted job: only the checkpoints of rounds 0-3 survived
    for name in names:
        if int(name.rsplit(".", 1)[1]) > 3:
            (checkpoints / name).unlink()
    resumed = csv_job(jobs, {"num_round": "7", "objective": "binary:logistic"}, features,
                      labels, checkpoint_dir=checkpoints).check()
    rounds = [line.split("]")[0] for line in resumed.output.splitlines()
              if re.match(r"\[[0-9]+\]#011", line)]
    assert rounds == ["[4", "[5", "[6"]
    assert "Resuming from checkpoint: 4 of 7 rounds done" in resumed.output
    assert load_booster(resumed.model_dir).num_boosted_rounds() == 7
    np.testing.assert_allclose(
        load_booster(resumed.model_dir).predict(xgboost.DMatrix(features)),
        load_booster(first.model_dir).predict(xgboost.DMatrix(features)), rtol=1e-5)


def test_a_killed_job_restarted_resumes(jobs: JobRunner, tmp_path: Path):
    features, labels = binary(2000)
    checkpoints = tmp_path / "checkpoints"
    hyperparameters = {"num_round": "400", "max_depth": "8", "eta": "0.01"}
    request = jobs.request({"train": Channel({"t.csv": csv_bytes(features, labels)},
                                             "text/csv")}, hyperparameters, "File", 1, "killed")
    from tests.algorithms.conftest import ARN

    from openmaker.training.channels import deliver_channel
    from openmaker.training.contract import InstanceLayout, training_environment, write_config

    layout = InstanceLayout(tmp_path / "killed", 1)
    layout.create(["train"])
    write_config(layout, request)
    (layout.input_config_dir / "checkpointconfig.json").write_text(
        json.dumps({"LocalPath": str(checkpoints)}))
    deliver_channel(jobs.store, request["InputDataConfig"][0], layout)
    env = training_environment(layout, request, job_arn=ARN)
    command = [sys.executable, "-m", "openmaker.algorithms", "xgboost"]
    process = subprocess.Popen(command, env=env, cwd=layout.code_dir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # at least 5 rounds done; old checkpoints are deleted, so look for any from 5 on
    while time.monotonic() < deadline and not any(
            p.name.rsplit(".", 1)[1].isdigit() and int(p.name.rsplit(".", 1)[1]) >= 5
            for p in checkpoints.glob("xgboost-checkpoint.*")):
        time.sleep(0.01)
    process.kill()
    process.wait()
    if not (layout.model_dir / "xgboost-model").exists():
        done = max(int(p.name.rsplit(".", 1)[1]) for p in checkpoints.iterdir()
                   if p.name.startswith("xgboost-checkpoint."))
        assert done < 399
    assert not list(checkpoints.glob(".*"))  or all(p.suffix == ".tmp"
                                                    for p in checkpoints.glob(".*"))
    completed = subprocess.run(command, env=env, cwd=layout.code_dir, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert "Resuming from checkpoint" in completed.stdout
    assert load_booster(layout.model_dir).num_boosted_rounds() == 400


def test_model_channel_warm_starts_training(jobs: JobRunner, tmp_path: Path):
    features, labels = binary()
    first = csv_job(jobs, {"num_round": "3", "objective": "binary:logistic"}, features,
                    labels).check()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(first.model_dir / "xgboost-model", arcname="xgboost-model")
    for model_objects in ({"model.tar.gz": archive.getvalue()},
                          {"xgboost-model": (first.model_dir / "xgboost-model").read_bytes()}):
        result = jobs.run("xgboost", {
            "train": Channel({"t.csv": csv_bytes(features, labels)}, "text/csv"),
            "model": Channel(model_objects)}, {"num_round": "2", "objective": "binary:logistic"}
        ).check()
        assert "Warm start from the model channel" in result.output
        assert load_booster(result.model_dir).num_boosted_rounds() == 5


def test_model_channel_that_is_not_a_model_is_a_client_error(jobs: JobRunner):
    features, labels = binary()
    result = jobs.run("xgboost", {
        "train": Channel({"t.csv": csv_bytes(features, labels)}, "text/csv"),
        "model": Channel({"model.pkl": b"\x80\x04not a model"})}, {"num_round": "2"})
    assert result.failure().startswith("ClientError: the model channel's model.pkl is not an "
                                       "XGBoost model")


# -- data errors -------------------------------------------------------------------------------
def _failure(jobs: JobRunner, train: bytes, hyperparameters: dict[str, str],
             content_type: str = "text/csv", **channel_options) -> str:
    result = jobs.run("xgboost", {"train": Channel({"data.csv": train}, content_type,
                                                   **channel_options)}, hyperparameters)
    assert result.returncode == 2, result.output[-2000:]
    failure = result.failure()
    assert failure is not None
    return failure


@pytest.mark.parametrize(("train", "hyperparameters", "message"), [
    (b"", {"num_round": "2"},
     "ClientError: channel 'train' has no data: no records were found in"),
    (b"1,2,3\n0,4,5\n1,x,6\n", {"num_round": "2"},
     "ClientError: channel 'train' file data.csv, line 3, column 2: 'x' is not a number"),
    (b"label,a,b\n1,2,3\n", {"num_round": "2"}, "(SageMaker CSV has no header row; remove it)"),
    (b"1,2,3\n0,4,5\n1,6\n", {"num_round": "2"},
     "ClientError: channel 'train' file data.csv, line 3: expected 3 columns (as on the first "
     "row), found 2"),
    (b"1,2,3\n2,4,5\n", {"num_round": "2", "objective": "binary:logistic"},
     "ClientError: channel 'train', record 2: label 2 is not valid for objective "
     "binary:logistic (labels must be in [0, 1])"),
    (b"0,2,3\n1.5,4,5\n", {"num_round": "2", "objective": "multi:softmax", "num_class": "3"},
     "ClientError: channel 'train', record 2: label 1.5 is not valid for objective "
     "multi:softmax (labels must be integers in [0, 3), num_class=3)"),
    (b"0,2,3\n3,4,5\n", {"num_round": "2", "objective": "multi:softprob", "num_class": "3"},
     "record 2: label 3 is not valid for objective multi:softprob"),
    (b"1,2,3\n-1,4,5\n", {"num_round": "2", "objective": "count:poisson"},
     "record 2: label -1 is not valid for objective count:poisson (labels must be >= 0)"),
    (b"1,2,3\n0,4,5\n", {"num_round": "2", "objective": "reg:gamma"},
     "record 2: label 0 is not valid for objective reg:gamma (labels must be > 0)"),
    (b"1,2,3\n,4,5\n", {"num_round": "2"}, "record 2: the label is missing"),
    (b"1\n0\n", {"num_round": "2"}, "has labels but no feature columns"),
    (b"1,-2,3\n0,1,5\n", {"num_round": "2", "csv_weights": "1"},
     "record 1: instance weight -2 is not valid"),
    (b"1,2,3\n", {"num_round": "2", "early_stopping_rounds": "3"},
     "early_stopping_rounds needs a 'validation' channel"),
    (b"1,2,3\n", {"num_round": "2", "eta": "7"}, "ClientError: HyperParameters.eta: 7 is out"),
])
def test_data_errors_fail_with_a_client_error(jobs: JobRunner, train, hyperparameters, message):
    assert message in _failure(jobs, train, hyperparameters)


def test_unsupported_content_type_is_a_client_error(jobs: JobRunner):
    failure = _failure(jobs, b"1,2\n", {"num_round": "2"}, "application/json")
    assert failure.startswith("ClientError: InputDataConfig.1.ContentType: 'application/json' "
                              "is not supported for channel 'train'")


def test_files_with_different_column_counts_are_refused(jobs: JobRunner):
    result = jobs.run("xgboost", {"train": Channel({"a.csv": b"1,2,3\n", "b.csv": b"1,2\n"},
                                                   "text/csv")}, {"num_round": "2"})
    assert "different numbers of feature columns (1, 2)" in result.failure()


def test_malformed_libsvm_names_file_and_line(jobs: JobRunner):
    failure = _failure(jobs, b"1 0:1.5 2:3\n0 1:x\n", {"num_round": "2"}, "text/libsvm")
    assert "file data.csv, line 2, token 2: '1:x' is not an index:value pair" in failure


# -- data formats ------------------------------------------------------------------------------
def test_csv_weights_gzip_tabs_and_recordio_wrapped_pipe(jobs: JobRunner):
    features, labels = binary()
    weights = np.full(len(labels), 2.0)
    weighted = csv_bytes(features, labels, weights)
    plain = jobs.run("xgboost", {"train": Channel({"t.csv": csv_bytes(features, labels)},
                                                  "text/csv")}, {"num_round": "3"}).check()
    gzipped = jobs.run("xgboost", {"train": Channel({"t.csv.gz": gzip.compress(weighted)},
                                                    "text/csv")},
                       {"num_round": "3", "csv_weights": "1"}).check()
    tabbed = jobs.run("xgboost", {"train": Channel(
        {"t.tsv": csv_bytes(features, labels).replace(b",", b"\t")}, "text/csv")},
        {"num_round": "3"}).check()
    wrapped = jobs.run("xgboost", {"train": Channel(
        {"a.csv": csv_bytes(features[:100], labels[:100]),
         "b.csv": csv_bytes(features[100:], labels[100:])}, "text/csv",
        record_wrapper="RecordIO")}, {"num_round": "3"}, input_mode="Pipe").check()
    data = xgboost.DMatrix(features)
    reference = load_booster(plain.model_dir).predict(data)
    for other in (tabbed, wrapped):
        np.testing.assert_allclose(load_booster(other.model_dir).predict(data), reference,
                                   rtol=1e-6)
    assert load_booster(gzipped.model_dir).num_boosted_rounds() == 3


def test_pipe_mode_reads_back_to_back_parquet_files(jobs: JobRunner):
    features, labels = binary()
    parts = {}
    for index, (start, stop) in enumerate([(0, 70), (70, 140), (140, 200)]):
        buffer = io.BytesIO()
        write_parquet(buffer, features[start:stop], labels[start:stop])
        parts[f"part-{index}.parquet"] = buffer.getvalue()
    result = jobs.run("xgboost", {"train": Channel(parts, "application/x-parquet")},
                      {"num_round": "2", "eval_metric": "rmse"}, input_mode="Pipe").check()
    assert load_booster(result.model_dir).num_boosted_rounds() == 2
    assert frame_record  # RecordIO framing is covered by the CSV test above


def test_early_stopping_keeps_the_best_iteration_for_inference(jobs: JobRunner):
    features, labels = binary(300)
    result = csv_job(jobs, {"num_round": "200", "objective": "binary:logistic", "eta": "1",
                            "eval_metric": "logloss", "early_stopping_rounds": "3"},
                     features, labels).check()
    booster = load_booster(result.model_dir)
    assert booster.num_boosted_rounds() < 200
    best = int(booster.attr("best_iteration"))
    predictor = XGBoostPredictor(booster)
    assert predictor.iteration_range == (0, best + 1)


# -- inference -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def softprob_model(tmp_path_factory) -> Path:
    runner = JobRunner(tmp_path_factory.mktemp("softprob"))
    features, labels = multiclass()
    try:
        result = runner.run("xgboost", {"train": Channel({"t.csv": csv_bytes(features, labels)},
                                                         "text/csv")},
                            {"num_round": "5", "objective": "multi:softprob", "num_class": "3"})
        return result.check().model_dir
    finally:
        runner.close()


def test_softprob_responses(softprob_model: Path):
    features, _ = multiclass()
    predictor = ALGORITHM.load(softprob_model)
    body = "\n".join(",".join(str(v) for v in row) for row in features[:4]).encode()
    csv_body, content_type = predictor.predict(body, "text/csv", "text/csv")
    rows = csv_body.decode().splitlines()
    assert content_type == "text/csv" and len(rows) == 4
    assert all(len(row.split(",")) == 3 for row in rows)
    assert sum(float(v) for v in rows[0].split(",")) == pytest.approx(1, abs=1e-5)
    json_body, _ = predictor.predict(body, "text/csv", "application/json")
    predictions = json.loads(json_body)["predictions"]
    assert len(predictions) == 4 and len(predictions[0]["score"]) == 3


def test_selectable_inference_output(softprob_model: Path, monkeypatch):
    features, _ = multiclass()
    body = ",".join(str(v) for v in features[0]).encode()
    booster = load_booster(softprob_model)
    predictor = XGBoostPredictor(booster, {"SAGEMAKER_INFERENCE_OUTPUT":
                                           "predicted_label,probability,probabilities"})
    record = json.loads(predictor.predict(body, "text/csv", "application/json")[0]
                        )["predictions"][0]
    assert record["predicted_label"] == 0 and set(record) == {
        "predicted_label", "probability", "probabilities"}
    assert record["probability"] == max(record["probabilities"])
    csv_line = predictor.predict(body, "text/csv", "text/csv")[0].decode().strip()
    assert csv_line.startswith('0,') and csv_line.endswith(']"')
    with pytest.raises(ValueError, match="predicted_score"):
        XGBoostPredictor(booster, {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score"})


def test_default_accept_and_feature_count(softprob_model: Path):
    predictor = XGBoostPredictor(load_booster(softprob_model),
                                 {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"})
    body, content_type = predictor.predict(b"5.1,3.5,1.4,0.2", "text/csv", "*/*")
    assert content_type == "application/json" and json.loads(body)["predictions"]
    with pytest.raises(InferenceError, match="have 2 features; the model was trained on 4") as e:
        predictor.predict(b"5.1,3.5", "text/csv", "text/csv")
    assert e.value.status == 400
    # LibSVM at inference: labels optional, fewer features allowed
    body, _ = predictor.predict(b"0:5.1 2:1.4\n", "text/libsvm", "text/csv")
    assert len(body.decode().splitlines()) == 1


def test_a_host_with_an_empty_shard_still_takes_part(jobs: JobRunner):
    features, labels = binary(200)
    channels = {"train": Channel({"only.csv": csv_bytes(features, labels)}, "text/csv",
                                 distribution="ShardedByS3Key")}
    result = jobs.run("xgboost", channels, {"num_round": "3", "objective": "binary:logistic"},
                      instance_count=2, timeout=120).check()
    assert "algo-2 has no training data in its shard" in result.outputs[1]
    assert load_booster(result.model_dir).num_boosted_rounds() == 3


def test_save_model_on_termination(jobs: JobRunner, tmp_path: Path):
    import signal

    from tests.algorithms.conftest import ARN

    from openmaker.training.channels import deliver_channel
    from openmaker.training.contract import InstanceLayout, training_environment, write_config

    features, labels = binary(2000)
    request = jobs.request({"train": Channel({"t.csv": csv_bytes(features, labels)},
                                             "text/csv")},
                           {"num_round": "100000", "max_depth": "8", "eta": "0.001",
                            "save_model_on_termination": "true"}, "File", 1, "terminated")
    layout = InstanceLayout(tmp_path / "terminated", 1)
    layout.create(["train"])
    write_config(layout, request)
    deliver_channel(jobs.store, request["InputDataConfig"][0], layout)
    process = subprocess.Popen([sys.executable, "-m", "openmaker.algorithms", "xgboost"],
                               env=training_environment(layout, request, job_arn=ARN),
                               cwd=layout.code_dir, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("[3]#011"):
            break
    process.send_signal(signal.SIGTERM)
    process.stdout.read()
    assert process.wait(timeout=60) == 0
    rounds = load_booster(layout.model_dir).num_boosted_rounds()
    assert 4 <= rounds < 100000
