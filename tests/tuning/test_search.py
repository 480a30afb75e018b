"""The search space and the early-stopping rule, without a server."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from openmaker.tuning.early_stopping import MedianRunningAveragePruner, running_average
from openmaker.tuning.search import grid_combinations, parse_ranges

FIELD = "HyperParameterTuningJobConfig.ParameterRanges"


def sampled(ranges: dict, trials: int = 300) -> dict[str, list[str]]:
    parameters = parse_ranges(ranges, FIELD)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values: dict[str, list[str]] = {p.name: [] for p in parameters}
    for _ in range(trials):
        trial = study.ask()
        for p in parameters:
            distribution = p.distribution()
            internal = trial._suggest(p.name, distribution)
            values[p.name].append(p.hyperparameter(internal))
        study.tell(trial, 0.0)
    return values


def test_scaling_types_spread_values_as_sagemaker_describes():
    values = sampled({
        "ContinuousParameterRanges": [
            {"Name": "linear", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"},
            {"Name": "log", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"},
            {"Name": "reverse", "MinValue": "0.9", "MaxValue": "0.9999",
             "ScalingType": "ReverseLogarithmic"},
            {"Name": "auto", "MinValue": "0.001", "MaxValue": "10"}],
        "IntegerParameterRanges": [
            {"Name": "depth", "MinValue": "1", "MaxValue": "1000", "ScalingType": "Logarithmic"}],
    })
    linear = [float(v) for v in values["linear"]]
    log = [float(v) for v in values["log"]]
    reverse = [float(v) for v in values["reverse"]]
    depth = [int(v) for v in values["depth"]]
    assert all(0 <= v <= 1 for v in linear) and 0.4 < sum(linear) / len(linear) < 0.6
    assert all(1e-4 <= v <= 1 for v in log)
    # log-uniform: each decade holds about a quarter of the values
    assert 0.15 < sum(v < 1e-3 for v in log) / len(log) < 0.35
    assert all(0.9 <= v <= 0.9999 for v in reverse)
    # reverse-log: 1 - v is log-uniform, so about a third lie within 0.001 of 1
    assert 0.2 < sum(v > 0.999 for v in reverse) / len(reverse) < 0.45
    assert 0.15 < sum(v < 10 for v in depth) / len(depth) < 0.5
    auto = [float(v) for v in values["auto"]]
    assert sum(v < 0.01 for v in auto) > 30  # Auto chose log scaling for four decades


def test_values_round_trip_and_out_of_range_values_are_refused():
    [integer, continuous, reverse, categorical] = parse_ranges({
        "ContinuousParameterRanges": [
            {"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5"},
            {"Name": "momentum", "MinValue": "0.5", "MaxValue": "0.99",
             "ScalingType": "ReverseLogarithmic"}],
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "8"}],
        "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
    }, FIELD)
    assert continuous.hyperparameter(continuous.internal("0.25")) == "0.25"
    assert math.isclose(float(reverse.hyperparameter(reverse.internal("0.9"))), 0.9)
    assert integer.internal("5") == 5 and integer.internal("5.5") is None
    assert integer.internal("9") is None and continuous.internal("0.6") is None
    assert categorical.internal("dart") == "dart" and categorical.internal("gblinear") is None
    assert integer.distribution().low == 2


def test_grid_combinations_cover_the_product_in_a_seeded_order():
    parameters = parse_ranges({"CategoricalParameterRanges": [
        {"Name": "a", "Values": ["1", "2", "3"]}, {"Name": "b", "Values": ["x", "y"]}]}, FIELD)
    first = grid_combinations(parameters, seed=1)
    assert len(first) == 6 and len({tuple(c.items()) for c in first}) == 6
    assert first == grid_combinations(parameters, seed=1)
    assert first != grid_combinations(parameters, seed=2)


def _finished(study: optuna.Study, curve: list[float]) -> None:
    study.add_trial(create_trial(value=curve[-1], intermediate_values=dict(
        enumerate(curve, start=1)), params={}, distributions={}))


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_median_rule_compares_with_running_averages_up_to_the_same_epoch(direction):
    sign = 1 if direction == "minimize" else -1
    study = optuna.create_study(direction=direction, pruner=MedianRunningAveragePruner())
    # running averages at epoch 2: (10+2)/2=6, (8+6)/2=7, (9+9)/2=9 -> median 7; the values
    # at epoch 2 are 2, 6, 9 (median 6): a job at 6.5 survives the running-average rule but
    # a rule that used the values at epoch 2 would stop it
    for curve in ([10, 2, 1], [8, 6, 5], [9, 9, 9]):
        _finished(study, [sign * v for v in curve])
    trial = study.ask()
    trial.report(sign * 9.5, 1)  # averages at epoch 1: 10, 8, 9 -> median 9: worse
    assert trial.should_prune()
    trial = study.ask()
    trial.report(sign * 8.5, 1)
    assert not trial.should_prune()
    trial.report(sign * 6.5, 2)
    assert not trial.should_prune()  # better than the median running average, 7
    trial = study.ask()
    trial.report(sign * 8.5, 1)
    trial.report(sign * 7.5, 2)
    assert trial.should_prune()


def test_the_median_rule_waits_for_three_previous_jobs_at_that_epoch():
    study = optuna.create_study(pruner=MedianRunningAveragePruner())
    _finished(study, [1, 1, 1])
    _finished(study, [1, 1, 1])
    _finished(study, [1])  # reached epoch 1 only
    trial = study.ask()
    trial.report(5, 1)
    assert trial.should_prune()
    trial = study.ask()
    trial.report(1, 1)
    trial.report(5, 2)  # only two previous jobs reached epoch 2
    assert not trial.should_prune()
    assert running_average({1: 4.0, 2: 2.0, 3: 0.0}, 2) == 3.0
    assert running_average({1: 4.0}, 2) is None
    assert study.get_trials(states=(TrialState.COMPLETE,))
