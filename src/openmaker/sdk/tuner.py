"""``openmaker.HyperparameterTuner``: hyperparameter tuning jobs in the SageMaker Python SDK's
shape.

A tuner takes an ``openmaker.Estimator`` as the template of every training job, the
hyperparameters to search (``IntegerParameter``, ``ContinuousParameter``,
``CategoricalParameter``) and the objective metric, and sends
``CreateHyperParameterTuningJob``: the estimator's training job request becomes the
``TrainingJobDefinition`` and its hyperparameters, less the tuned ones, the
``StaticHyperParameters``. ``HyperparameterTuningJobAnalytics`` reads every training job of
a tuning job into a DataFrame, as ``sagemaker.analytics`` does.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from openmaker.sdk.estimator import (
    RESERVED_HYPERPARAMETERS,
    Estimator,
    _decode,
    base_name_from_image,
    tag_list,
)
from openmaker.sdk.session import Session

if TYPE_CHECKING:
    import pandas

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
POLL_SECONDS = 1.0
TUNING_JOB_NAME_MAX_LENGTH = 32
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
EARLY_STOPPING_TYPES = ("Off", "Auto")
# The members of HyperParameterTrainingJobDefinition that a CreateTrainingJob request shares.
_DEFINITION_KEYS = ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig",
                    "ResourceConfig", "StoppingCondition", "EnableManagedSpotTraining",
                    "CheckpointConfig", "Environment", "VpcConfig", "EnableNetworkIsolation",
                    "EnableInterContainerTrafficEncryption", "RetryStrategy")
_TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
_TUNING_NAME_SUFFIX = re.compile(r"-\d{6}-\d{6}-\d{3}$")
# SageMaker adds it to a tuning job's static hyperparameters; it is not the estimator's.
TUNING_OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
ANALYTICS_COLUMNS = ["TrainingJobName", "TrainingJobStatus", "FinalObjectiveValue",
                     "TrainingStartTime", "TrainingEndTime", "TrainingElapsedTimeSeconds"]


class TuningJobFailedError(RuntimeError):
    """A tuning job ended ``Failed``; ``failure_reason`` is its ``FailureReason``."""

    def __init__(self, job_name: str, failure_reason: str) -> None:
        super().__init__(f"Hyperparameter tuning job {job_name} failed. Reason: "
                         f"{failure_reason}")
        self.job_name = job_name
        self.failure_reason = failure_reason


# -- parameter ranges ------------------------------------------------------------------------
def _number(value: Any, what: str, *, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{what} must be {kind}, got {value!r}")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise TypeError(f"{what} must be an integer, got {value!r}")
        value = int(value)
    return value


class _NumericParameter:
    """A range ``[min_value, max_value]`` searched on ``scaling_type``'s scale."""

    _integer = False
    _kind = ""

    def __init__(self, min_value: int | float, max_value: int | float,
                 scaling_type: str = "Auto") -> None:
        name = type(self).__name__
        self.min_value = _number(min_value, f"{name} min_value", integer=self._integer)
        self.max_value = _number(max_value, f"{name} max_value", integer=self._integer)
        if self.min_value > self.max_value:
            raise ValueError(f"{name} min_value ({min_value}) must not exceed max_value "
                             f"({max_value})")
        if scaling_type not in SCALING_TYPES:
            raise ValueError(f"{name} scaling_type must be one of {', '.join(SCALING_TYPES)}; "
                             f"got {scaling_type!r}")
        if scaling_type == "Logarithmic" and self.min_value <= 0:
            raise ValueError(f"{name} with scaling_type Logarithmic needs min_value > 0; got "
                             f"{min_value}")
        if scaling_type == "ReverseLogarithmic" and not (
                0 <= self.min_value and self.max_value < 1):
            raise ValueError(f"{name} with scaling_type ReverseLogarithmic needs 0 <= "
                             f"min_value <= max_value < 1; got {min_value}..{max_value}")
        self.scaling_type = scaling_type

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.min_value!r}, {self.max_value!r}, "
                f"scaling_type={self.scaling_type!r})")

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def as_tuning_range(self, name: str) -> dict[str, str]:
        """This range's entry in ``ParameterRanges``."""
        return {"Name": name, "MinValue": str(self.min_value), "MaxValue": str(self.max_value),
                "ScalingType": self.scaling_type}

    @classmethod
    def from_tuning_range(cls, entry: Mapping[str, Any]) -> _NumericParameter:
        parse = int if cls._integer else float
        return cls(parse(entry["MinValue"]), parse(entry["MaxValue"]),
                   entry.get("ScalingType", "Auto"))


class IntegerParameter(_NumericParameter):
    """Whole numbers from ``min_value`` to ``max_value`` inclusive, as
    ``sagemaker.tuner.IntegerParameter``."""

    _integer = True
    _kind = "IntegerParameterRanges"


class ContinuousParameter(_NumericParameter):
    """Real numbers from ``min_value`` to ``max_value``, as
    ``sagemaker.tuner.ContinuousParameter``."""

    _kind = "ContinuousParameterRanges"


class CategoricalParameter:
    """One of ``values`` (a list; a single value is a list of one), as
    ``sagemaker.tuner.CategoricalParameter``."""

    _kind = "CategoricalParameterRanges"

    def __init__(self, values: Any) -> None:
        if isinstance(values, str | int | float | bool) or values is None:
            values = [values]
        if not isinstance(values, Iterable) or isinstance(values, Mapping):
            raise TypeError(f"CategoricalParameter values must be a list of values, got "
                            f"{type(values).__name__}")
        self.values = list(values)
        if not self.values or any(v is None for v in self.values):
            raise ValueError("CategoricalParameter values must be a non-empty list without "
                             "None")

    def __repr__(self) -> str:
        return f"CategoricalParameter({self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalParameter) and self.values == other.values

    def as_tuning_range(self, name: str, *, json_values: bool = False) -> dict[str, Any]:
        """This range's entry in ``ParameterRanges``; ``json_values`` JSON-encodes each value
        (as the SDK does for script-mode estimators, whose hyperparameters are JSON)."""
        encode = json.dumps if json_values else str
        return {"Name": name, "Values": [v if isinstance(v, str) and not json_values
                                         else encode(v) for v in self.values]}

    @classmethod
    def from_tuning_range(cls, entry: Mapping[str, Any]) -> CategoricalParameter:
        return cls([_decode(v) for v in entry["Values"]])


ParameterRange = IntegerParameter | ContinuousParameter | CategoricalParameter
_RANGE_CLASSES: dict[str, Any] = {"IntegerParameterRanges": IntegerParameter,
                                  "ContinuousParameterRanges": ContinuousParameter,
                                  "CategoricalParameterRanges": CategoricalParameter}


# -- warm start ----------------------------------------------------------------------------
class WarmStartTypes(StrEnum):
    """The ``WarmStartType`` values, as ``sagemaker.tuner.WarmStartTypes``."""

    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


class WarmStartConfig:
    """Start a tuning job from what earlier tuning jobs (``parents``, up to 5 names) learnt,
    as ``sagemaker.tuner.WarmStartConfig``."""

    def __init__(self, warm_start_type: WarmStartTypes | str,
                 parents: Iterable[str] | str) -> None:
        try:
            self.type = WarmStartTypes(warm_start_type)
        except ValueError:
            raise ValueError(
                "WarmStartConfig warm_start_type must be one of "
                f"{', '.join(t.value for t in WarmStartTypes)}; got {warm_start_type!r}"
            ) from None
        parents = [parents] if isinstance(parents, str) else list(parents or [])
        if not parents or not all(isinstance(p, str) and p for p in parents):
            raise ValueError("WarmStartConfig parents must name one or more tuning jobs")
        if len(parents) > 5:
            raise ValueError(f"WarmStartConfig parents: at most 5 parent tuning jobs, got "
                             f"{len(parents)}")
        self.parents = list(dict.fromkeys(parents))

    def __repr__(self) -> str:
        return f"WarmStartConfig({self.type.value!r}, parents={self.parents!r})"

    def to_input_req(self) -> dict[str, Any]:
        """The request's ``WarmStartConfig``."""
        return {"WarmStartType": self.type.value,
                "ParentHyperParameterTuningJobs": [
                    {"HyperParameterTuningJobName": name} for name in self.parents]}

    @classmethod
    def from_job_desc(cls, config: Mapping[str, Any] | None) -> WarmStartConfig | None:
        if not config:
            return None
        return cls(config["WarmStartType"], [
            p["HyperParameterTuningJobName"] for p in config["ParentHyperParameterTuningJobs"]])


# -- request pieces ------------------------------------------------------------------------
def _wire(value: Any) -> Any:
    """A config object of the SageMaker SDK (``to_input_req``) or a mapping, as a dict."""
    if hasattr(value, "to_input_req"):
        return value.to_input_req()
    return dict(value)


def _strategy_config(value: Any) -> dict[str, Any]:
    """``StrategyConfig`` from ``{"HyperbandStrategyConfig": {...}}``, ``{"MinResource": ..,
    "MaxResource": ..}`` or ``{"min_resource": .., "max_resource": ..}``."""
    if not isinstance(value, Mapping) and not hasattr(value, "to_input_req"):
        raise TypeError("strategy_config must be a mapping such as {'MinResource': 1, "
                        f"'MaxResource': 10}}, got {type(value).__name__}")
    config = _wire(value)
    hyperband = config.get("HyperbandStrategyConfig", config)
    names = {"min_resource": "MinResource", "max_resource": "MaxResource"}
    hyperband = {names.get(k, k): v for k, v in hyperband.items()}
    unknown = set(hyperband) - {"MinResource", "MaxResource"}
    if unknown:
        raise ValueError(f"strategy_config: unknown keys {sorted(unknown)}; Hyperband takes "
                         "MinResource and MaxResource")
    for key, number in hyperband.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"strategy_config {key} must be an integer >= 1, got {number!r}")
    if hyperband.get("MinResource", 1) > hyperband.get("MaxResource", float("inf")):
        raise ValueError("strategy_config MinResource must not exceed MaxResource")
    return {"HyperbandStrategyConfig": hyperband}


def _completion_criteria(value: Any) -> dict[str, Any]:
    """``TuningJobCompletionCriteria`` from its wire form, or the SDK's
    ``TuningJobCompletionCriteriaConfig`` (or its keywords as a mapping)."""
    if not isinstance(value, Mapping) and not hasattr(value, "to_input_req"):
        raise TypeError("completion_criteria_config must be a mapping such as "
                        "{'TargetObjectiveMetricValue': 0.9}, got " + type(value).__name__)
    config = _wire(value)
    criteria: dict[str, Any] = {}
    for key, setting in config.items():
        if key in ("TargetObjectiveMetricValue", "target_objective_metric_value"):
            criteria["TargetObjectiveMetricValue"] = float(setting)
        elif key in ("BestObjectiveNotImproving", "ConvergenceDetected"):
            criteria[key] = dict(setting)
        elif key == "max_number_training_jobs_not_improving":
            criteria["BestObjectiveNotImproving"] = {
                "MaxNumberOfTrainingJobsNotImproving": int(setting)}
        elif key == "complete_on_convergence":
            flag = setting if isinstance(setting, str) else ("Enabled" if setting
                                                             else "Disabled")
            criteria["ConvergenceDetected"] = {"CompleteOnConvergence": flag}
        else:
            raise ValueError(f"completion_criteria_config: unknown key {key!r}")
    return criteria


def _positive_int(value: Any, what: str, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return value


def _choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


def tuning_job_name_from_base(base: str) -> str:
    """``<base>-YYMMDD-HHMMSS-mmm`` within the 32 characters a tuning job's name may have
    (the SageMaker SDK stamps minutes only, which collide for tuners started together)."""
    moment = time.time()
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(moment))
    stamp += f"-{int(moment * 1000) % 1000:03d}"
    base = base[:TUNING_JOB_NAME_MAX_LENGTH - len(stamp) - 1].strip("-") or "tuning"
    return f"{base}-{stamp}"


# -- the tuner -----------------------------------------------------------------------------
class HyperparameterTuner:
    """A hyperparameter tuning job, as ``sagemaker.tuner.HyperparameterTuner``.

    >>> tuner = openmaker.HyperparameterTuner(
    ...     estimator, "validation:rmse", {"eta": openmaker.ContinuousParameter(0.1, 0.5)},
    ...     objective_type="Minimize", max_jobs=4, max_parallel_jobs=2)
    >>> tuner.fit({"train": train_uri, "validation": validation_uri})
    >>> tuner.best_training_job()
    """

    def __init__(
        self,
        estimator: Estimator,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, ParameterRange],
        metric_definitions: list[dict[str, str]] | None = None,
        strategy: str = "Bayesian",
        objective_type: str = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        max_runtime_in_seconds: int | None = None,
        tags: list[dict[str, str]] | Mapping[str, str] | None = None,
        base_tuning_job_name: str | None = None,
        warm_start_config: WarmStartConfig | None = None,
        early_stopping_type: str = "Off",
        random_seed: int | None = None,
        strategy_config: Mapping[str, Any] | None = None,
        completion_criteria_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(estimator, Estimator):
            raise TypeError("estimator must be an openmaker.Estimator (the template of every "
                            f"training job), got {type(estimator).__name__}")
        if not isinstance(objective_metric_name, str) or not objective_metric_name:
            raise ValueError("objective_metric_name must name a metric, such as "
                             f"'validation:rmse'; got {objective_metric_name!r}")
        if not isinstance(hyperparameter_ranges, Mapping) or not hyperparameter_ranges:
            raise ValueError("hyperparameter_ranges must be a non-empty dict of hyperparameter "
                             "name to IntegerParameter, ContinuousParameter or "
                             "CategoricalParameter")
        for name, value in hyperparameter_ranges.items():
            if not isinstance(value, _NumericParameter | CategoricalParameter):
                raise TypeError(f"hyperparameter_ranges[{name!r}] must be an IntegerParameter, "
                                f"ContinuousParameter or CategoricalParameter, got {value!r}")
        _choice(strategy, "strategy", STRATEGIES)
        _choice(objective_type, "objective_type", OBJECTIVE_TYPES)
        _choice(early_stopping_type, "early_stopping_type", EARLY_STOPPING_TYPES)
        if strategy == "Grid":
            numeric = [n for n, v in hyperparameter_ranges.items()
                       if not isinstance(v, CategoricalParameter)]
            if numeric:
                raise ValueError("strategy Grid searches CategoricalParameter ranges only; "
                                 f"hyperparameter_ranges {numeric} are numeric")
        if max_jobs is None and strategy != "Grid":
            max_jobs = 1  # the SageMaker SDK's default
        if metric_definitions is not None and (
                not isinstance(metric_definitions, list)
                or not all(isinstance(d, Mapping) and {"Name", "Regex"} <= set(d)
                           for d in metric_definitions)):
            raise ValueError("metric_definitions must be a list of {'Name': ..., 'Regex': ...}")
        if warm_start_config is not None and not isinstance(warm_start_config,
                                                            WarmStartConfig):
            raise TypeError("warm_start_config must be a WarmStartConfig, got "
                            f"{type(warm_start_config).__name__}")
        if random_seed is not None and (isinstance(random_seed, bool)
                                        or not isinstance(random_seed, int)):
            raise ValueError(f"random_seed must be an integer, got {random_seed!r}")
        if strategy_config is not None and strategy != "Hyperband":
            raise ValueError(f"strategy_config applies to strategy Hyperband only (strategy is "
                             f"{strategy})")
        if base_tuning_job_name is not None and not isinstance(base_tuning_job_name, str):
            raise TypeError("base_tuning_job_name must be a string")

        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges)
        self.metric_definitions = metric_definitions
        self.strategy = strategy
        self.objective_type = objective_type
        self.max_jobs = _positive_int(max_jobs, "max_jobs")
        self.max_parallel_jobs = _positive_int(max_parallel_jobs, "max_parallel_jobs",
                                               optional=False)
        self.max_runtime_in_seconds = _positive_int(max_runtime_in_seconds,
                                                    "max_runtime_in_seconds")
        self.tags = tags
        self.base_tuning_job_name = base_tuning_job_name
        self.warm_start_config = warm_start_config
        self.early_stopping_type = early_stopping_type
        self.random_seed = random_seed
        self.strategy_config = (None if strategy_config is None
                                else _strategy_config(strategy_config))
        self.completion_criteria_config = (
            None if completion_criteria_config is None
            else _completion_criteria(completion_criteria_config))
        self._current_job_name: str | None = None

    def __repr__(self) -> str:
        return (f"HyperparameterTuner(objective={self.objective_metric_name!r}, "
                f"job={self._current_job_name!r})")

    @property
    def session(self) -> Session:
        return self.estimator.session

    def hyperparameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """The request's ``ParameterRanges``: every kind present, even when empty."""
        script_mode = bool(self.estimator.entry_point)
        ranges: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _RANGE_CLASSES}
        for name, value in self._hyperparameter_ranges.items():
            entry = (value.as_tuning_range(name, json_values=script_mode)
                     if isinstance(value, CategoricalParameter)
                     else value.as_tuning_range(name))
            ranges[value._kind].append(entry)
        return ranges

    def _objective_and_limits(self) -> dict[str, Any]:
        limits: dict[str, Any] = {"MaxParallelTrainingJobs": self.max_parallel_jobs}
        if self.max_jobs is not None:
            limits["MaxNumberOfTrainingJobs"] = self.max_jobs
        if self.max_runtime_in_seconds is not None:
            limits["MaxRuntimeInSeconds"] = self.max_runtime_in_seconds
        config: dict[str, Any] = {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {"Type": self.objective_type,
                                                 "MetricName": self.objective_metric_name},
            "ResourceLimits": limits,
            "ParameterRanges": self.hyperparameter_ranges(),
            "TrainingJobEarlyStoppingType": self.early_stopping_type,
        }
        if self.strategy_config:
            config["StrategyConfig"] = self.strategy_config
        if self.completion_criteria_config:
            config["TuningJobCompletionCriteria"] = self.completion_criteria_config
        if self.random_seed is not None:
            config["RandomSeed"] = self.random_seed
        return config

    def tuning_job_request(self, inputs: Any = None,
                           job_name: str | None = None) -> dict[str, Any]:
        """The ``CreateHyperParameterTuningJob`` parameters ``fit`` sends (uploading a
        script-mode estimator's source)."""
        if job_name is None:
            job_name = tuning_job_name_from_base(
                self.base_tuning_job_name or self.estimator.base_job_name
                or base_name_from_image(self.estimator.image_uri))
        elif not isinstance(job_name, str) or not _TUNING_JOB_NAME.match(job_name):
            raise ValueError(f"job_name {job_name!r} is not a tuning job name: 1 to 32 letters, "
                             "digits and hyphens, starting and ending with a letter or digit")
        training = self.estimator.training_job_request(inputs, job_name=job_name)
        definition = {key: training[key] for key in _DEFINITION_KEYS if key in training}
        definition["AlgorithmSpecification"] = dict(definition["AlgorithmSpecification"])
        if self.metric_definitions is not None:
            definition["AlgorithmSpecification"]["MetricDefinitions"] = self.metric_definitions
        definition["StaticHyperParameters"] = {
            k: v for k, v in training.get("HyperParameters", {}).items()
            if k not in self._hyperparameter_ranges}
        request: dict[str, Any] = {
            "HyperParameterTuningJobName": job_name,
            "HyperParameterTuningJobConfig": self._objective_and_limits(),
            "TrainingJobDefinition": definition,
        }
        if self.warm_start_config is not None:
            request["WarmStartConfig"] = self.warm_start_config.to_input_req()
        tags = tag_list(self.tags) or tag_list(self.estimator.tags)
        if tags:
            request["Tags"] = tags
        return request

    # -- running --------------------------------------------------------------------------
    def fit(self, inputs: Any = None, job_name: str | None = None, wait: bool = True) -> None:
        """Start a tuning job on ``inputs`` (as ``Estimator.fit`` takes them) and, with
        ``wait``, block until it ends; ``TuningJobFailedError`` if it fails."""
        request = self.tuning_job_request(inputs, job_name)
        self.session.sagemaker.create_hyper_parameter_tuning_job(**request)
        self._current_job_name = request["HyperParameterTuningJobName"]
        if wait:
            self.wait()

    @property
    def latest_tuning_job(self) -> str | None:
        """The name of the tuning job this tuner last started or attached to."""
        return self._current_job_name

    def _job_name(self) -> str:
        if self._current_job_name is None:
            raise ValueError("no tuning job yet: call fit() or HyperparameterTuner.attach() "
                             "first")
        return self._current_job_name

    def describe(self) -> dict[str, Any]:
        """``DescribeHyperParameterTuningJob`` of the latest tuning job."""
        return self.session.sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=self._job_name())

    def wait(self, poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
        """Poll until the tuning job ends; returns its description, or raises
        ``TuningJobFailedError`` when it failed."""
        job = wait_for_tuning_job(self.session, self._job_name(), poll_seconds=poll_seconds)
        if job["HyperParameterTuningJobStatus"] == "Failed":
            raise TuningJobFailedError(job["HyperParameterTuningJobName"],
                                       job.get("FailureReason", "(no reason given)"))
        return job

    def stop(self) -> None:
        """``StopHyperParameterTuningJob``: running training jobs are stopped and the
        tuning job ends ``Stopped``."""
        self.session.sagemaker.stop_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=self._job_name())

    def best_training_job(self) -> str:
        """The name of the training job with the best objective value so far."""
        best = self.describe().get("BestTrainingJob")
        if not best:
            raise ValueError(f"tuning job {self._job_name()} has no best training job yet: "
                             f"no training job has reported {self.objective_metric_name}")
        return best["TrainingJobName"]

    def best_estimator(self) -> Estimator:
        """``Estimator.attach`` of the best training job."""
        return Estimator.attach(self.best_training_job(), session=self.session)

    def deploy(self, initial_instance_count: int = 1, instance_type: str | None = None,
               serializer: Any = None, deserializer: Any = None,
               endpoint_name: str | None = None, model_name: str | None = None,
               wait: bool = True, **kwargs: Any):
        """Deploy the best training job's model (``Estimator.deploy``); returns its
        ``Predictor``. The endpoint is named after the best job by default."""
        return self.best_estimator().deploy(
            initial_instance_count=initial_instance_count, instance_type=instance_type,
            serializer=serializer, deserializer=deserializer, endpoint_name=endpoint_name,
            model_name=model_name, wait=wait, **kwargs)

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        """The latest tuning job's training jobs as a DataFrame source."""
        return HyperparameterTuningJobAnalytics(self._job_name(), session=self.session)

    @classmethod
    def attach(cls, tuning_job_name: str, session: Session | None = None
               ) -> HyperparameterTuner:
        """A tuner rebuilt from an existing tuning job's description, bound to that job."""
        session = session or Session()
        job = session.sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_job_name)
        definition = job.get("TrainingJobDefinition")
        if not definition:
            raise ValueError(f"tuning job {tuning_job_name} has no TrainingJobDefinition "
                             "(several TrainingJobDefinitions are not supported by attach)")
        config = job["HyperParameterTuningJobConfig"]
        objective = config.get("HyperParameterTuningJobObjective", {})
        limits = config.get("ResourceLimits", {})
        ranges: dict[str, Any] = {}
        for kind, entries in (config.get("ParameterRanges") or {}).items():
            for entry in entries or []:
                ranges[entry["Name"]] = _RANGE_CLASSES[kind].from_tuning_range(entry)
        tags = session.sagemaker.list_tags(
            ResourceArn=job["HyperParameterTuningJobArn"]).get("Tags")
        base = _TUNING_NAME_SUFFIX.sub("", tuning_job_name)
        tuner = cls(
            _estimator_from_definition(definition, session),
            objective.get("MetricName", ""),
            ranges,
            metric_definitions=definition["AlgorithmSpecification"].get("MetricDefinitions"),
            strategy=config.get("Strategy", "Bayesian"),
            objective_type=objective.get("Type", "Maximize"),
            max_jobs=limits.get("MaxNumberOfTrainingJobs"),
            max_parallel_jobs=limits.get("MaxParallelTrainingJobs", 1),
            max_runtime_in_seconds=limits.get("MaxRuntimeInSeconds"),
            tags=tags or None,
            base_tuning_job_name=base if base != tuning_job_name else None,
            warm_start_config=WarmStartConfig.from_job_desc(job.get("WarmStartConfig")),
            early_stopping_type=config.get("TrainingJobEarlyStoppingType", "Off"),
            random_seed=config.get("RandomSeed"),
            strategy_config=config.get("StrategyConfig"),
            completion_criteria_config=config.get("TuningJobCompletionCriteria"),
        )
        tuner._current_job_name = job["HyperParameterTuningJobName"]
        return tuner


def _estimator_from_definition(definition: Mapping[str, Any], session: Session) -> Estimator:
    """The estimator a ``TrainingJobDefinition`` was built from (as ``Estimator.attach``
    rebuilds one from a training job)."""
    static = {k: _decode(v) for k, v in (definition.get("StaticHyperParameters") or {}).items()}
    program = static.get("sagemaker_program")
    source = static.get("sagemaker_submit_directory")
    algorithm = definition["AlgorithmSpecification"]
    # the SageMaker SDK sends HyperParameterTuningResourceConfig in place of ResourceConfig
    resources = (definition.get("ResourceConfig")
                 or definition.get("HyperParameterTuningResourceConfig") or {})
    stopping = definition.get("StoppingCondition") or {}
    checkpoint = definition.get("CheckpointConfig") or {}
    return Estimator(
        image_uri=algorithm.get("TrainingImage", ""),
        role=definition.get("RoleArn"),
        instance_count=resources.get("InstanceCount", 1),
        instance_type=resources.get("InstanceType", "ml.m5.large"),
        hyperparameters={k: v for k, v in static.items()
                         if k not in (*RESERVED_HYPERPARAMETERS, TUNING_OBJECTIVE_HYPERPARAMETER)},
        entry_point=program if isinstance(program, str) else None,
        source_dir=source if isinstance(source, str) else None,
        output_path=definition["OutputDataConfig"].get("S3OutputPath"),
        max_run=stopping.get("MaxRuntimeInSeconds", 86400),
        input_mode=algorithm.get("TrainingInputMode", "File"),
        environment=definition.get("Environment"),
        session=session,
        metric_definitions=algorithm.get("MetricDefinitions"),
        checkpoint_s3_uri=checkpoint.get("S3Uri"),
        checkpoint_local_path=checkpoint.get("LocalPath"),
        use_spot_instances=bool(definition.get("EnableManagedSpotTraining")),
        max_wait=stopping.get("MaxWaitTimeInSeconds"),
    )


def wait_for_tuning_job(session: Session, job_name: str, *,
                        poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Poll ``DescribeHyperParameterTuningJob`` until the job ends; returns the last
    description."""
    while True:
        job = session.sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=job_name)
        if job["HyperParameterTuningJobStatus"] in TERMINAL_STATUSES:
            return job
        time.sleep(poll_seconds)


# -- analytics -----------------------------------------------------------------------------
class HyperparameterTuningJobAnalytics:
    """Every training job of tuning job ``tuning_job_name`` with its tuned hyperparameters
    and objective value, as ``sagemaker.analytics.HyperparameterTuningJobAnalytics``.

    >>> HyperparameterTuningJobAnalytics("my-tuning-job").dataframe()
    """

    def __init__(self, tuning_job_name: str, session: Session | None = None) -> None:
        self.name = tuning_job_name
        self.session = session or Session()
        self.clear_cache()

    def __repr__(self) -> str:
        return f"HyperparameterTuningJobAnalytics({self.name!r})"

    def clear_cache(self) -> None:
        self._description: dict[str, Any] | None = None
        self._summaries: list[dict[str, Any]] | None = None
        self._dataframe: pandas.DataFrame | None = None

    def description(self, force_refresh: bool = False) -> dict[str, Any]:
        """``DescribeHyperParameterTuningJob`` of the tuning job (cached)."""
        if force_refresh:
            self.clear_cache()
        if self._description is None:
            self._description = self.session.sagemaker.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=self.name)
        return self._description

    @property
    def tuning_ranges(self) -> dict[str, dict[str, Any]]:
        """Each tuned hyperparameter's ``ParameterRanges`` entry, by name."""
        ranges = self.description()["HyperParameterTuningJobConfig"].get("ParameterRanges")
        return {entry["Name"]: entry for entries in (ranges or {}).values()
                for entry in entries or []}

    def training_job_summaries(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        """Every page of ``ListTrainingJobsForHyperParameterTuningJob`` (cached)."""
        if force_refresh:
            self.clear_cache()
        if self._summaries is None:
            paginator = self.session.sagemaker.get_paginator(
                "list_training_jobs_for_hyper_parameter_tuning_job")
            self._summaries = [
                summary for page in paginator.paginate(HyperParameterTuningJobName=self.name)
                for summary in page["TrainingJobSummaries"]]
        return self._summaries

    def dataframe(self, force_refresh: bool = False) -> pandas.DataFrame:
        """One row per training job: the tuned hyperparameters (numbers as floats), then
        ``ANALYTICS_COLUMNS``; fetched once and cached unless ``force_refresh``."""
        if self._dataframe is None or force_refresh:
            self._dataframe = self._fetch()
        return self._dataframe

    def export_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`dataframe` to ``path`` as CSV with a header row and no index."""
        self.dataframe().to_csv(path, index=False)

    def _fetch(self) -> pandas.DataFrame:
        import pandas

        summaries = self.training_job_summaries(force_refresh=True)
        names = list(self.tuning_ranges)
        rows = []
        for summary in summaries:
            row: dict[str, Any] = {}
            for key, value in summary.get("TunedHyperParameters", {}).items():
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    row[key] = _decode(value)
                if key not in names:
                    names.append(key)
            start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
            row.update({
                "TrainingJobName": summary["TrainingJobName"],
                "TrainingJobStatus": summary["TrainingJobStatus"],
                "FinalObjectiveValue": (summary.get(
                    "FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value"),
                "TrainingStartTime": start,
                "TrainingEndTime": end,
                "TrainingElapsedTimeSeconds": ((end - start).total_seconds()
                                               if start and end else None),
            })
            rows.append(row)
        return pandas.DataFrame(rows, columns=[*names, *ANALYTICS_COLUMNS])


__all__ = ["CategoricalParameter", "ContinuousParameter", "HyperparameterTuner",
           "HyperparameterTuningJobAnalytics", "IntegerParameter", "TuningJobFailedError",
           "WarmStartConfig", "WarmStartTypes", "tuning_job_name_from_base",
           "wait_for_tuning_job"]
