"""Runs one hyperparameter tuning job: an Optuna study proposes hyperparameters, each
proposal becomes an ordinary training job, and the jobs' objective values (the latest
value of the objective metric) go back to the study.

Strategies map to Optuna samplers: ``Bayesian`` to the Gaussian-process sampler (as
SageMaker's Bayesian search is) after 5 random jobs, ``Random`` to the random sampler,
``Grid`` to every combination in a seeded order, and ``Hyperband`` to TPE with Optuna's
Hyperband pruner over the jobs' epochs.
``TrainingJobEarlyStoppingType: Auto`` uses SageMaker's median rule
(:mod:`openmaker.tuning.early_stopping`). Each objective value a job emits is reported to
its trial as the value of the next epoch; a pruned trial's training job is stopped, ends
``Stopped``, and its last value still counts.

The tuner runs in a thread of the server and hears about its training jobs through the
training runner's listener (metric points and ends), so it reacts as soon as a job ends.
All Optuna calls happen in that thread. The study lives in memory: on a restart the tuner
rebuilds it from the tuning record's ``TrainingJobs`` and those jobs' records and metric
histories, and proposes again the hyperparameters of jobs the restart cut off.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import queue
import secrets
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import Trial, TrialState

from openmaker.algorithms.base import TUNING_OBJECTIVE
from openmaker.core import errors
from openmaker.core.arns import parse_arn
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.training.metrics import MetricPoint, metric_history
from openmaker.training.service import RESTART_REASON, request_stop, start_training_job
from openmaker.tuning.early_stopping import MedianRunningAveragePruner
from openmaker.tuning.search import TunedParameter, grid_combinations, parse_ranges

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

RESOURCE_TYPE = "hyper-parameter-tuning-job"
TRAINING_JOB_TYPE = "training-job"
CONFIG = "HyperParameterTuningJobConfig"
DEFINITION_PARAMETER = "TrainingJobDefinitionName"  # the Optuna parameter choosing one
EPOCH_HYPERPARAMETERS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
HYPERBAND_REDUCTION_FACTOR = 3
NOT_IMPROVING_FRACTION = 0.01  # BestObjectiveNotImproving: under 1 % better is no better
# ConvergenceDetected (UNVERIFIED; SageMaker does not publish its rule): converged when
# the best value has improved by under 0.1 % over the last max(10, 20 % of the limit) jobs.
CONVERGENCE_FRACTION = 0.001
CONVERGENCE_MIN_WINDOW = 10
CONVERGENCE_WINDOW_SHARE = 0.2
# Random jobs before the Gaussian process guides the search (Optuna's default is 10). On
# benchmarks/tuning.py's XGBoost problem, over 20 seeds, the best after 20 jobs had a
# median of 1.309 with 5 and 1.331 with 10, where Random needs 40 jobs for 1.330.
BAYESIAN_RANDOM_JOBS = 5
IDLE_SECONDS = 0.5  # the longest the tuner sleeps without an event
FIRST_HOST = "algo-1"
# Thread-pool sizes a parallel tuning job gives each of its training jobs (see _launch).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Definition:
    """A training job definition: its request, tuned parameters and objective."""

    name: str | None
    request: dict
    parameters: list[TunedParameter]
    objective: dict  # {Type, MetricName}

    @classmethod
    def from_request(cls, record: dict, request: dict, index: int) -> Definition:
        config = record[CONFIG]
        several = bool(record.get("TrainingJobDefinitions"))
        ranges = request.get("HyperParameterRanges") if several else config.get("ParameterRanges")
        field_name = f"TrainingJobDefinitions.{index + 1}.HyperParameterRanges" if several \
            else f"{CONFIG}.ParameterRanges"
        objective = (request.get("TuningObjective") if several else None) or \
            config.get("HyperParameterTuningJobObjective")
        return cls(request.get("DefinitionName"), request, parse_ranges(ranges, field_name),
                   objective)

    def key(self, parameter: TunedParameter, several: bool) -> str:
        """The Optuna parameter name of ``parameter``."""
        return f"{self.name}/{parameter.name}" if several else parameter.name


def definitions_of(record: dict) -> list[Definition]:
    requests = record.get("TrainingJobDefinitions") or [record["TrainingJobDefinition"]]
    return [Definition.from_request(record, request, i) for i, request in enumerate(requests)]


def hyperband_resources(config: dict, definitions: Sequence[Definition]) -> tuple[int, int]:
    """``(MinResource, MaxResource)`` in epochs; MaxResource defaults to a static
    ``epochs``-like hyperparameter. ValidationException when it can be found nowhere."""
    hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    minimum = hyperband.get("MinResource", 1)
    maximum = hyperband.get("MaxResource")
    if maximum is None:
        for definition in definitions:
            static = definition.request.get("StaticHyperParameters") or {}
            for name in EPOCH_HYPERPARAMETERS:
                if name in static:
                    try:
                        maximum = int(static[name])
                    except ValueError:
                        continue
                    break
            if maximum is not None:
                break
    if maximum is None:
        raise errors.ValidationException(
            f"{CONFIG}.StrategyConfig.HyperbandStrategyConfig.MaxResource is required for the "
            "Hyperband strategy when no static hyperparameter (one of "
            f"{', '.join(EPOCH_HYPERPARAMETERS)}) gives the number of epochs.")
    if minimum > maximum:
        raise errors.ValidationException(
            f"{CONFIG}.StrategyConfig.HyperbandStrategyConfig: MinResource ({minimum}) must be "
            f"less than or equal to MaxResource ({maximum}).")
    return minimum, maximum


def training_request(definition: dict, hyperparameters: dict[str, str]) -> dict:
    """The CreateTrainingJob request (less its name) a definition's training job makes."""
    request: dict[str, Any] = {
        key: copy.deepcopy(definition[key])
        for key in ("RoleArn", "InputDataConfig", "VpcConfig", "OutputDataConfig",
                    "StoppingCondition", "EnableNetworkIsolation",
                    "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                    "CheckpointConfig", "RetryStrategy", "Environment")
        if definition.get(key) is not None}
    specification = definition["AlgorithmSpecification"]
    request["AlgorithmSpecification"] = {
        key: copy.deepcopy(specification[key])
        for key in ("TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions")
        if specification.get(key) is not None}
    request["ResourceConfig"] = resource_config(definition)
    request["HyperParameters"] = hyperparameters
    return request


def resource_config(definition: dict) -> dict | None:
    if definition.get("ResourceConfig"):
        return copy.deepcopy(definition["ResourceConfig"])
    tuning = definition.get("HyperParameterTuningResourceConfig")
    if not tuning:
        return None
    configs = tuning.get("InstanceConfigs")
    chosen = configs[0] if configs else tuning  # Prioritized: the first choice is available
    config = {key: chosen[key] for key in ("InstanceType", "InstanceCount", "VolumeSizeInGB")
              if chosen.get(key) is not None}
    config.setdefault("InstanceCount", 1)
    config.setdefault("VolumeSizeInGB", 30)
    if tuning.get("VolumeKmsKeyId"):
        config["VolumeKmsKeyId"] = tuning["VolumeKmsKeyId"]
    return config


# -- summaries ------------------------------------------------------------------------------
def objective_value(child: dict, metric: str) -> float | None:
    for point in child.get("FinalMetricDataList") or []:
        if point["MetricName"] == metric:
            return point["Value"]
    return None


def objective_status(child: dict, value: float | None) -> str:
    status = child["TrainingJobStatus"]
    if status in ("InProgress", "Stopping"):
        return "Pending"
    return "Succeeded" if value is not None and status in ("Completed", "Stopped") else "Failed"


def training_job_summary(tuning_job_name: str, definitions: Sequence[Definition], entry: dict,
                         child: dict) -> dict:
    """``HyperParameterTrainingJobSummary`` of one of the tuning job's training jobs."""
    definition = _definition_named(definitions, entry.get("DefinitionName"))
    metric = definition.objective["MetricName"]
    value = objective_value(child, metric)
    summary: dict[str, Any] = {
        "TrainingJobName": child["TrainingJobName"],
        "TrainingJobArn": child["TrainingJobArn"],
        "TuningJobName": tuning_job_name,
        "CreationTime": child["CreationTime"],
        "TrainingStartTime": child.get("TrainingStartTime"),
        "TrainingEndTime": child.get("TrainingEndTime"),
        "TrainingJobStatus": child["TrainingJobStatus"],
        "TunedHyperParameters": entry["TunedHyperParameters"],
        "FailureReason": child.get("FailureReason"),
        "ObjectiveStatus": objective_status(child, value),
    }
    if definition.name:
        summary["TrainingJobDefinitionName"] = definition.name
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": definition.objective["Type"], "MetricName": metric, "Value": value}
    return {k: v for k, v in summary.items() if v is not None}


def _definition_named(definitions: Sequence[Definition], name: str | None) -> Definition:
    for definition in definitions:
        if definition.name == name:
            return definition
    return definitions[0]


def better(value: float, than: float | None, maximize: bool) -> bool:
    if than is None:
        return True
    return value > than if maximize else value < than


# -- the runner -----------------------------------------------------------------------------
@dataclass
class TrialJob:
    """A training job the tuner started, and its Optuna trial."""

    entry: dict  # the record's TrainingJobs entry
    definition: Definition
    trial: Trial
    epochs: int = 0
    stopping_early: bool = False
    reached_max_resource: bool = False  # Hyperband stopped it at MaxResource epochs
    ended: bool = False


@dataclass
class Tally:
    """What the tuner knows of its finished training jobs."""

    best: tuple[float, dict] | None = None  # (value, summary)
    not_improving: int = 0
    history: list[float] = field(default_factory=list)  # best value after each finished job
    failures: list[str] = field(default_factory=list)
    launched: int = 0  # counted against MaxNumberOfTrainingJobs
    converged_at: datetime | None = None


class TuningJobRunner:
    """Runs one tuning job in a background thread of the server process."""

    def __init__(self, platform: Platform, name: str,
                 on_done: Callable[[str], None] | None = None) -> None:
        self.platform = platform
        self.name = name
        self.on_done = on_done
        self._events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._jobs: dict[str, TrialJob] = {}  # by lower-case training job name
        # (TrainingJobStatusCounters key, ObjectiveStatus) of each finished job, by name
        self._outcomes: dict[str, tuple[str, str]] = {}
        self._tally = Tally()
        self._grid: list[dict[str, str]] | None = None  # the Grid strategy's combinations
        self._max_resource: int | None = None  # Hyperband: epochs after which a job stops
        # set by _tune; defaults so that a tuner failing early can still record its end
        self._entries: list[dict] = []
        self._warm: dict | None = None
        self._stopped_state = TrialState.PRUNED
        self._thread = threading.Thread(target=self._run, name=f"openmaker-tune-{name}",
                                        daemon=True)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> TuningJobRunner:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()
        self._events.put(("stop",))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- the training runner's listener ---------------------------------------------------
    def metric_points(self, job_name: str, points: Sequence[MetricPoint]) -> None:
        self._events.put(("points", job_name.lower(), list(points)))

    def job_ended(self, job_name: str) -> None:
        self._events.put(("ended", job_name.lower()))

    # -- setup ------------------------------------------------------------------------------
    def _load(self) -> dict:
        return self.platform.resources.get(RESOURCE_TYPE, self.name).record

    def _context(self, record: dict) -> RequestContext:
        arn = parse_arn(record["HyperParameterTuningJobArn"])
        return RequestContext(self.platform, region=arn.region, account_id=arn.account_id,
                              request_id=secrets.token_hex(16),
                              access_key_id=record.get("CallerAccessKeyId"))

    def _study(self, record: dict) -> optuna.Study:
        config = record[CONFIG]
        strategy = config["Strategy"]
        seed = config.get("RandomSeed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if strategy == "Bayesian":
                sampler: optuna.samplers.BaseSampler = optuna.samplers.GPSampler(
                    seed=seed, n_startup_trials=BAYESIAN_RANDOM_JOBS)
                # The GP sampler fits its model with torch, imported on its first proposal
                # after the random start-up trials; import it while those run instead.
                threading.Thread(target=_import_torch, name="openmaker-import-torch",
                                 daemon=True).start()
            elif strategy == "Random":
                sampler = optuna.samplers.RandomSampler(seed=seed)
            elif strategy == "Grid":
                # Every Grid trial is enqueued with its combination (see _next_combination);
                # the sampler never has to choose.
                sampler = optuna.samplers.RandomSampler(seed=seed)
                self._grid = grid_combinations(self._definitions[0].parameters, seed)
            else:
                sampler = optuna.samplers.TPESampler(seed=seed)
            if strategy == "Hyperband":
                low, high = hyperband_resources(config, self._definitions)
                self._max_resource = high
                pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
                    min_resource=low, max_resource=high,
                    reduction_factor=HYPERBAND_REDUCTION_FACTOR)
            elif config.get("TrainingJobEarlyStoppingType") == "Auto":
                pruner = MedianRunningAveragePruner()
            else:
                pruner = optuna.pruners.NopPruner()
        # A stopped job's last value is what the sampler learns from it: as a pruned trial
        # (TPE ranks those by their intermediate values), or, for the GP sampler, which
        # learns from complete trials only, as a complete one: a pessimistic value for a
        # configuration that was doing badly.
        self._stopped_state = TrialState.COMPLETE if strategy == "Bayesian" \
            else TrialState.PRUNED
        direction = "maximize" if self._maximize else "minimize"
        return optuna.create_study(study_name=record["HyperParameterTuningJobName"],
                                   direction=direction, sampler=sampler, pruner=pruner)

    def _distributions(self, definition: Definition) -> dict[str, BaseDistribution]:
        distributions = {definition.key(p, self._several): p.distribution()
                         for p in definition.parameters}
        if self._several:
            distributions[DEFINITION_PARAMETER] = CategoricalDistribution(
                [d.name for d in self._definitions])
        return distributions

    def _past_trial(self, definition: Definition, tuned: dict[str, str], child: dict,
                    ) -> optuna.trial.FrozenTrial:
        """A finished training job (this tuning job's or a warm-start parent's) as a trial
        of the study: a failed one when it has no objective value to learn from."""
        params: dict[str, Any] = {}
        distributions = self._distributions(definition)
        for parameter in definition.parameters:
            key = definition.key(parameter, self._several)
            value = parameter.internal(tuned[parameter.name]) if parameter.name in tuned \
                else None
            if value is None:
                distributions.pop(key)
            else:
                params[key] = value
        if self._several:
            params[DEFINITION_PARAMETER] = definition.name
        metric = definition.objective["MetricName"]
        value = objective_value(child, metric)
        status = child["TrainingJobStatus"]
        if status == "Failed" or value is None:
            return optuna.trial.create_trial(state=TrialState.FAIL, params=params,
                                             distributions=distributions)
        intermediate = self._epoch_values(child["TrainingJobName"], metric)
        state = TrialState.COMPLETE if status == "Completed" else self._stopped_state
        return optuna.trial.create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params=params, distributions=distributions,
            intermediate_values=intermediate or {1: value})

    def _epoch_values(self, job_name: str, metric: str) -> dict[int, float]:
        points = [p["Value"] for p in metric_history(self.platform, job_name)
                  if p["MetricName"] == metric and p["Host"] == FIRST_HOST]
        return {epoch: value for epoch, value in enumerate(points, start=1)}

    def _warm_start(self, record: dict) -> None:
        warm = record.get("WarmStartConfig")
        if not warm:
            return
        for parent in warm["ParentHyperParameterTuningJobs"]:
            try:
                parent_record = self.platform.resources.get(
                    RESOURCE_TYPE, parent["HyperParameterTuningJobName"]).record
            except ResourceNotFoundError:
                continue
            parent_definitions = definitions_of(parent_record)
            for entry in parent_record.get("TrainingJobs", []):
                child = self._child(entry["TrainingJobName"])
                if child is None:
                    continue
                theirs = _definition_named(parent_definitions, entry.get("DefinitionName"))
                mine = _definition_named(self._definitions, theirs.name)
                trial = self._past_trial(mine, entry["TunedHyperParameters"], child)
                if trial.state != TrialState.FAIL:
                    self._study_.add_trial(trial)

    def _resume(self, record: dict) -> None:
        """Rebuild the study from the training jobs an earlier server started; propose
        again the hyperparameters of those it cut off (once: an entry marked
        ``Interrupted`` has been proposed again already)."""
        for entry in record.get("TrainingJobs", []):
            if entry.get("Interrupted"):
                continue
            child = self._child(entry["TrainingJobName"])
            definition = _definition_named(self._definitions, entry.get("DefinitionName"))
            if child is not None and child["TrainingJobStatus"] == "Failed" and \
                    child.get("FailureReason") == RESTART_REASON:
                entry["Interrupted"] = True
                if not self._stop.is_set() and self._grid is None:
                    params = {definition.key(p, self._several):
                              p.internal(entry["TunedHyperParameters"][p.name])
                              for p in definition.parameters}
                    if self._several:
                        params[DEFINITION_PARAMETER] = definition.name
                    self._study_.enqueue_trial(params, skip_if_exists=False)
                continue
            self._tally.launched += 1
            if child is not None:
                self._study_.add_trial(
                    self._past_trial(definition, entry["TunedHyperParameters"], child))
            self._account(entry, child)

    def _child(self, name: str) -> dict | None:
        try:
            return self.platform.resources.get(TRAINING_JOB_TYPE, name).record
        except ResourceNotFoundError:
            return None

    # -- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._tune()
        except Exception as exc:  # any fault must still end the tuning job
            log.exception("tuning job %s failed", self.name)
            self._stop_running()
            self._finish("Failed", f"InternalServerError: {exc}")
        finally:
            if self.on_done is not None:
                self.on_done(self.name)

    def _tune(self) -> None:
        record = self._load()
        if record["HyperParameterTuningJobStatus"] == "Stopping":
            self._stop.set()
        config = record[CONFIG]
        self._definitions = definitions_of(record)
        self._several = len(self._definitions) > 1
        self._maximize = self._definitions[0].objective["Type"] == "Maximize"
        self._study_ = self._study(record)
        self._ctx = self._context(record)
        self._arn = record["HyperParameterTuningJobArn"]
        self._warm = record.get("WarmStartConfig")
        self._entries = list(record.get("TrainingJobs", []))
        self._warm_start(record)
        self._resume({**record, "TrainingJobs": self._entries})
        limits = config["ResourceLimits"]
        self._max_jobs = limits.get("MaxNumberOfTrainingJobs")
        if config["Strategy"] == "Grid":
            grid = math.prod(len(p.values) for p in self._definitions[0].parameters)
            self._max_jobs = min(self._max_jobs or grid, grid)
        self._max_parallel = limits["MaxParallelTrainingJobs"]
        runtime_limit = limits.get("MaxRuntimeInSeconds")
        created = record["CreationTime"]
        self._criteria = config.get("TuningJobCompletionCriteria") or {}
        self._completed_early = False
        self._save()
        out_of_time = False
        while True:
            out_of_time = out_of_time or (runtime_limit is not None and
                                          (now() - created).total_seconds() >= runtime_limit)
            if self._stop.is_set() or out_of_time:
                self._stop_running()
            elif not self._completed_early:
                self._launch_more()
            running = [job for job in self._jobs.values() if not job.ended]
            if not running:
                break
            self._wait_for_events(created, runtime_limit)
            self._save()
        if self._stop.is_set() or out_of_time:
            # Like a training job past MaxRuntimeInSeconds, a tuning job past its own limit
            # ends Stopped (UNVERIFIED: SageMaker does not document the status).
            self._finish("Stopped")
        elif self._tally.launched and len(self._tally.failures) == self._tally.launched:
            self._finish("Failed", "All training jobs failed. Last failure: "
                         + self._tally.failures[-1])
        else:
            self._finish("Completed")

    def _wait_for_events(self, created: datetime, runtime_limit: int | None) -> None:
        timeout = IDLE_SECONDS
        if runtime_limit is not None:
            left = runtime_limit - (now() - created).total_seconds()
            timeout = max(0.0, min(timeout, left))
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "points":
            self._on_points(event[1], event[2])
        elif kind == "ended":
            self._on_ended(event[1])

    def _can_launch(self) -> bool:
        running = sum(not job.ended for job in self._jobs.values())
        if running >= self._max_parallel:
            return False
        if self._max_jobs is not None and self._tally.launched >= self._max_jobs:
            return False
        return self._grid is None or self._next_combination() is not None

    def _next_combination(self) -> dict[str, str] | None:
        """The first grid combination no training job has run (or is running)."""
        assert self._grid is not None
        taken = [entry["TunedHyperParameters"] for entry in self._entries
                 if not entry.get("Interrupted")]
        for combination in self._grid:
            if combination not in taken:
                return combination
        return None

    def _launch_more(self) -> None:
        while self._can_launch() and not self._stop.is_set():
            self._launch()

    def _launch(self) -> None:
        if self._grid is not None:
            self._study_.enqueue_trial(self._next_combination(), skip_if_exists=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self._study_.ask()
            definition = self._definitions[0]
            if self._several:
                chosen = trial.suggest_categorical(DEFINITION_PARAMETER,
                                                   [d.name for d in self._definitions])
                definition = _definition_named(self._definitions, chosen)
            tuned = {p.name: p.hyperparameter(_suggest(trial, definition.key(p, self._several),
                                                       p.distribution()))
                     for p in definition.parameters}
        self._tally.launched += 1
        job_name = (f"{self.name}-{len(self._entries) + 1:03d}-"
                    f"{secrets.token_hex(4)}")
        entry = {"TrainingJobName": job_name, "TunedHyperParameters": tuned}
        if definition.name:
            entry["DefinitionName"] = definition.name
        static = definition.request.get("StaticHyperParameters") or {}
        hyperparameters = {**static, **tuned,
                           TUNING_OBJECTIVE: definition.objective["MetricName"]}
        request = {"TrainingJobName": job_name,
                   **training_request(definition.request, hyperparameters)}
        tags = self._tags()
        if tags:
            request["Tags"] = tags
        if self._max_parallel > 1:
            # The parallel jobs share this machine's cores, as they would not on SageMaker
            # (one instance each). Each gets its share for its thread pools: OpenMP threads
            # that outnumber the cores spin-wait and take them from the other jobs (two
            # concurrent built-in XGBoost jobs took 2-6x as long as one, with one thread
            # each as long as one).
            share = str(max(1, (os.cpu_count() or 1) // self._max_parallel))
            environment = request.setdefault("Environment", {})
            for variable in THREAD_VARIABLES:
                environment.setdefault(variable, share)
        job = TrialJob(entry, definition, trial)
        self._entries.append(entry)
        self._jobs[job_name.lower()] = job
        self._save()  # the entry is stored before the job exists, so a restart finds it
        try:
            start_training_job(self._ctx, request, tuning_job_arn=self._arn, listener=self)
        except errors.AwsError as exc:
            job.ended = True
            entry["FailureReason"] = f"ClientError: {exc.message}"
            self._study_.tell(trial, state=TrialState.FAIL)
            self._account(entry, None)

    def _tags(self) -> list[dict]:
        tags, token = self.platform.resources.list_tags(self._arn)
        found = list(tags)
        while token:
            tags, token = self.platform.resources.list_tags(self._arn, next_token=token)
            found.extend(tags)
        return [{"Key": t["Key"], "Value": t["Value"]} for t in found]

    def _on_points(self, job_name: str, points: Sequence[MetricPoint]) -> None:
        job = self._jobs.get(job_name)
        if job is None or job.ended:
            return
        metric = job.definition.objective["MetricName"]
        for point in points:
            if point.metric_name != metric or point.host != FIRST_HOST:
                continue
            job.epochs += 1
            job.trial.report(point.value, job.epochs)
            if job.stopping_early:
                continue
            if self._max_resource is not None and job.epochs >= self._max_resource:
                job.stopping_early = job.reached_max_resource = True
                self._stop_job(job, "Stopped by the hyperparameter tuning job: it reached the "
                               f"Hyperband MaxResource of {self._max_resource} epochs")
            elif job.trial.should_prune():
                job.stopping_early = True
                self._stop_job(job, "Stopped early by the hyperparameter tuning job: its "
                               f"{metric} at epoch {job.epochs} was worse than its "
                               "early-stopping rule allows")

    def _stop_job(self, job: TrialJob, message: str | None = None) -> None:
        try:
            request_stop(self.platform, job.entry["TrainingJobName"], message)
        except errors.ValidationException:
            pass  # it ended meanwhile; its end event is on its way

    def _stop_running(self) -> None:
        for job in self._jobs.values():
            if not job.ended and not job.stopping_early:
                job.stopping_early = True  # not early, but its trial ends pruned all the same
                self._stop_job(job)

    def _on_ended(self, job_name: str) -> None:
        job = self._jobs.get(job_name)
        if job is None or job.ended:
            return
        job.ended = True
        child = self._child(job.entry["TrainingJobName"])
        if child is None:
            self._study_.tell(job.trial, state=TrialState.FAIL)
            self._account(job.entry, None)
            return
        value = objective_value(child, job.definition.objective["MetricName"])
        status = child["TrainingJobStatus"]
        if value is not None and (status == "Completed" or job.reached_max_resource):
            self._study_.tell(job.trial, value)
        elif status == "Stopped" and value is not None:
            self._study_.tell(job.trial, value if self._stopped_state == TrialState.COMPLETE
                              else None, state=self._stopped_state)
        else:
            self._study_.tell(job.trial, state=TrialState.FAIL)
        self._account(job.entry, child)
        self._check_completion()

    def _account(self, entry: dict, child: dict | None) -> None:
        """Fold one finished training job into the tally and the counters."""
        key = entry["TrainingJobName"].lower()
        if child is None:
            self._outcomes[key] = ("NonRetryableError", "Failed")
            self._tally.failures.append(entry.get("FailureReason") or "the job was not created")
            return
        definition = _definition_named(self._definitions, entry.get("DefinitionName"))
        value = objective_value(child, definition.objective["MetricName"])
        status = child["TrainingJobStatus"]
        self._outcomes[key] = ("NonRetryableError" if status == "Failed" else status,
                               objective_status(child, value))
        if status == "Failed" or value is None:
            self._tally.failures.append(child.get("FailureReason")
                                        or "the job emitted no objective metric value")
            return
        best = self._tally.best
        summary = training_job_summary(self.name, self._definitions, entry, child)
        if best is None or better(value, best[0], self._maximize):
            improved = best is None or \
                abs(value - best[0]) >= NOT_IMPROVING_FRACTION * abs(best[0])
            self._tally.best = (value, summary)
            self._tally.not_improving = 0 if improved else self._tally.not_improving + 1
        else:
            self._tally.not_improving += 1
        self._tally.history.append(self._tally.best[0])  # type: ignore[index]

    def _check_completion(self) -> None:
        criteria = self._criteria
        best = self._tally.best
        target = criteria.get("TargetObjectiveMetricValue")
        if target is not None and best is not None and \
                (best[0] >= target if self._maximize else best[0] <= target):
            self._completed_early = True
        patience = (criteria.get("BestObjectiveNotImproving") or {}).get(
            "MaxNumberOfTrainingJobsNotImproving")
        if patience is not None and self._tally.not_improving >= patience:
            self._completed_early = True
        convergence = (criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence")
        if convergence == "Enabled" and self._converged():
            self._tally.converged_at = self._tally.converged_at or now()
            self._completed_early = True

    def _converged(self) -> bool:
        history = self._tally.history
        window = max(CONVERGENCE_MIN_WINDOW,
                     math.ceil(CONVERGENCE_WINDOW_SHARE * (self._max_jobs or 0)))
        if len(history) <= window:
            return False
        before, latest = history[-window - 1], history[-1]
        return abs(latest - before) < CONVERGENCE_FRACTION * max(abs(before), 1e-12)

    # -- the record -------------------------------------------------------------------------
    def _counters(self) -> tuple[dict, dict]:
        training = dict.fromkeys(("Completed", "InProgress", "RetryableError",
                                  "NonRetryableError", "Stopped"), 0)
        objective = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
        for entry in self._entries:
            key = entry["TrainingJobName"].lower()
            if entry.get("Interrupted"):
                outcome = ("RetryableError", "Failed")
            else:
                outcome = self._outcomes.get(key, ("InProgress", "Pending"))
            training[outcome[0]] += 1
            objective[outcome[1]] += 1
        return training, objective

    def _overall_best(self) -> dict | None:
        best = self._tally.best
        candidates = [(best[0], best[1])] if best else []
        for parent in self._warm["ParentHyperParameterTuningJobs"]:
            try:
                parent_record = self.platform.resources.get(
                    RESOURCE_TYPE, parent["HyperParameterTuningJobName"]).record
            except ResourceNotFoundError:
                continue
            summary = parent_record.get("OverallBestTrainingJob") or \
                parent_record.get("BestTrainingJob")
            if summary and "FinalHyperParameterTuningJobObjectiveMetric" in summary:
                candidates.append(
                    (summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], summary))
        chosen: tuple[float, dict] | None = None
        for value, summary in candidates:
            if chosen is None or better(value, chosen[0], self._maximize):
                chosen = (value, summary)
        return chosen[1] if chosen else None

    def _save(self, status: str | None = None, failure: str | None = None) -> None:
        training, objective = self._counters()
        entries = [dict(entry) for entry in self._entries]
        overall = self._overall_best() if self._warm else None

        def change(record: dict) -> tuple[dict, str]:
            moment = now()
            record["TrainingJobs"] = entries
            record["TrainingJobStatusCounters"] = training
            record["ObjectiveStatusCounters"] = objective
            if self._tally.best is not None:
                record["BestTrainingJob"] = self._tally.best[1]
            if overall is not None:
                record["OverallBestTrainingJob"] = overall
            details: dict[str, Any] = {
                "NumberOfTrainingJobsObjectiveNotImproving": self._tally.not_improving}
            if self._tally.converged_at is not None:
                details["ConvergenceDetectedTime"] = self._tally.converged_at
            record["TuningJobCompletionDetails"] = details
            end = moment if status else None
            record["ConsumedResources"] = {"RuntimeInSeconds": int(
                ((end or moment) - record["CreationTime"]).total_seconds())}
            record["LastModifiedTime"] = moment
            if status:
                record["HyperParameterTuningJobStatus"] = status
                record["HyperParameterTuningEndTime"] = moment
                if failure:
                    record["FailureReason"] = failure[:1024]
            return record, record["HyperParameterTuningJobStatus"]

        self.platform.resources.update(RESOURCE_TYPE, self.name, mutate=change)

    def _finish(self, status: str, failure: str | None = None) -> None:
        try:
            self._save(status, failure)
        except Exception:
            log.exception("tuning job %s: could not record its end", self.name)


def _import_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:  # the sampler says so itself when it needs it
        pass


def _suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)  # type: ignore[arg-type]
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high,
                                 log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high,  # type: ignore
                               log=distribution.log)  # type: ignore[attr-defined]
