"""What a training job runs, decided from its ``AlgorithmSpecification``: a user's script
on a SageMaker framework image (script mode) or one of openmaker's built-in algorithms.

Images are recognised by their repository name, as DESIGN.md says: account, region,
registry and tag are accepted as given (``.../sagemaker-xgboost:1.7-1`` and a bare
``xgboost`` name the same algorithm). ``sagemaker-xgboost`` is both: with a
``sagemaker_program`` hyperparameter it runs the user's script, without one it is the
built-in XGBoost algorithm, as on SageMaker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openmaker.core import errors
from openmaker.training.contract import decode_hyperparameters

# Repository names of the SageMaker framework images that run script-mode jobs.
FRAMEWORK_REPOSITORIES = frozenset({"sagemaker-scikit-learn", "pytorch-training",
                                    "sagemaker-xgboost"})
# Repository names of SageMaker's built-in algorithm images (reference/algorithms.md,
# appendix); those without an openmaker implementation yet are refused by name.
BUILT_IN_REPOSITORIES = frozenset({
    "xgboost", "linear-learner", "kmeans", "pca", "factorization-machines", "knn", "lda",
    "ntm", "randomcutforest", "blazingtext", "object2vec", "ipinsights",
    "image-classification", "object-detection", "semantic-segmentation", "forecasting-deepar",
    "seq2seq",
})
_IMAGE = re.compile(r"^(?:[^/]+/)*(?P<repository>[a-z0-9][a-z0-9._\-]*)(?::[\w.\-]+|@[\w:]+)?$")


@dataclass(frozen=True)
class TrainingProgram:
    """A job's program: ``algorithm`` names a built-in, else ``script`` is the entry point
    inside ``source`` (the ``sagemaker_submit_directory`` archive)."""

    image: str
    algorithm: str | None = None
    script: str | None = None
    source: str | None = None

    @property
    def built_in(self) -> bool:
        return self.algorithm is not None


def image_repository(image: str, field: str = "AlgorithmSpecification.TrainingImage") -> str:
    """The repository name of an image URI (``.../sagemaker-xgboost:1.7-1`` ->
    ``sagemaker-xgboost``); ValidationException naming ``field`` when it is not an image
    URI."""
    match = _IMAGE.match(image)
    if match is None:
        raise errors.ValidationException(
            f"{field} {image!r} is not an image URI "
            "(<registry>/<repository>[:tag])"
        )
    return match.group("repository")


def training_program(specification: Mapping[str, Any],
                     hyperparameters: Mapping[str, Any]) -> TrainingProgram:
    """What ``specification`` (``AlgorithmSpecification``) runs; ValidationException naming
    the field when it names nothing openmaker can run."""
    from openmaker.algorithms import find_algorithm

    name = specification.get("AlgorithmName")
    image = specification.get("TrainingImage")
    if name and image:
        raise errors.ValidationException(
            "AlgorithmSpecification: give exactly one of TrainingImage and AlgorithmName")
    if name:
        # Built-ins answer to their bare names; algorithm resources (marketplace or
        # CreateAlgorithm) do not exist in openmaker.
        algorithm = find_algorithm(name)
        if algorithm is None:
            raise errors.ValidationException(
                f"AlgorithmSpecification.AlgorithmName {name!r}: algorithm resources are not "
                "implemented; give a built-in algorithm's name or image, or a framework "
                "TrainingImage (scikit-learn, PyTorch or XGBoost)"
            )
        return TrainingProgram(image=name, algorithm=algorithm.name)
    if not image:
        raise errors.ValidationException(
            "AlgorithmSpecification.TrainingImage is required (exactly one of TrainingImage "
            "and AlgorithmName)"
        )
    repository = image_repository(image)
    decoded = decode_hyperparameters(hyperparameters)
    program = decoded.get("sagemaker_program")
    if repository not in FRAMEWORK_REPOSITORIES or program is None:
        algorithm = find_algorithm(repository)
        if algorithm is not None:
            return TrainingProgram(image=image, algorithm=algorithm.name)
        if repository in BUILT_IN_REPOSITORIES:
            raise errors.ValidationException(
                f"AlgorithmSpecification.TrainingImage {image!r}: the built-in algorithm "
                f"{repository!r} is not implemented yet"
            )
    if repository not in FRAMEWORK_REPOSITORIES:
        raise errors.ValidationException(
            f"AlgorithmSpecification.TrainingImage {image!r}: repository {repository!r} is not "
            "a SageMaker framework or built-in algorithm image openmaker can run; use one of "
            f"{', '.join(sorted(FRAMEWORK_REPOSITORIES))} or a built-in algorithm"
        )
    if not isinstance(program, str) or not program or program.startswith("/") \
            or ".." in program.split("/"):
        raise errors.ValidationException(
            "HyperParameters.sagemaker_program is required for a framework image: the entry "
            "script's path inside sourcedir.tar.gz (e.g. train.py), relative and without '..'"
        )
    return TrainingProgram(image=image, script=program,
                           source=decoded.get("sagemaker_submit_directory"))
