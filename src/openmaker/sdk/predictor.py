"""``openmaker.Predictor``: calls a deployed endpoint through SageMaker Runtime's
``InvokeEndpoint``, as ``sagemaker.predictor.Predictor`` does: the serializer makes the
body and names ``ContentType``, the deserializer names ``Accept`` and reads the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openmaker.sdk.serializers import (
    BaseDeserializer,
    BaseSerializer,
    BytesDeserializer,
    IdentitySerializer,
)
from openmaker.sdk.session import Session


class Predictor:
    """A deployed endpoint to send inference requests to.

    >>> predictor = openmaker.Predictor("my-endpoint", serializer=CSVSerializer(),
    ...                                 deserializer=CSVDeserializer())
    >>> predictor.predict([[0.5, 1.2, 3.0]])
    """

    def __init__(self, endpoint_name: str, session: Session | None = None,
                 serializer: BaseSerializer | None = None,
                 deserializer: BaseDeserializer | None = None) -> None:
        self.endpoint_name = endpoint_name
        self._session = session
        self.serializer = serializer or IdentitySerializer()
        self.deserializer = deserializer or BytesDeserializer()
        self.last_invocation: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Predictor(endpoint_name={self.endpoint_name!r})"

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session()
        return self._session

    @property
    def content_type(self) -> str:
        """The serializer's ``CONTENT_TYPE``, sent as ``ContentType``."""
        return self.serializer.CONTENT_TYPE

    @property
    def accept(self) -> tuple[str, ...]:
        """The deserializer's ``ACCEPT`` types, sent comma-joined as ``Accept``."""
        return self.deserializer.ACCEPT

    def _request(self, data: Any, initial_args: Mapping[str, Any] | None,
                 target_variant: str | None, custom_attributes: str | None,
                 inference_id: str | None) -> dict[str, Any]:
        args = dict(initial_args or {})
        args.setdefault("EndpointName", self.endpoint_name)
        content_type = self.content_type
        args.setdefault("ContentType", content_type if isinstance(content_type, str)
                        else ", ".join(content_type))
        accept = self.accept
        args.setdefault("Accept", accept if isinstance(accept, str) else ", ".join(accept))
        if target_variant:
            args["TargetVariant"] = target_variant
        if inference_id:
            args["InferenceId"] = inference_id
        if custom_attributes:
            args["CustomAttributes"] = custom_attributes
        args["Body"] = self.serializer.serialize(data)
        return args

    def predict(self, data: Any, initial_args: Mapping[str, Any] | None = None,
                target_variant: str | None = None, custom_attributes: str | None = None,
                inference_id: str | None = None) -> Any:
        """The endpoint's answer for ``data``, serialized and deserialized by this
        predictor's (de)serializers. ``initial_args`` are extra ``InvokeEndpoint``
        parameters; the response's metadata (variant, content type, custom attributes)
        is kept in ``last_invocation``."""
        request = self._request(data, initial_args, target_variant, custom_attributes,
                                inference_id)
        response = self.session.client("sagemaker-runtime").invoke_endpoint(**request)
        self.last_invocation = {key: response.get(key) for key in (
            "ContentType", "InvokedProductionVariant", "CustomAttributes")}
        return self.deserializer.deserialize(
            response["Body"], response.get("ContentType", "application/octet-stream"))

    # -- lifecycle ------------------------------------------------------------------------
    def _endpoint_config_name(self) -> str:
        endpoint = self.session.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
        return endpoint["EndpointConfigName"]

    def _model_names(self) -> list[str]:
        config = self.session.sagemaker.describe_endpoint_config(
            EndpointConfigName=self._endpoint_config_name())
        return [variant["ModelName"] for variant in config["ProductionVariants"]
                if variant.get("ModelName")]

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """``DeleteEndpoint``, and with ``delete_endpoint_config`` its endpoint config."""
        config_name = self._endpoint_config_name() if delete_endpoint_config else None
        if config_name is not None:
            self.session.sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
        self.session.sagemaker.delete_endpoint(EndpointName=self.endpoint_name)

    def delete_model(self) -> None:
        """``DeleteModel`` for every model the endpoint's config serves (the config must
        still exist: call this before ``delete_endpoint``, as with the SageMaker SDK)."""
        failed = []
        for name in self._model_names():
            try:
                self.session.sagemaker.delete_model(ModelName=name)
            except Exception:  # noqa: BLE001 - try every model, report the ones left
                failed.append(name)
        if failed:
            raise RuntimeError("One or more models cannot be deleted, please retry. Failed "
                               f"models: {', '.join(failed)}")


__all__ = ["Predictor"]
