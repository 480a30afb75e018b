"""``openmaker.Model``: an inference image and model artifact to deploy to an endpoint, as
``sagemaker.model.Model``.

``deploy`` calls ``CreateModel``, ``CreateEndpointConfig`` (one variant) and
``CreateEndpoint``, then waits for ``InService`` printing a dash per poll and ``!`` at the
end, as the SageMaker SDK does. With an ``entry_point`` the inference code is packed as a
framework model's is: ``sourcedir.tar.gz`` in the default bucket, named by the
``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` environment variables.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from openmaker.sdk.estimator import (
    _source_archive,
    base_name_from_image,
    default_bucket,
    name_from_base,
    tag_list,
)
from openmaker.sdk.predictor import Predictor
from openmaker.sdk.serializers import BaseDeserializer, BaseSerializer
from openmaker.sdk.session import Session

ENDPOINT_POLL_SECONDS = 0.5
_TRANSITIONAL = ("Creating", "Updating", "SystemUpdating")


class EndpointDeploymentError(RuntimeError):
    """An endpoint ended ``Failed``; ``failure_reason`` is its ``FailureReason``."""

    def __init__(self, endpoint_name: str, status: str, failure_reason: str) -> None:
        super().__init__(f"Error hosting endpoint {endpoint_name}: {status}. Reason: "
                         f"{failure_reason}")
        self.endpoint_name = endpoint_name
        self.failure_reason = failure_reason


def wait_for_endpoint(session: Session, endpoint_name: str, *, out: TextIO | None = None,
                      poll_seconds: float = ENDPOINT_POLL_SECONDS,
                      timeout: float | None = None) -> dict[str, Any]:
    """Poll ``DescribeEndpoint`` until the endpoint leaves Creating/Updating, printing a
    dash per poll and ``!`` when in service; ``EndpointDeploymentError`` otherwise."""
    out = out or sys.stdout
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        endpoint = session.sagemaker.describe_endpoint(EndpointName=endpoint_name)
        status = endpoint["EndpointStatus"]
        if status not in _TRANSITIONAL:
            break
        if deadline is not None and time.monotonic() > deadline:
            print(file=out)
            raise EndpointDeploymentError(endpoint_name, status,
                                          f"still {status} after {timeout:.0f} s")
        print("-", end="", file=out, flush=True)
        time.sleep(poll_seconds)
    print("!" if status == "InService" else "*", file=out, flush=True)
    if status != "InService":
        raise EndpointDeploymentError(endpoint_name, status,
                                      endpoint.get("FailureReason", "(no reason given)"))
    return endpoint


def _capture_config(config: Any) -> dict[str, Any] | None:
    """A ``DataCaptureConfig`` request member from a dict or the SDK's object."""
    if config is None or isinstance(config, Mapping):
        return dict(config) if config is not None else None
    to_request = getattr(config, "_to_request_dict", None)
    if callable(to_request):
        return to_request()
    raise TypeError("data_capture_config must be a DataCaptureConfig request dict "
                    f"(EnableCapture, DestinationS3Uri, ...); got {type(config).__name__}")


class Model:
    """An inference container to deploy.

    >>> model = openmaker.Model(XGBOOST_IMAGE, model_data="s3://bucket/model.tar.gz")
    >>> predictor = model.deploy(instance_type="ml.m5.large",
    ...                          serializer=openmaker.CSVSerializer())
    """

    def __init__(
        self,
        image_uri: str,
        model_data: str | None = None,
        role: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        session: Session | None = None,
        predictor_cls: type | None = Predictor,
        entry_point: str | None = None,
        source_dir: str | None = None,
    ) -> None:
        self.image_uri = image_uri
        self.model_data = model_data
        self.role = role
        self.env = dict(env or {})
        self.name = name
        self._session = session
        self.predictor_cls = predictor_cls
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.endpoint_name: str | None = None
        self._created = False

    def __repr__(self) -> str:
        return f"Model(image_uri={self.image_uri!r}, name={self.name!r})"

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session()
        return self._session

    def _role(self) -> str:
        return self.role or f"arn:aws:iam::{self.session.account_id}:role/openmaker"

    def _code_environment(self, model_name: str) -> dict[str, str]:
        """``SAGEMAKER_PROGRAM``/``SAGEMAKER_SUBMIT_DIRECTORY`` for the entry point, after
        uploading its ``sourcedir.tar.gz`` (a ``source_dir`` on s3:// is used as it is)."""
        if not self.entry_point:
            return {}
        if self.source_dir and self.source_dir.startswith("s3://"):
            uri, program = self.source_dir, self.entry_point
        else:
            archive, program = _source_archive(self.entry_point, self.source_dir)
            bucket = default_bucket(self.session)
            key = f"{model_name}/sourcedir.tar.gz"
            self.session.s3.put_object(Bucket=bucket, Key=key, Body=archive)
            uri = f"s3://{bucket}/{key}"
        return {"SAGEMAKER_PROGRAM": program, "SAGEMAKER_SUBMIT_DIRECTORY": uri,
                "SAGEMAKER_CONTAINER_LOG_LEVEL": str(logging.INFO),
                "SAGEMAKER_REGION": self.session.region}

    def container_definition(self, model_name: str) -> dict[str, Any]:
        """The ``PrimaryContainer`` of ``CreateModel`` (uploading the code if any)."""
        container: dict[str, Any] = {"Image": self.image_uri}
        if self.model_data:
            container["ModelDataUrl"] = self.model_data
        environment = {**self._code_environment(model_name), **self.env}
        if environment:
            container["Environment"] = environment
        return container

    def create(self, tags: list[dict[str, str]] | Mapping[str, str] | None = None) -> str:
        """``CreateModel`` (once); returns the model's name."""
        if self._created and self.name:
            return self.name
        self.name = self.name or name_from_base(base_name_from_image(self.image_uri))
        request: dict[str, Any] = {"ModelName": self.name, "ExecutionRoleArn": self._role(),
                                   "PrimaryContainer": self.container_definition(self.name)}
        if tags:
            request["Tags"] = tag_list(tags)
        self.session.sagemaker.create_model(**request)
        self._created = True
        return self.name

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        endpoint_name: str | None = None,
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        wait: bool = True,
        variant_name: str = "AllTraffic",
        data_capture_config: Any = None,
        tags: list[dict[str, str]] | Mapping[str, str] | None = None,
    ) -> Predictor | None:
        """Create the model, an endpoint config with one variant and the endpoint; with
        ``wait`` block until it is ``InService`` (``EndpointDeploymentError`` with the
        ``FailureReason`` if it fails). Returns a predictor for it (None without a
        ``predictor_cls``)."""
        model_name = self.create(tags)
        endpoint_name = endpoint_name or model_name
        config: dict[str, Any] = {
            "EndpointConfigName": endpoint_name,
            "ProductionVariants": [{
                "VariantName": variant_name, "ModelName": model_name,
                "InitialInstanceCount": initial_instance_count,
                "InstanceType": instance_type, "InitialVariantWeight": 1.0}],
        }
        capture = _capture_config(data_capture_config)
        if capture:
            config["DataCaptureConfig"] = capture
        if tags:
            config["Tags"] = tag_list(tags)
        sagemaker = self.session.sagemaker
        sagemaker.create_endpoint_config(**config)
        request: dict[str, Any] = {"EndpointName": endpoint_name,
                                   "EndpointConfigName": endpoint_name}
        if tags:
            request["Tags"] = tag_list(tags)
        sagemaker.create_endpoint(**request)
        self.endpoint_name = endpoint_name
        if wait:
            wait_for_endpoint(self.session, endpoint_name)
        if self.predictor_cls is None:
            return None
        predictor = self.predictor_cls(endpoint_name, session=self.session)
        if serializer is not None:
            predictor.serializer = serializer
        if deserializer is not None:
            predictor.deserializer = deserializer
        return predictor

    def transformer(
        self,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: Mapping[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | Mapping[str, str] | None = None,
        volume_kms_key: str | None = None,
    ):
        """Create the model (once) and return an ``openmaker.Transformer`` for batch
        transform jobs of it, as ``sagemaker.model.Model.transformer``."""
        from openmaker.sdk.transformer import Transformer

        model_name = self.create(tags)
        return Transformer(model_name, instance_count, instance_type, strategy=strategy,
                           assemble_with=assemble_with, output_path=output_path,
                           output_kms_key=output_kms_key, accept=accept,
                           max_concurrent_transforms=max_concurrent_transforms,
                           max_payload=max_payload, tags=tags, env=env,
                           session=self.session, volume_kms_key=volume_kms_key)

    def delete_model(self) -> None:
        """``DeleteModel`` of this model."""
        if not self.name:
            raise ValueError("this model has not been created yet: call deploy() first")
        self.session.sagemaker.delete_model(ModelName=self.name)
        self._created = False


__all__ = ["EndpointDeploymentError", "Model", "default_bucket", "wait_for_endpoint"]
