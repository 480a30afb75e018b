"""botocore's service models, loaded once per service and shared by the whole process.

openmaker validates requests and renders responses from the same ``service-2.json``
files that boto3 clients use, so the server and any client agree on every shape.
botocore is imported inside the functions: the CLI imports this module and its
``--help`` must stay fast.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.loaders import Loader
    from botocore.model import OperationModel, ServiceModel

_loader_lock = threading.Lock()
_loader: Loader | None = None


def _data_loader() -> Loader:
    """One botocore loader (it honours ``AWS_DATA_PATH`` like a boto3 session does)."""
    global _loader
    with _loader_lock:
        if _loader is None:
            from botocore.loaders import create_loader

            _loader = create_loader()
        return _loader


@functools.cache
def service_model(name: str) -> ServiceModel:
    """The botocore model of service ``name`` (``"sagemaker"``, ``"s3"``, ``"sts"``, ...).

    Raises ``botocore.exceptions.UnknownServiceError`` for a name botocore does not ship.
    """
    from botocore.model import ServiceModel

    description = _data_loader().load_service_model(name, "service-2")
    return ServiceModel(description, service_name=name)


@functools.lru_cache(maxsize=4096)  # bounded: names come from requests
def operation_model(service: str, op: str) -> OperationModel | None:
    """The model of operation ``op`` (e.g. ``"CreateTrainingJob"``), or None if unknown."""
    from botocore.model import OperationNotFoundError

    try:
        return service_model(service).operation_model(op)
    except OperationNotFoundError:
        return None


def list_operations(service: str) -> list[str]:
    """The names of every operation of ``service``, sorted."""
    return sorted(service_model(service).operation_names)


@functools.cache
def _paginators(service: str) -> dict:
    from botocore.exceptions import DataNotFoundError

    try:
        return _data_loader().load_service_model(service, "paginators-1").get("pagination", {})
    except DataNotFoundError:
        return {}


def paginator_config(service: str, op: str) -> dict | None:
    """botocore's paginator entry for ``op`` (``input_token``, ``result_key`` ...), if any."""
    return _paginators(service).get(op)
