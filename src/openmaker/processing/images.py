"""Which processing images openmaker runs, and what each brings to a job.

Images are recognised by repository name, as for training (``training/images.py``):
account, region, registry and tag are accepted as given. The SageMaker scikit-learn,
PyTorch and XGBoost framework images run the job's command with this server's Python
environment (``python``/``python3``/``pip`` on ``PATH``); the Spark processing image adds
``smspark-submit``, which runs the application on a local Spark session and needs pyspark.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from openmaker.core import errors
from openmaker.training.images import image_repository

FIELD = "AppSpecification.ImageUri"
PYTHON_REPOSITORIES = frozenset({"sagemaker-scikit-learn", "pytorch-training",
                                 "pytorch-inference", "sagemaker-xgboost"})
SPARK_REPOSITORY = "sagemaker-spark-processing"


@dataclass(frozen=True)
class ProcessingImage:
    """A recognised image: its repository and the ENTRYPOINT it would have."""

    uri: str
    repository: str
    entrypoint: tuple[str, ...] = ()

    @property
    def spark(self) -> bool:
        return self.repository == SPARK_REPOSITORY


def pyspark_available() -> bool:
    return importlib.util.find_spec("pyspark") is not None


def processing_image(uri: str) -> ProcessingImage:
    """The image ``uri`` names; ValidationException naming ``AppSpecification.ImageUri``
    for images openmaker cannot run."""
    repository = image_repository(uri, FIELD)
    if repository in PYTHON_REPOSITORIES:
        # These images define no ENTRYPOINT that changes the command (the PyTorch one
        # only wraps it to set the host name), so arguments alone are the command.
        return ProcessingImage(uri, repository)
    if repository == SPARK_REPOSITORY:
        if not pyspark_available():
            raise errors.ValidationException(
                f"{FIELD} {uri!r}: Spark processing jobs run on a local Spark session, which "
                "needs pyspark; install pyspark (and a Java runtime) where the openmaker "
                "server runs")
        return ProcessingImage(uri, repository, ("smspark-submit",))
    raise errors.ValidationException(
        f"{FIELD} {uri!r}: repository {repository!r} is not a processing image openmaker can "
        f"run; use one of {', '.join(sorted(PYTHON_REPOSITORIES | {SPARK_REPOSITORY}))} "
        "(openmaker runs no containers)")
