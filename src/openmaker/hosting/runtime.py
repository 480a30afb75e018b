"""SageMaker Runtime's InvokeEndpoint: the router between callers and an endpoint's fleet.

A request goes to the variant named by ``TargetVariant``, else to one chosen at random by
the variants' current weights, and within the variant to its instances in turn, over a
kept-alive HTTP connection to the instance's ``POST /invocations``. The container's answer
comes back as it is, with ``X-Amzn-Invoked-Production-Variant``; an error status from the
container is SageMaker's ``ModelError`` (424) carrying ``OriginalStatusCode`` and
``OriginalMessage``. Payloads are limited to 6 MB and calls to 60 s, as on SageMaker.
"""

from __future__ import annotations

import http.client
import random
from dataclasses import dataclass

from openmaker.core import errors
from openmaker.core.platform import Platform, RequestContext
from openmaker.hosting.endpoints import endpoint_record, fleet

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
INVOCATION_TIMEOUT_SECONDS = 60.0


@dataclass
class Invocation:
    """What the container answered: its body and content type, the variant that served."""

    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None = None


def invoke_endpoint(ctx: RequestContext, params: dict) -> dict:
    """The InvokeEndpoint operation: ``params`` and the result are the model's
    ``InvokeEndpointInput`` and ``InvokeEndpointOutput`` members."""
    for member in ("TargetModel", "TargetContainerHostname", "InferenceComponentName",
                   "SessionId"):
        if params.get(member) is not None:
            raise errors.RuntimeValidationError(
                f"{member}: multi-model, multi-container and stateful endpoints are not "
                "served by openmaker yet.")
    result = route_invocation(
        ctx.platform, params["EndpointName"], params.get("Body") or b"",
        content_type=params.get("ContentType"), accept=params.get("Accept"),
        target_variant=params.get("TargetVariant"),
        custom_attributes=params.get("CustomAttributes"),
        inference_id=params.get("InferenceId"), account_id=ctx.account_id,
        region=ctx.region)
    output = {"Body": result.body, "ContentType": result.content_type,
              "InvokedProductionVariant": result.variant}
    if result.custom_attributes is not None:
        output["CustomAttributes"] = result.custom_attributes
    return output


def route_invocation(platform: Platform, endpoint: str, body: bytes, *,
                    content_type: str | None = None, accept: str | None = None,
                    target_variant: str | None = None, custom_attributes: str | None = None,
                    inference_id: str | None = None, account_id: str = "",
                    region: str = "") -> Invocation:
    """Send one request to ``endpoint``'s fleet; ``RuntimeValidationError`` for an unknown
    endpoint or variant or one not in service, ``ModelError`` for the container's errors."""
    record = endpoint_record(platform, endpoint)
    if record is None:
        raise errors.RuntimeValidationError(
            f"Endpoint {endpoint} of account {account_id} not found.")
    running = fleet(endpoint)
    if record["EndpointStatus"] not in ("InService", "Updating") or running is None:
        raise errors.RuntimeValidationError(
            f"Endpoint {endpoint} of account {account_id} is not in service (status "
            f"{record['EndpointStatus']}); invoke it once it is InService.")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise errors.RuntimeValidationError(
            f"Body: the request payload is {len(body)} bytes, more than the "
            f"{MAX_PAYLOAD_BYTES} bytes (6 MB) InvokeEndpoint accepts; use asynchronous "
            "inference or batch transform for larger payloads.")
    if target_variant is not None:
        variant = running.variants.get(target_variant)
        if variant is None:
            raise errors.RuntimeValidationError(
                f"TargetVariant: endpoint {endpoint} has no variant {target_variant!r} "
                f"(it has {', '.join(sorted(running.variants))}).")
    else:
        candidates = [v for v in running.variants.values() if v.weight > 0]
        if not candidates:
            raise errors.RuntimeValidationError(
                f"Endpoint {endpoint}: every production variant has weight 0; give one a "
                "weight or name it in TargetVariant.")
        variant = random.choices(candidates, weights=[v.weight for v in candidates])[0]
    headers = {"Content-Type": content_type or "application/octet-stream",
               "Accept": accept or "*/*"}
    if custom_attributes is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    if inference_id is not None:
        headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
    status, answer, answer_type, answer_attributes = _post(variant.pick(), body, headers)
    if status >= 400:
        text = answer.decode("utf-8", errors="replace")[:2048]
        kind = "client" if status < 500 else "server"
        raise errors.ModelError(
            f"Received {kind} error ({status}) from primary with message \"{text}\". See "
            f"the log group /aws/sagemaker/Endpoints/{endpoint} in account {account_id} for "
            "more information.", OriginalStatusCode=status, OriginalMessage=text,
            LogStreamArn=f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/"
                         f"Endpoints/{endpoint}")
    return Invocation(answer, answer_type or "application/octet-stream", variant.name,
                      answer_attributes)


def _post(instance, body: bytes, headers: dict[str, str]
          ) -> tuple[int, bytes, str | None, str | None]:
    """POST to the instance, on a kept-alive connection; one fresh retry when a kept
    connection turns out closed (the request never reached the model)."""
    for attempt in (0, 1):
        connection = instance.connection()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except (ConnectionError, http.client.RemoteDisconnected,
                http.client.CannotSendRequest) as exc:
            connection.close()
            if attempt == 0:
                continue
            raise errors.ModelError(
                f"The model server of variant {instance.variant} closed the connection: "
                f"{exc}", OriginalStatusCode=502, OriginalMessage=str(exc)) from None
        except TimeoutError:
            connection.close()
            raise errors.ModelError(
                f"The model server of variant {instance.variant} did not answer within "
                f"{INVOCATION_TIMEOUT_SECONDS:.0f} s", OriginalStatusCode=408,
                OriginalMessage="timed out") from None
        instance.release(connection)
        return (response.status, answer, response.getheader("Content-Type"),
                response.getheader("X-Amzn-SageMaker-Custom-Attributes"))
    raise AssertionError("unreachable")
