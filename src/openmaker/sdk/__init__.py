"""The Pythonic SDK: sessions bound to an openmaker server, built on boto3 clients, and
estimators that run training jobs on it."""

from openmaker.sdk.estimator import Estimator, TrainingInput, TrainingJobFailedError
from openmaker.sdk.session import ServerStartError, Session, StorageEntry

__all__ = ["Estimator", "ServerStartError", "Session", "StorageEntry", "TrainingInput",
           "TrainingJobFailedError"]
