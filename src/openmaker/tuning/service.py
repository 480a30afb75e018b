"""The hyperparameter-tuning operations: CreateHyperParameterTuningJob,
DescribeHyperParameterTuningJob, StopHyperParameterTuningJob and
ListTrainingJobsForHyperParameterTuningJob (``ListHyperParameterTuningJobs`` is served by
the generic List handler over the stored records).

A request is checked completely before anything is stored: its ranges
(:mod:`openmaker.tuning.search`), its strategy, limits and warm-start parents, and each
training job definition as the CreateTrainingJob request it will become (hyperparameters
of built-in algorithms are tried at each end of every range). The search itself runs in a
:class:`~openmaker.tuning.tuner.TuningJobRunner` thread of the server; its training jobs
are ordinary training jobs whose ``TuningJobArn`` names the tuning job.

The record keeps the names of its training jobs (``TrainingJobs``, not part of any output
shape); with their records and metric histories that is all the state a tuner needs, so a
server that restarts resumes every tuning job left ``InProgress``
(:func:`resume_tuning_jobs`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
from typing import Any

from openmaker.algorithms import find_algorithm
from openmaker.algorithms.base import TUNING_OBJECTIVE
from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.jobs import jobs_left_running, mark_stopping
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.training.images import training_program
from openmaker.training.service import check_training_job_request
from openmaker.tuning.search import (
    MAX_HYPERPARAMETERS,
    TunedParameter,
    check_grid,
    parse_ranges,
)
from openmaker.tuning.tuner import (
    RESOURCE_TYPE,
    TRAINING_JOB_TYPE,
    Definition,
    TuningJobRunner,
    definitions_of,
    hyperband_resources,
    now,
    resource_config,
    training_job_summary,
    training_request,
)

DEFAULT_LIST_MAX_RESULTS = 10
TERMINAL = ("Completed", "Failed", "Stopped")
CONFIG = "HyperParameterTuningJobConfig"

_runners: dict[str, TuningJobRunner] = {}
_runners_lock = threading.Lock()
_resumed: set[int] = set()


def _not_found(name: str) -> errors.AwsError:
    return errors.ResourceNotFound(f"Amazon SageMaker can't find a tuning job named {name}.")


def _get(platform: Platform, name: str) -> dict:
    try:
        return platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(name) from None


# -- checks ---------------------------------------------------------------------------------
def _objective(config: dict, definition: dict, field: str, several: bool) -> dict:
    objective = definition.get("TuningObjective") if several else None
    objective = objective or config.get("HyperParameterTuningJobObjective")
    if not objective:
        where = f"{field}.TuningObjective" if several else \
            f"{CONFIG}.HyperParameterTuningJobObjective"
        raise errors.ValidationException(
            f"{where} is required: the metric to tune and whether to Maximize or Minimize it.")
    return objective


def _metric_names(definition: dict) -> tuple[list[str], str]:
    """The metrics a definition's jobs emit, and who defines them (for messages)."""
    specification = definition["AlgorithmSpecification"]
    given = specification.get("MetricDefinitions")
    program = training_program(specification, definition.get("StaticHyperParameters") or {})
    if program.built_in and not given:
        algorithm = find_algorithm(program.algorithm)
        return [d["Name"] for d in algorithm.metric_definitions], f"the {algorithm.name} algorithm"
    return [d["Name"] for d in given or []], "AlgorithmSpecification.MetricDefinitions"


def _check_objective(objective: dict, definition: dict, field: str) -> None:
    names, source = _metric_names(definition)
    metric = objective["MetricName"]
    if metric not in names:
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names \
            else "none"
        raise errors.ValidationException(
            f"{field}.MetricName: {metric!r} is not a metric emitted by {source}; the tuning "
            f"objective must be one of its metrics ({listed}).")


def _check_hyperparameters(definition: dict, parameters: list[TunedParameter], field: str,
                           ) -> None:
    static = definition.get("StaticHyperParameters") or {}
    for parameter in parameters:
        if parameter.name in static:
            raise errors.ValidationException(
                f"{parameter.field}.Name: hyperparameter {parameter.name!r} is tuned and also "
                f"set in {field}.StaticHyperParameters; remove one of the two.")
    total = len(static) + len(parameters) + (TUNING_OBJECTIVE not in static)
    if total > MAX_HYPERPARAMETERS:
        raise errors.ValidationException(
            f"{field}: {total} hyperparameters (static, tuned and {TUNING_OBJECTIVE}); at most "
            f"{MAX_HYPERPARAMETERS} are allowed.")
    program = training_program(definition["AlgorithmSpecification"], static)
    if not program.built_in:
        return
    algorithm = find_algorithm(program.algorithm)
    base = {**static, **{p.name: p.hyperparameter(_lowest(p)) for p in parameters}}
    try:
        algorithm.validate_hyperparameters(base)
    except errors.ValidationException as exc:
        named = re.match(r"HyperParameters\.([^:\s]+)", exc.message)
        if named is None or named.group(1) in static:
            raise errors.ValidationException(
                f"{field}.StaticHyperParameters: {exc.message}") from None
    for parameter in parameters:
        candidates = parameter.values if parameter.kind == "Categorical" else \
            [parameter.hyperparameter(v) for v in _ends(parameter)]
        for value in candidates:
            try:
                algorithm.validate_hyperparameters({**base, parameter.name: value})
            except errors.ValidationException as exc:
                raise errors.ValidationException(f"{parameter.field}: {exc.message}") from None


def _ends(parameter: TunedParameter) -> list[Any]:
    distribution = parameter.distribution()
    return [distribution.low, distribution.high]  # type: ignore[attr-defined]


def _lowest(parameter: TunedParameter) -> Any:
    return parameter.values[0] if parameter.kind == "Categorical" else _ends(parameter)[0]


def _check_definition(ctx: RequestContext, definition: dict, parameters: list[TunedParameter],
                      objective: dict, field: str) -> None:
    if not (definition.get("ResourceConfig") or
            definition.get("HyperParameterTuningResourceConfig")):
        raise errors.ValidationException(
            f"{field}: ResourceConfig or HyperParameterTuningResourceConfig is required.")
    _check_hyperparameters(definition, parameters, field)
    metric_field = f"{field}.TuningObjective" if definition.get("TuningObjective") else \
        f"{CONFIG}.HyperParameterTuningJobObjective"
    _check_objective(objective, definition, metric_field)
    static = definition.get("StaticHyperParameters") or {}
    sample = {**static, **{p.name: p.hyperparameter(_lowest(p)) for p in parameters},
              TUNING_OBJECTIVE: objective["MetricName"]}
    request = {"TrainingJobName": "tuning-check", **training_request(definition, sample)}
    try:
        check_training_job_request(ctx, request)
    except errors.ValidationException as exc:
        raise errors.ValidationException(f"{field}: {exc.message}") from None


def _as_described(request: dict, objective: dict) -> dict:
    """A definition as DescribeHyperParameterTuningJob shows it (and the SageMaker SDK's
    ``HyperparameterTuner.attach`` reads it): with the injected
    ``_tuning_objective_metric``, a built-in's metric definitions, and the
    ``ResourceConfig`` its jobs run with."""
    definition = copy.deepcopy(request)
    definition["StaticHyperParameters"] = {**(definition.get("StaticHyperParameters") or {}),
                                           TUNING_OBJECTIVE: objective["MetricName"]}
    specification = definition["AlgorithmSpecification"]
    if not specification.get("MetricDefinitions"):
        program = training_program(specification, definition["StaticHyperParameters"])
        specification["MetricDefinitions"] = \
            find_algorithm(program.algorithm).metric_definitions if program.built_in else []
    if not definition.get("ResourceConfig"):
        definition["ResourceConfig"] = resource_config(definition)
    return definition


def _check_limits(config: dict, grid_size: int | None) -> None:
    limits = config["ResourceLimits"]
    strategy = config["Strategy"]
    maximum = limits.get("MaxNumberOfTrainingJobs")
    if maximum is None and strategy != "Grid":
        raise errors.ValidationException(
            f"{CONFIG}.ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} "
            "strategy (it is optional only for Grid, where it defaults to the number of "
            "combinations).")
    if grid_size is not None and maximum is not None and maximum > grid_size:
        raise errors.ValidationException(
            f"{CONFIG}.ResourceLimits.MaxNumberOfTrainingJobs ({maximum}) is more than the "
            f"{grid_size} combinations of the grid; give at most {grid_size} or leave it out.")


def _check_strategy(config: dict, definitions: list[Definition]) -> None:
    strategy = config["Strategy"]
    stopping = config.get("TrainingJobEarlyStoppingType", "Off")
    if strategy == "Hyperband":
        if stopping != "Off":
            raise errors.ValidationException(
                f"{CONFIG}.TrainingJobEarlyStoppingType must be Off with the Hyperband "
                "strategy, which stops training jobs by its own brackets.")
        hyperband_resources(config, definitions)  # raises when MaxResource cannot be found
    elif config.get("StrategyConfig", {}).get("HyperbandStrategyConfig"):
        raise errors.ValidationException(
            f"{CONFIG}.StrategyConfig.HyperbandStrategyConfig is only valid with the "
            f"Hyperband strategy, not {strategy}.")
    if strategy == "Grid" and len(definitions) > 1:
        raise errors.ValidationException(
            f"{CONFIG}.Strategy: Grid search over several TrainingJobDefinitions is not "
            "supported; use one TrainingJobDefinition or another strategy.")
    criteria = config.get("TuningJobCompletionCriteria") or {}
    if strategy in ("Grid", "Hyperband") and criteria.get("ConvergenceDetected"):
        raise errors.ValidationException(
            f"{CONFIG}.TuningJobCompletionCriteria.ConvergenceDetected is only valid with "
            f"the Bayesian and Random strategies, not {strategy}.")


def _check_warm_start(ctx: RequestContext, params: dict, definitions: list[Definition]) -> None:
    warm = params.get("WarmStartConfig")
    if not warm:
        return
    field = "WarmStartConfig.ParentHyperParameterTuningJobs"
    direction = definitions[0].objective["Type"]
    for index, parent in enumerate(warm["ParentHyperParameterTuningJobs"], start=1):
        name = parent.get("HyperParameterTuningJobName")
        if not name:
            raise errors.ValidationException(
                f"{field}.{index}.HyperParameterTuningJobName is required.")
        try:
            record = ctx.platform.resources.get(RESOURCE_TYPE, name).record
        except ResourceNotFoundError:
            raise errors.ResourceNotFound(
                f"{field}.{index}: the parent tuning job {name} does not exist.") from None
        if record["HyperParameterTuningJobStatus"] not in TERMINAL:
            raise errors.ValidationException(
                f"{field}.{index}: the parent tuning job {name} is "
                f"{record['HyperParameterTuningJobStatus']}; parents must have ended "
                "(Completed, Stopped or Failed).")
        parents = definitions_of(record)
        if parents[0].objective["Type"] != direction or \
                {p.objective["MetricName"] for p in parents} != \
                {d.objective["MetricName"] for d in definitions}:
            raise errors.ValidationException(
                f"{field}.{index}: the parent tuning job {name} tunes "
                f"{parents[0].objective['Type']} {parents[0].objective['MetricName']}; a warm "
                "start needs the same objective metric and type.")
        if warm["WarmStartType"] == "IdenticalDataAndAlgorithm":
            for mine, theirs in zip(definitions, parents, strict=False):
                if _algorithm_and_data(mine.request) != _algorithm_and_data(theirs.request):
                    raise errors.ValidationException(
                        f"{field}.{index}: WarmStartType IdenticalDataAndAlgorithm needs the "
                        f"same training image and input data as the parent tuning job {name}; "
                        "use TransferLearning when they differ.")


def _algorithm_and_data(definition: dict) -> tuple:
    specification = definition["AlgorithmSpecification"]
    image = specification.get("TrainingImage") or specification.get("AlgorithmName")
    data = sorted(json.dumps(channel, sort_keys=True)
                  for channel in definition.get("InputDataConfig") or [])
    return image, data


# -- operations -----------------------------------------------------------------------------
def create_hyper_parameter_tuning_job(ctx: RequestContext, params: dict) -> dict:
    """Check the request, store the tuning job ``InProgress`` and start its tuner."""
    resume_tuning_jobs(ctx.platform)
    name = params["HyperParameterTuningJobName"]
    if params.get("Autotune"):
        raise errors.ValidationException(
            "Autotune is not supported by openmaker; give the strategy, ranges and limits.")
    single, several = params.get("TrainingJobDefinition"), params.get("TrainingJobDefinitions")
    if bool(single) == bool(several):
        raise errors.ValidationException(
            "Give exactly one of TrainingJobDefinition and TrainingJobDefinitions.")
    config = copy.deepcopy(params[CONFIG])
    config.setdefault("TrainingJobEarlyStoppingType", "Off")
    requests = several or [single]
    field = "TrainingJobDefinitions" if several else "TrainingJobDefinition"
    if several:
        names = [d.get("DefinitionName") for d in several]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise errors.ValidationException(
                "TrainingJobDefinitions: each definition needs a DefinitionName, distinct "
                "from the others.")
    definitions = []
    grid_size = None
    for index, request in enumerate(requests):
        where = f"{field}.{index + 1}" if several else field
        ranges_field = f"{where}.HyperParameterRanges" if several else f"{CONFIG}.ParameterRanges"
        ranges = request.get("HyperParameterRanges") if several else config.get("ParameterRanges")
        parameters = parse_ranges(ranges, ranges_field)
        if config["Strategy"] == "Grid":
            grid_size = check_grid(parameters, ranges_field)
        objective = _objective(config, request, where, bool(several))
        _check_definition(ctx, request, parameters, objective, where)
        definitions.append(Definition(request.get("DefinitionName"), request, parameters,
                                      objective))
    if len({d.objective["Type"] for d in definitions}) > 1:
        raise errors.ValidationException(
            "TrainingJobDefinitions: every TuningObjective must have the same Type (Maximize "
            "or Minimize), so that their training jobs can be compared.")
    _check_strategy(config, definitions)
    _check_limits(config, grid_size)
    _check_warm_start(ctx, params, definitions)
    store = ctx.platform.resources
    arn = make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)
    in_use = errors.ResourceInUse(f"A tuning job named {name} already exists ({arn}).")
    if store.exists(RESOURCE_TYPE, name):
        raise in_use
    created = now()
    record: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": arn,
        CONFIG: config,
        "HyperParameterTuningJobStatus": "InProgress",
        "CreationTime": created,
        "LastModifiedTime": created,
        "TrainingJobStatusCounters": {k: 0 for k in (
            "Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped")},
        "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
        "ConsumedResources": {"RuntimeInSeconds": 0},
        "Strategy": config["Strategy"],  # the List summary shows it
        "ResourceLimits": config["ResourceLimits"],
        "TrainingJobs": [],
        "CallerAccessKeyId": ctx.access_key_id,
    }
    stored = [_as_described(request, d.objective) for request, d in
              zip(requests, definitions, strict=True)]
    if several:
        record["TrainingJobDefinitions"] = stored
    else:
        record["TrainingJobDefinition"] = stored[0]
    if params.get("WarmStartConfig"):
        record["WarmStartConfig"] = copy.deepcopy(params["WarmStartConfig"])
    store.create(RESOURCE_TYPE, name, record, status="InProgress", tags=params.get("Tags"),
                 arn=arn, creation_time=created, conflict_error=in_use)
    _start_runner(ctx.platform, name)
    return {"HyperParameterTuningJobArn": arn}


def _start_runner(platform: Platform, name: str) -> None:
    runner = TuningJobRunner(platform, name, on_done=_forget)
    with _runners_lock:
        _runners[name.lower()] = runner
    runner.start()


def _forget(name: str) -> None:
    with _runners_lock:
        _runners.pop(name.lower(), None)


def describe_hyper_parameter_tuning_job(ctx: RequestContext, params: dict) -> dict:
    resume_tuning_jobs(ctx.platform)
    record = _get(ctx.platform, params["HyperParameterTuningJobName"])
    if record["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"):
        elapsed = (now() - record["CreationTime"]).total_seconds()
        record["ConsumedResources"] = {"RuntimeInSeconds": int(elapsed)}
    return record


def stop_hyper_parameter_tuning_job(ctx: RequestContext, params: dict) -> dict:
    """Move the tuning job to ``Stopping``; its tuner stops the running training jobs and
    ends ``Stopped``."""
    resume_tuning_jobs(ctx.platform)
    name = params["HyperParameterTuningJobName"]
    mark_stopping(ctx.platform, RESOURCE_TYPE, name,
                  status_field="HyperParameterTuningJobStatus", noun="hyperparameter tuning job",
                  not_found=lambda: _not_found(name))
    with _runners_lock:
        runner = _runners.get(name.lower())
    if runner is not None:
        runner.request_stop()
    return {}


def list_training_jobs_for_hyper_parameter_tuning_job(ctx: RequestContext, params: dict,
                                                      ) -> dict:
    """The tuning job's training jobs as ``HyperParameterTrainingJobSummary`` items, filtered
    by ``StatusEquals`` and sorted by ``SortBy`` (default Name) in ``SortOrder`` (default
    Ascending); sorting by FinalObjectiveMetricValue leaves out jobs without one."""
    resume_tuning_jobs(ctx.platform)
    name = params["HyperParameterTuningJobName"]
    record = _get(ctx.platform, name)
    definitions = definitions_of(record)
    summaries = []
    for entry in record.get("TrainingJobs", []):
        try:
            child = ctx.platform.resources.get(TRAINING_JOB_TYPE,
                                               entry["TrainingJobName"]).record
        except ResourceNotFoundError:
            continue
        summaries.append(training_job_summary(name, definitions, entry, child))
    status = params.get("StatusEquals")
    if status:
        summaries = [s for s in summaries if s["TrainingJobStatus"] == status]
    sort_by = params.get("SortBy", "Name")
    descending = params.get("SortOrder", "Ascending") == "Descending"
    if sort_by == "FinalObjectiveMetricValue":
        summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        key = lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]  # noqa: E731
    elif sort_by == "Name":
        key = lambda s: s["TrainingJobName"]  # noqa: E731
    elif sort_by == "Status":
        key = lambda s: (s["TrainingJobStatus"], s["TrainingJobName"])  # noqa: E731
    else:
        key = lambda s: (s["CreationTime"], s["TrainingJobName"])  # noqa: E731
    summaries.sort(key=key, reverse=descending)
    query = json.dumps([name.lower(), status, sort_by, descending])
    start = _offset(params.get("NextToken"), query)
    size = params.get("MaxResults", DEFAULT_LIST_MAX_RESULTS)
    result: dict[str, Any] = {"TrainingJobSummaries": summaries[start:start + size]}
    if start + size < len(summaries):
        result["NextToken"] = _token(start + size, query)
    return result


def _token(offset: int, query: str) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(json.dumps([offset, digest]).encode()).decode()


def _offset(token: str | None, query: str) -> int:
    if not token:
        return 0
    try:
        offset, digest = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise errors.ValidationException("NextToken: the pagination token is invalid.") from None
    if digest != hashlib.sha256(query.encode()).hexdigest()[:16] or not isinstance(offset, int):
        raise errors.ValidationException(
            "NextToken: the pagination token belongs to a different query (tuning job, "
            "StatusEquals, SortBy and SortOrder must stay the same).")
    return offset


# -- restart --------------------------------------------------------------------------------
def resume_tuning_jobs(platform: Platform) -> list[str]:
    """Start a tuner for each tuning job an earlier server left ``InProgress`` or
    ``Stopping`` (once per server process); their names."""
    with _runners_lock:
        if id(platform) in _resumed:
            return []
        _resumed.add(id(platform))
    names = jobs_left_running(platform, RESOURCE_TYPE)
    for name in names:
        with _runners_lock:
            running = name.lower() in _runners
        if not running:
            _start_runner(platform, name)
    return names
