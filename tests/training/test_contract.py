"""The training container contract: opt/ml tree, config files, SM_* environment."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from openmaker.training import contract
from openmaker.training.contract import (
    InstanceLayout,
    decode_hyperparameters,
    fifo_path,
    split_hyperparameters,
    training_environment,
    user_arguments,
    write_config,
)

JOB = "my-job"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job"


def builtin_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": JOB,
        "AlgorithmSpecification": {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
        "HyperParameters": {"num_round": "10", "objective": "binary:logistic", "eta": "0.3"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3Uri": "s3://bucket/train/",
                        "S3DataType": "S3Prefix",
                        "S3DataDistributionType": "ShardedByS3Key",
                    }
                },
                "ContentType": "text/csv",
                "CompressionType": "None",
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {"S3Uri": "s3://bucket/val/", "S3DataType": "S3Prefix"}
                },
                "InputMode": "Pipe",
                "RecordWrapperType": "RecordIO",
                "ShuffleConfig": {"Seed": 7},
            },
        ],
        "Environment": {"MY_VAR": "1"},
    }
    request.update(changes)
    return request


def script_request() -> dict[str, Any]:
    # what the SageMaker Python SDK's framework estimators send: every value JSON-encoded
    return builtin_request(
        ResourceConfig={"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
        HyperParameters={
            "epochs": "10",
            "lr": "0.001",
            "optimizer": '"adam"',
            "use-cuda": "false",
            "layers": "[64, 32]",
            "opts": '{"b": 2, "a": "x"}',
            "n": "3",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://bucket/my-job/source/sourcedir.tar.gz"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": '"my-job"',
            "sagemaker_region": '"us-east-1"',
            "sagemaker_mpi_enabled": "true",
        },
    )


def test_layout_paths_and_create(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path / "work" / JOB, 2)
    root = tmp_path / "work" / JOB / "algo-2" / "opt" / "ml"
    assert layout.host == "algo-2"
    assert layout.root == root
    assert layout.hyperparameters_file == root / "input/config/hyperparameters.json"
    assert layout.resource_config_file == root / "input/config/resourceconfig.json"
    assert layout.input_data_config_file == root / "input/config/inputdataconfig.json"
    assert layout.channel_dir("train") == root / "input/data/train"
    assert layout.model_dir == root / "model"
    assert layout.output_dir == root / "output"
    assert layout.output_data_dir == root / "output/data"
    assert layout.failure_file == root / "output/failure"
    assert layout.checkpoints_dir == root / "checkpoints"
    assert layout.code_dir == root / "code"

    layout.create(["train", "validation"])
    layout.create(["train"])  # idempotent
    for relative in (
        "input/config",
        "input/data/train",
        "input/data/validation",
        "model",
        "output/data",
        "output/intermediate",
        "checkpoints",
        "code",
    ):
        assert (root / relative).is_dir(), relative
    assert not layout.failure_file.exists()


def test_layout_rejects_bad_index_and_channel(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="algo-1"):
        InstanceLayout(tmp_path, 0)
    layout = InstanceLayout(tmp_path, 1)
    for bad in ("..", "a/b", "", "x" * 65):
        with pytest.raises(ValueError, match="channel name"):
            layout.channel_dir(bad)


def test_fifo_path(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path, 1)
    assert fifo_path(layout, "train", 0) == layout.root / "input" / "data" / "train_0"
    assert fifo_path(layout, "train", 3).name == "train_3"
    with pytest.raises(ValueError):
        fifo_path(layout, "train", -1)


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_config_files_have_sagemakers_structure(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path, 2)
    layout.create()
    request = builtin_request(
        HyperParameters={"num_round": "10", "eta": 0.3, "silent": True}  # internal caller
    )
    write_config(layout, request)

    hps = read(layout.hyperparameters_file)
    assert hps == {"num_round": "10", "eta": "0.3", "silent": "true"}
    assert all(isinstance(v, str) for v in hps.values())

    hosts = ["algo-1", "algo-2", "algo-3"]
    assert read(layout.resource_config_file) == {
        "current_host": "algo-2",
        "hosts": hosts,
        "network_interface_name": "eth0",
        "current_instance_type": "ml.m5.xlarge",
        "current_group_name": "homogeneousCluster",
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "ml.m5.xlarge",
                "hosts": hosts,
            }
        ],
    }

    assert read(layout.input_data_config_file) == {
        "train": {
            "ContentType": "text/csv",
            "TrainingInputMode": "File",
            "S3DistributionType": "ShardedByS3Key",
            "RecordWrapperType": "None",
        },
        # no ContentType key when none was given; channel InputMode overrides the job's
        "validation": {
            "TrainingInputMode": "Pipe",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "RecordIO",
        },
    }


def test_resource_config_for_heterogeneous_cluster() -> None:
    request = builtin_request(
        ResourceConfig={
            "InstanceGroups": [
                {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
                {"InstanceGroupName": "gpu", "InstanceType": "ml.p3.2xlarge", "InstanceCount": 2},
            ]
        }
    )
    config = contract.resource_config(request, 3)
    assert config["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert config["current_group_name"] == "gpu"
    assert config["current_instance_type"] == "ml.p3.2xlarge"
    assert [g["hosts"] for g in config["instance_groups"]] == [["algo-1"], ["algo-2", "algo-3"]]
    with pytest.raises(ValueError, match="outside"):
        contract.resource_config(request, 4)


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path, 1)
    write_config(layout, builtin_request())
    write_config(layout, builtin_request())  # overwrite in place
    assert sorted(p.name for p in layout.input_config_dir.iterdir()) == [
        "hyperparameters.json",
        "inputdataconfig.json",
        "resourceconfig.json",
    ]

    class Unserialisable:
        pass

    target = layout.input_config_dir / "hyperparameters.json"
    before = target.read_bytes()
    with pytest.raises(TypeError):
        contract.write_json_atomic(target, {"x": Unserialisable()})
    assert target.read_bytes() == before  # the old file survives a failed write
    assert len(list(layout.input_config_dir.iterdir())) == 3


def test_hyperparameters_decode_like_the_toolkit() -> None:
    decoded = decode_hyperparameters(
        {
            "int": "10",
            "float": "0.5",
            "exp": "1e-3",
            "yes": "true",
            "list": "[1, 2]",
            "encoded": '"adam"',
            "plain": "adam",
            "objective": "binary:logistic",
            "empty": "",
        }
    )
    assert decoded == {
        "int": 10,
        "float": 0.5,
        "exp": 0.001,
        "yes": True,
        "list": [1, 2],
        "encoded": "adam",
        "plain": "adam",
        "objective": "binary:logistic",
        "empty": "",
    }


def test_sagemaker_hyperparameters_are_split_off() -> None:
    user, sagemaker, framework = split_hyperparameters(
        decode_hyperparameters(script_request()["HyperParameters"])
    )
    assert not any(k.startswith("sagemaker_") for k in user)
    assert set(user) == {"epochs", "lr", "optimizer", "use-cuda", "layers", "opts", "n"}
    assert sagemaker["sagemaker_program"] == "train.py"
    assert framework == {"sagemaker_mpi_enabled": True}

    user, _, _ = split_hyperparameters({"_tuning_objective_metric": "auc", "k": 3})
    assert user == {"k": 3}


def test_user_arguments_order_and_rendering() -> None:
    args = user_arguments(script_request()["HyperParameters"])
    assert args == [
        "--epochs", "10",
        "--layers", "[64, 32]",
        "--lr", "0.001",
        "-n", "3",
        "--optimizer", "adam",
        "--opts", "a=x,b=2",
        "--use-cuda", "False",
    ]  # fmt: skip
    # "null" decodes to None, rendered empty; "None" is no JSON and stays a string
    rendered = user_arguments({"b": "1", "a": "None", "c": "null"})
    assert rendered == ["-a", "None", "-b", "1", "-c", ""]


def test_environment_for_a_script_mode_job(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path / JOB, 2)
    env = training_environment(layout, script_request(), job_arn=ARN, num_cpus=4)
    root = layout.root

    assert env["TRAINING_JOB_NAME"] == JOB
    assert env["TRAINING_JOB_ARN"] == ARN
    assert env["MY_VAR"] == "1"
    assert env["CURRENT_HOST"] == "algo-2"
    assert env["SAGEMAKER_REGION"] == "us-east-1"
    assert env["SAGEMAKER_BASE_DIR"] == str(root)

    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_INPUT_DIR"] == str(root / "input")
    assert env["SM_INPUT_CONFIG_DIR"] == str(root / "input" / "config")
    assert env["SM_OUTPUT_DIR"] == str(root / "output")
    assert env["SM_OUTPUT_DATA_DIR"] == str(root / "output" / "data")
    assert env["SM_OUTPUT_INTERMEDIATE_DIR"] == str(root / "output" / "intermediate")
    assert env["SM_CHANNELS"] == '["train","validation"]'
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(root / "input" / "data" / "validation")
    assert env["SM_HOSTS"] == '["algo-1","algo-2"]'
    assert env["SM_CURRENT_HOST"] == "algo-2"
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.c5.2xlarge"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert env["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == '["algo-1","algo-2"]'
    assert env["SM_IS_HETERO"] == "false"
    assert env["SM_NUM_CPUS"] == "4"
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SM_NUM_NEURONS"] == "0"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_LOG_LEVEL"] == "20"

    assert json.loads(env["SM_HPS"]) == {
        "epochs": 10,
        "lr": 0.001,
        "optimizer": "adam",
        "use-cuda": False,
        "layers": [64, 32],
        "opts": {"a": "x", "b": 2},
        "n": 3,
    }
    assert env["SM_HPS"].startswith('{"epochs":10,"layers":[64,32],')  # sorted, compact
    assert env["SM_HP_EPOCHS"] == "10"
    assert env["SM_HP_OPTIMIZER"] == "adam"
    assert env["SM_HP_USE-CUDA"] == "false"
    assert env["SM_HP_LAYERS"] == "[64,32]"
    assert not any(k.startswith("SM_HP_SAGEMAKER") for k in env)

    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_NAME"] == "train"
    assert env["SM_MODULE_DIR"] == "s3://bucket/my-job/source/sourcedir.tar.gz"
    assert env["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_mpi_enabled":true}'
    assert env["SM_FRAMEWORK_MODULE"] == ""
    assert json.loads(env["SM_USER_ARGS"]) == user_arguments(script_request()["HyperParameters"])

    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_host"] == "algo-2"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["validation"]["TrainingInputMode"] == "Pipe"

    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["channel_input_dirs"] == {
        "train": env["SM_CHANNEL_TRAIN"],
        "validation": env["SM_CHANNEL_VALIDATION"],
    }
    assert training_env["current_host"] == "algo-2"
    assert training_env["hosts"] == ["algo-1", "algo-2"]
    assert training_env["hyperparameters"] == json.loads(env["SM_HPS"])
    assert training_env["input_config_dir"] == env["SM_INPUT_CONFIG_DIR"]
    assert training_env["input_dir"] == env["SM_INPUT_DIR"]
    assert training_env["job_name"] == JOB
    assert training_env["model_dir"] == env["SM_MODEL_DIR"]
    assert training_env["module_dir"] == env["SM_MODULE_DIR"]
    assert training_env["module_name"] == "train"
    assert training_env["num_cpus"] == 4
    assert training_env["num_gpus"] == 0
    assert training_env["output_data_dir"] == env["SM_OUTPUT_DATA_DIR"]
    assert training_env["output_dir"] == env["SM_OUTPUT_DIR"]
    assert training_env["user_entry_point"] == "train.py"
    assert training_env["additional_framework_parameters"] == {"sagemaker_mpi_enabled": True}
    # MPI enabled: the group is distributed and its first host is the master
    assert training_env["distribution_hosts"] == ["algo-1", "algo-2"]
    assert training_env["master_hostname"] == "algo-1"
    assert training_env["is_master"] is False
    assert all(isinstance(value, str) for value in env.values())


def test_environment_for_a_builtin_job(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path / JOB, 1)
    env = training_environment(layout, builtin_request(), job_arn=ARN)

    for name in (
        "SM_MODULE_NAME",
        "SM_MODULE_DIR",
        "SM_USER_ENTRY_POINT",
        "SM_USER_ARGS",
        "SM_FRAMEWORK_PARAMS",
        "SM_FRAMEWORK_MODULE",
    ):
        assert name not in env, name
    assert json.loads(env["SM_HPS"]) == {
        "num_round": 10,
        "objective": "binary:logistic",
        "eta": 0.3,
    }
    assert env["SM_HP_NUM_ROUND"] == "10"
    assert env["SM_HP_OBJECTIVE"] == "binary:logistic"
    assert env["SM_HOSTS"] == '["algo-1","algo-2","algo-3"]'
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_CPUS"] == str(os.cpu_count())
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_MODEL_DIR"] == str(layout.model_dir)
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["module_name"] is None
    assert training_env["module_dir"] == str(layout.code_dir)
    assert training_env["is_master"] is True


def test_framework_module_turns_on_script_mode_variables(tmp_path: Path) -> None:
    layout = InstanceLayout(tmp_path / JOB, 1)
    env = training_environment(
        layout, builtin_request(), job_arn=ARN, framework_module="my_pkg.training:main"
    )
    assert env["SM_FRAMEWORK_MODULE"] == "my_pkg.training:main"
    assert env["SAGEMAKER_TRAINING_MODULE"] == "my_pkg.training:main"
    assert env["SM_MODULE_DIR"] == str(layout.code_dir)
    assert json.loads(env["SM_USER_ARGS"]) == [
        "--eta", "0.3", "--num_round", "10", "--objective", "binary:logistic"
    ]  # fmt: skip
