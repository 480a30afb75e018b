"""SageMaker's early-stopping rule for ``TrainingJobEarlyStoppingType: Auto``, as an Optuna
pruner (``reference/platform.md`` section 4.3, and the seeds):

After each epoch k of a training job (its k-th objective value), take every previous
training job that reached epoch k, compute the running average of its objective over
epochs 1..k, and take the median of those averages. If the current job's value at epoch k
is worse than that median (higher when minimising, lower when maximising), stop the job.

Optuna's own ``MedianPruner`` compares a trial's *best* value so far with the median of
the other trials' values *at* step k, so it is not the same rule. "Previous" jobs are those
that have ended (completed or stopped); the rule applies once at least
``min_previous_jobs`` of them reached epoch k (**UNVERIFIED**: SageMaker does not document
a minimum; with one previous job a single noisy job would stop every later one).
"""

from __future__ import annotations

import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

DEFAULT_MIN_PREVIOUS_JOBS = 3


def running_average(intermediate: dict[int, float], epoch: int) -> float | None:
    """Mean of the values at epochs 1..``epoch``; None when epoch ``epoch`` was not reached."""
    if epoch not in intermediate:
        return None
    values = [value for step, value in intermediate.items() if step <= epoch]
    return sum(values) / len(values)


class MedianRunningAveragePruner(BasePruner):
    """Stops a trial whose value at epoch k is worse than the median, over the previous
    trials, of their running average up to epoch k."""

    def __init__(self, min_previous_jobs: int = DEFAULT_MIN_PREVIOUS_JOBS) -> None:
        self.min_previous_jobs = min_previous_jobs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        epoch = trial.last_step
        if epoch is None:
            return False
        current = trial.intermediate_values[epoch]
        previous = study.get_trials(deepcopy=False,
                                    states=(TrialState.COMPLETE, TrialState.PRUNED))
        averages = [average for other in previous if other.number != trial.number
                    for average in [running_average(other.intermediate_values, epoch)]
                    if average is not None]
        if len(averages) < self.min_previous_jobs:
            return False
        median = statistics.median(averages)
        if study.direction == StudyDirection.MINIMIZE:
            return current > median
        return current < median
