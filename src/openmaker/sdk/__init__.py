"""The Pythonic SDK: sessions bound to an openmaker server, built on boto3 clients,
estimators that run training jobs on it, and their metrics as DataFrames."""

from openmaker.sdk.analytics import TrainingJobAnalytics
from openmaker.sdk.estimator import Estimator, TrainingInput, TrainingJobFailedError
from openmaker.sdk.session import ServerStartError, Session, StorageEntry

__all__ = ["Estimator", "ServerStartError", "Session", "StorageEntry", "TrainingInput",
           "TrainingJobAnalytics", "TrainingJobFailedError"]
