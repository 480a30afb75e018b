"""The SageMaker training container contract, without launching anything.

A training job's instance ``algo-<n>`` gets the ``/opt/ml`` tree SageMaker mounts into a
container, rooted at ``<home>/work/<job-name>/algo-<n>/opt/ml``; the three config files
SageMaker writes into ``input/config``; and the environment the sagemaker-training toolkit
builds (``SM_*``), with every path pointing at that real tree. Names and formats follow
``reference/platform.md`` section 2 and the toolkit's ``environment.py``/``mapping.py``
(checked against sagemaker-training 5.1.4).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

HYPERPARAMETERS_FILE = "hyperparameters.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
INPUT_DATA_CONFIG_FILE = "inputdataconfig.json"
CHECKPOINT_CONFIG_FILE = "checkpointconfig.json"
CONTAINER_ROOT = "/opt/ml"

HOMOGENEOUS_GROUP = "homogeneousCluster"  # the toolkit's and SDK's name for the only group
NETWORK_INTERFACE = "eth0"
DEFAULT_LOG_LEVEL = 20  # logging.INFO, the toolkit's default

# Hyperparameters the toolkit removes from the user's and does not pass as framework
# params (sagemaker_training.params.SAGEMAKER_HYPERPARAMETERS).
SAGEMAKER_HYPERPARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
SAGEMAKER_PREFIX = "sagemaker_"

# Framework params that make the toolkit treat the current group as distributed
# (Environment.get_distribution_instance_groups_from_resource_config).
_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)

# Channel names per the API: [A-Za-z0-9\.\-_]+, at most 64 characters.
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")


def _check_channel(channel: str) -> str:
    # "." and ".." match the API pattern but would step out of input/data.
    if not _CHANNEL_NAME.fullmatch(channel) or channel in {".", ".."}:
        raise ValueError(
            f"channel name {channel!r} is not valid: use 1-64 of A-Z a-z 0-9 . - _ "
            "(and not '.' or '..')"
        )
    return channel


def host_name(index: int) -> str:
    """The container host name of instance ``index`` (1-based): ``algo-<index>``."""
    if index < 1:
        raise ValueError(f"instance index must be 1 or more (algo-1 is the first), got {index}")
    return f"algo-{index}"


@dataclass(frozen=True)
class InstanceLayout:
    """Paths of one instance's ``opt/ml`` tree under a job work directory.

    ``index`` is 1-based, like the host name ``algo-<index>``.
    """

    work_dir: Path
    index: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "work_dir", Path(self.work_dir))
        host_name(self.index)  # validates the index

    @property
    def host(self) -> str:
        return host_name(self.index)

    @property
    def root(self) -> Path:
        """``<work>/algo-<n>/opt/ml``: what the container sees as ``/opt/ml``."""
        return self.work_dir / self.host / "opt" / "ml"

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def input_data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / HYPERPARAMETERS_FILE

    @property
    def resource_config_file(self) -> Path:
        return self.input_config_dir / RESOURCE_CONFIG_FILE

    @property
    def input_data_config_file(self) -> Path:
        return self.input_config_dir / INPUT_DATA_CONFIG_FILE

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        return self.output_dir / "intermediate"

    @property
    def failure_file(self) -> Path:
        """Its first 1024 characters become the job's ``FailureReason``."""
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def container_path(self, path: str) -> Path:
        """Where the container path ``path`` (under ``/opt/ml``) lies in this real tree."""
        return self.root / opt_ml_relative(path)

    def channel_dir(self, channel: str) -> Path:
        """``input/data/<channel>``: File and FastFile mode data for ``channel``."""
        return self.input_data_dir / _check_channel(channel)

    def create(self, channels: Iterable[str] = ()) -> None:
        """Create the tree (idempotent), with a data directory for each of ``channels``."""
        channel_dirs = [self.channel_dir(channel) for channel in channels]
        for directory in (
            self.input_config_dir,
            self.input_data_dir,
            *channel_dirs,
            self.model_dir,
            self.output_data_dir,
            self.output_intermediate_dir,
            self.checkpoints_dir,
            self.code_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)


def opt_ml_relative(path: str) -> PurePosixPath:
    """``path`` relative to ``/opt/ml``; ValueError for a path elsewhere, since an instance
    has no file system outside its ``opt/ml`` tree."""
    posix = PurePosixPath(path)
    if not posix.is_absolute() or ".." in posix.parts \
            or not posix.is_relative_to(CONTAINER_ROOT):
        raise ValueError(f"{path!r} must be an absolute path under {CONTAINER_ROOT}/ without "
                         "'..' (openmaker instances have no file system outside /opt/ml)")
    return posix.relative_to(CONTAINER_ROOT)


def fifo_path(layout: InstanceLayout, channel: str, epoch: int) -> Path:
    """The Pipe-mode FIFO of ``channel`` for ``epoch`` (0, 1, ...): ``input/data/<ch>_<epoch>``."""
    if epoch < 0:
        raise ValueError(f"epoch must be 0 or more, got {epoch}")
    return layout.input_data_dir / f"{_check_channel(channel)}_{epoch}"


# ---------------------------------------------------------------- config files


def hyperparameters_config(request: Mapping[str, Any]) -> dict[str, str]:
    """``hyperparameters.json``: the request's ``HyperParameters``, every value a string."""
    hyperparameters = request.get("HyperParameters") or {}
    # The API only admits strings; a non-string from an internal caller is JSON-encoded so
    # that the toolkit's json.loads gives the value back.
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in hyperparameters.items()
    }


def instance_groups(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The job's instance groups as ``resourceconfig.json`` lists them.

    A homogeneous job is one group, ``homogeneousCluster``. For a heterogeneous job
    (``ResourceConfig.InstanceGroups``) hosts are numbered across the groups in request
    order (UNVERIFIED: SageMaker does not document how it assigns hosts to groups).
    """
    resource_config = request.get("ResourceConfig") or {}
    groups = resource_config.get("InstanceGroups")
    if groups:
        specs = [
            (group["InstanceGroupName"], group["InstanceType"], int(group["InstanceCount"]))
            for group in groups
        ]
    else:
        specs = [
            (
                HOMOGENEOUS_GROUP,
                resource_config.get("InstanceType", "local"),
                int(resource_config.get("InstanceCount", 1)),
            )
        ]
    result = []
    number = 1
    for name, instance_type, count in specs:
        hosts = [host_name(n) for n in range(number, number + count)]
        number += count
        result.append(
            {"instance_group_name": name, "instance_type": instance_type, "hosts": sorted(hosts)}
        )
    return result


def host_count(request: Mapping[str, Any]) -> int:
    """How many instances (``algo-1`` ... ``algo-N``) the job runs on."""
    return sum(len(group["hosts"]) for group in instance_groups(request))


def resource_config(request: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``resourceconfig.json`` for instance ``index`` (1-based)."""
    current = host_name(index)
    groups = instance_groups(request)
    current_group = next((g for g in groups if current in g["hosts"]), None)
    if current_group is None:
        raise ValueError(
            f"instance {current} is outside the job's {host_count(request)} instance(s)"
        )
    # The docs say hosts are "sorted lexicographically", so algo-10 precedes algo-2 from
    # ten instances on (UNVERIFIED for real multi-digit clusters; the docs' examples stop
    # at three hosts).
    hosts = sorted(host for group in groups for host in group["hosts"])
    return {
        "current_host": current,
        "hosts": hosts,
        "network_interface_name": NETWORK_INTERFACE,
        "current_instance_type": current_group["instance_type"],
        "current_group_name": current_group["instance_group_name"],
        "instance_groups": groups,
    }


def input_data_config(request: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: one object per channel, keyed by channel name.

    Only the keys SageMaker documents are written (``ContentType`` when set,
    ``TrainingInputMode``, ``S3DistributionType``, ``RecordWrapperType``); compression and
    shuffling stay in the request, which the platform reads itself (UNVERIFIED whether
    SageMaker ever adds them to the file).
    """
    job_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    config: dict[str, dict[str, str]] = {}
    for channel in request.get("InputDataConfig") or []:
        name = _check_channel(channel["ChannelName"])
        s3 = (channel.get("DataSource") or {}).get("S3DataSource")
        entry: dict[str, str] = {}
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        entry["TrainingInputMode"] = channel.get("InputMode") or job_mode
        # EFS/FSx channels have no distribution type and report FullyReplicated.
        entry["S3DistributionType"] = (s3 or {}).get("S3DataDistributionType", "FullyReplicated")
        entry["RecordWrapperType"] = channel.get("RecordWrapperType", "None")
        config[name] = entry
    return config


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` so readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def checkpoint_directory(layout: InstanceLayout, request: Mapping[str, Any]) -> Path | None:
    """The real directory behind ``CheckpointConfig.LocalPath``; None without a config."""
    checkpoint = request.get("CheckpointConfig")
    if not checkpoint:
        return None
    return layout.container_path(checkpoint.get("LocalPath") or f"{CONTAINER_ROOT}/checkpoints")


def write_config(layout: InstanceLayout, request: Mapping[str, Any]) -> None:
    """Write the ``input/config`` files for ``layout``'s instance from a CreateTrainingJob
    request: the three every job has, and ``checkpointconfig.json`` (``LocalPath`` as the
    real directory) when the job has a ``CheckpointConfig``."""
    write_json_atomic(layout.hyperparameters_file, hyperparameters_config(request))
    write_json_atomic(layout.resource_config_file, resource_config(request, layout.index))
    write_json_atomic(layout.input_data_config_file, input_data_config(request))
    checkpoints = checkpoint_directory(layout, request)
    if checkpoints is not None:
        checkpoints.mkdir(parents=True, exist_ok=True)
        write_json_atomic(layout.input_config_dir / CHECKPOINT_CONFIG_FILE, {
            "LocalPath": str(checkpoints), "S3Uri": request["CheckpointConfig"]["S3Uri"]})


# ---------------------------------------------------------------- hyperparameters


def decode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """Decode each value as the toolkit does: ``json.loads`` it if that works, else keep it.

    ``"10"`` becomes 10, ``"true"`` True, ``'"adam"'`` (the SDK's encoding) ``adam``, and
    ``adam`` stays ``adam``. Values that are not strings are kept as they are.
    """
    decoded: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            decoded[key] = value
    return decoded


def split_hyperparameters(
    decoded: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split decoded hyperparameters into (user, sagemaker, framework params).

    ``sagemaker`` holds every reserved or ``sagemaker_``-prefixed key; ``framework`` the
    prefixed ones outside the reserved set (``sagemaker_mpi_enabled`` ...). Neither is
    passed to the user's script.
    """
    sagemaker = {
        k: v
        for k, v in decoded.items()
        if k in SAGEMAKER_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)
    }
    user = {k: v for k, v in decoded.items() if k not in sagemaker}
    framework = {k: v for k, v in sagemaker.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    return user, sagemaker, framework


def _render_argument(value: Any) -> str:
    # mapping.to_cmd_args: dicts as k1=v1,k2=v2 (sorted), None as "", the rest via str(),
    # so True renders "True" and [1, 2] renders "[1, 2]" -- Python's, not JSON's, forms.
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def user_arguments(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The command-line arguments the toolkit passes to a user entry point.

    Takes the job's hyperparameters (string form, or already decoded), drops the
    ``sagemaker_*`` ones, and renders ``--name value`` per key in sorted key order
    (``-k value`` for single-character names).
    """
    user, _, _ = split_hyperparameters(decode_hyperparameters(hyperparameters))
    return _cmd_args(user)


def _cmd_args(user: Mapping[str, Any]) -> list[str]:
    arguments: list[str] = []
    for key in sorted(user):
        name = str(key)
        arguments.append(f"--{name}" if len(name) > 1 else f"-{name}")
        arguments.append(_render_argument(user[key]))
    return arguments


# ---------------------------------------------------------------- environment


def _env_value(value: Any) -> str:
    # mapping.to_env_vars: strings raw, None empty, everything else compact sorted JSON.
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _module_name(program: Any) -> str:
    # Environment.module_name: str() of sagemaker_program (so "None" when absent), minus ".py".
    name = str(program)
    return name[:-3] if name.endswith(".py") else name


def training_environment(
    layout: InstanceLayout,
    request: Mapping[str, Any],
    *,
    job_arn: str,
    num_cpus: int | None = None,
    region: str | None = None,
    framework_module: str | None = None,
) -> dict[str, str]:
    """The environment for ``layout``'s instance of the job in ``request``.

    Holds the request's ``Environment`` entries, ``TRAINING_JOB_NAME``/``TRAINING_JOB_ARN``,
    and the ``SM_*`` variables the sagemaker-training toolkit exports, with paths into
    ``layout``'s real tree. The script-mode variables (``SM_MODULE_*``,
    ``SM_USER_ENTRY_POINT``, ``SM_USER_ARGS``, ``SM_FRAMEWORK_*``) are set only when the job
    carries ``sagemaker_*`` hyperparameters (as the SDK's framework estimators send) or a
    ``framework_module`` (``SAGEMAKER_TRAINING_MODULE``) is given. CPU only: no GPUs or
    Neuron cores are reported.
    """
    job_name = request["TrainingJobName"]
    resources = resource_config(request, layout.index)
    channels = input_data_config(request)
    decoded = decode_hyperparameters(hyperparameters_config(request))
    user, sagemaker, framework_params = split_hyperparameters(decoded)
    script_mode = bool(sagemaker) or framework_module is not None

    current_group = resources["current_group_name"]
    groups = resources["instance_groups"]
    groups_by_name = {group["instance_group_name"]: group for group in groups}
    current_group_hosts = groups_by_name[current_group]["hosts"]
    distribution_groups = framework_params.get("sagemaker_distribution_instance_groups")
    if distribution_groups is None:
        enabled = any(framework_params.get(flag, False) for flag in _DISTRIBUTION_FLAGS)
        distribution_groups = [current_group] if enabled else []
    distribution_hosts = [
        host
        for group in groups
        if group["instance_group_name"] in distribution_groups
        for host in group["hosts"]
    ]
    master_hostname = (distribution_hosts or resources["hosts"])[0]
    channel_input_dirs = {name: str(layout.channel_dir(name)) for name in channels}
    cpus = (os.cpu_count() or 1) if num_cpus is None else num_cpus
    log_level = sagemaker.get("sagemaker_container_log_level", DEFAULT_LOG_LEVEL)
    arguments = _cmd_args(user)
    mp_parameters = user.get("mp_parameters")

    if script_mode:
        program = sagemaker.get("sagemaker_program")
        module_name: str | None = _module_name(program)
        user_entry_point = program
        module_dir = str(sagemaker.get("sagemaker_submit_directory", layout.code_dir))
    else:
        module_name = user_entry_point = None
        module_dir = str(layout.code_dir)

    # Environment's public properties, which dict(Environment()) -- SM_TRAINING_ENV -- holds.
    training_env: dict[str, Any] = {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channel_input_dirs,
        "current_host": layout.host,
        "current_instance_group": current_group,
        "current_instance_group_hosts": current_group_hosts,
        "current_instance_type": resources["current_instance_type"],
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": framework_module,
        "hosts": resources["hosts"],
        "hyperparameters": user,
        "input_config_dir": str(layout.input_config_dir),
        "input_data_config": channels,
        "input_dir": str(layout.input_dir),
        "instance_groups": [group["instance_group_name"] for group in groups],
        "instance_groups_dict": groups_by_name,
        "is_hetero": len(groups) > 1,
        "is_master": layout.host == master_hostname,
        # The toolkit reads SM_HP_MP_PARAMETERS: unset -> null, else whether it is non-empty.
        "is_modelparallel_enabled": None if mp_parameters is None else mp_parameters != {},
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": job_name,
        "log_level": log_level,
        "master_hostname": master_hostname,
        "model_dir": str(layout.model_dir),
        "module_dir": module_dir,
        "module_name": module_name,
        "network_interface_name": resources["network_interface_name"],
        "num_cpus": cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "output_intermediate_dir": str(layout.output_intermediate_dir),
        "resource_config": resources,
        "topology": [],  # only GB200 UltraServer clusters have one
        "user_entry_point": user_entry_point,
    }

    # Environment.to_env_vars: each key becomes SM_<KEY upper-cased>.
    sm: dict[str, Any] = {
        "hosts": resources["hosts"],
        "network_interface_name": resources["network_interface_name"],
        "hps": user,
        "resource_config": resources,
        "input_data_config": channels,
        "output_data_dir": training_env["output_data_dir"],
        "channels": sorted(channel_input_dirs),
        "current_host": layout.host,
        "current_instance_type": resources["current_instance_type"],
        "current_instance_group": current_group,
        "current_instance_group_hosts": current_group_hosts,
        "instance_groups": training_env["instance_groups"],
        "instance_groups_dict": groups_by_name,
        "distribution_instance_groups": distribution_groups,
        "is_hetero": training_env["is_hetero"],
        "log_level": log_level,
        "input_dir": training_env["input_dir"],
        "input_config_dir": training_env["input_config_dir"],
        "output_dir": training_env["output_dir"],
        "num_cpus": cpus,
        "num_gpus": 0,
        "num_neurons": 0,
        "model_dir": training_env["model_dir"],
        "training_env": training_env,
        "output_intermediate_dir": training_env["output_intermediate_dir"],
    }
    if script_mode:
        sm.update(
            user_entry_point=user_entry_point,
            framework_params=framework_params,
            module_name=module_name,
            framework_module=framework_module,
            module_dir=module_dir,
            user_args=arguments,
        )
    for name, path in channel_input_dirs.items():
        sm[f"channel_{name}"] = path
    for key, value in user.items():
        sm[f"hp_{key}"] = value

    env = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    env.update(
        {
            "TRAINING_JOB_NAME": job_name,
            "TRAINING_JOB_ARN": job_arn,
            # Set by the toolkit while it builds its Environment.
            "CURRENT_HOST": layout.host,
            "SAGEMAKER_JOB_NAME": _env_value(sagemaker.get("sagemaker_job_name", "")),
            "SAGEMAKER_REGION": _env_value(sagemaker.get("sagemaker_region", region or "")),
            # Our choice: the toolkit reads SAGEMAKER_BASE_DIR instead of /opt/ml, so a
            # script that imports sagemaker_training finds this tree too.
            "SAGEMAKER_BASE_DIR": str(layout.root),
        }
    )
    if framework_module is not None:
        env["SAGEMAKER_TRAINING_MODULE"] = framework_module
    env.update({f"SM_{key.upper()}": _env_value(value) for key, value in sm.items()})
    return env
