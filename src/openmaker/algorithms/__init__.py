"""Built-in algorithms: SageMaker's algorithms with their hyperparameters, channels, content
types, metrics and inference formats, behind one interface (``base.py``).

``find_algorithm`` maps an image URI's repository name (``sagemaker-xgboost``, the legacy
``xgboost``), a full image URI, or a bare name to the algorithm. Algorithm modules import
their heavy dependencies only when they train or load a model.
"""

from __future__ import annotations

import importlib

from openmaker.algorithms.base import (
    Algorithm,
    AlgorithmError,
    ChannelDefinition,
    ClientError,
    EmptyRequest,
    Hyperparameter,
    HyperparameterSpec,
    InferenceError,
    Interval,
    MetricDefinition,
    NotAcceptable,
    Predictor,
    TrainingEnvironment,
    UnsupportedContentType,
)

# name -> "module:class"; a new built-in is one entry here (and one in the conformance suite).
_REGISTRY = {
    "xgboost": "openmaker.algorithms.xgboost:XGBoost",
    "pca": "openmaker.algorithms.pca:PCA",
    "knn": "openmaker.algorithms.knn:KNN",
    "randomcutforest": "openmaker.algorithms.random_cut_forest:RandomCutForest",
    "kmeans": "openmaker.algorithms.kmeans:KMeans",
    "ipinsights": "openmaker.algorithms.ip_insights:IPInsights",
    "factorization-machines": "openmaker.algorithms.factorization_machines:FactorizationMachines",
    "lightgbm": "openmaker.algorithms.lightgbm:LightGBM",
    "linear-learner": "openmaker.algorithms.linear_learner:LinearLearner",
    "catboost": "openmaker.algorithms.catboost:CatBoost",
}
_instances: dict[str, Algorithm] = {}


def algorithm_names() -> list[str]:
    """The built-in algorithms' names."""
    return list(_REGISTRY)


def _load(name: str) -> Algorithm:
    if name not in _instances:
        module_name, class_name = _REGISTRY[name].split(":")
        _instances[name] = getattr(importlib.import_module(module_name), class_name)()
    return _instances[name]


def _repository(reference: str) -> str:
    """``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1`` ->
    ``sagemaker-xgboost``; a bare name is returned lower-cased."""
    text = reference.strip()
    last = text.rsplit("/", 1)[-1]
    last = last.split("@", 1)[0]  # digest
    return last.split(":", 1)[0].lower()


def find_algorithm(repository_or_name: str) -> Algorithm | None:
    """The built-in algorithm an image repository name, image URI or bare name selects,
    or None when it names none."""
    if not repository_or_name:
        return None
    key = _repository(repository_or_name)
    for name in _REGISTRY:
        if key == name:
            return _load(name)
    for name in _REGISTRY:
        algorithm = _load(name)
        if key in algorithm.repositories:
            return algorithm
    return None


__all__ = [
    "Algorithm",
    "AlgorithmError",
    "ChannelDefinition",
    "ClientError",
    "EmptyRequest",
    "Hyperparameter",
    "HyperparameterSpec",
    "InferenceError",
    "Interval",
    "MetricDefinition",
    "NotAcceptable",
    "Predictor",
    "TrainingEnvironment",
    "UnsupportedContentType",
    "algorithm_names",
    "find_algorithm",
]
