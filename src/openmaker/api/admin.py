"""openmaker's own admin operations, which have no AWS counterpart: ``POST
/_openmaker/<resource>/<name>/<action>`` with a JSON answer, signed (when the server has
access keys) with SigV4 for the service ``openmaker``. The ``_`` keeps the path clear of S3,
whose bucket names cannot contain one.

- ``POST /_openmaker/training-jobs/<name>/spot-interruption``: reclaim a running
  managed-spot job's instances (it resumes from its checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import re

from openmaker.api import sigv4
from openmaker.api.app import Protocol
from openmaker.api.http import Request, Response
from openmaker.api.json_protocol import json_error_response
from openmaker.core import errors

PATH_PREFIX = "/_openmaker/"
SERVICE = "openmaker"
CONTENT_TYPE = "application/json"
_ROUTE = re.compile(r"^/_openmaker/(?P<resource>[a-z-]+)/(?P<name>[^/]+)/(?P<action>[a-z-]+)$")


def _interrupt_training_job(ctx, name: str) -> dict:
    from openmaker.training.service import interrupt_training_job

    interrupt_training_job(ctx.platform, name)
    return {"TrainingJobName": name, "Interrupted": True}


ACTIONS = {("training-jobs", "spot-interruption"): _interrupt_training_job}


class AdminProtocol(Protocol):
    dialect = "json"

    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        body = await request.read_body(
            64 * 1024, errors.RequestEntityTooLarge("admin requests carry no body"))
        verified = self.app.authenticate(signed, self.dialect, hashlib.sha256(body).hexdigest())
        match = _ROUTE.match(request.path)
        action = ACTIONS.get((match["resource"], match["action"])) if match else None
        if action is None or request.method != "POST":
            raise errors.UnknownOperationException(
                f"{request.method} {request.path} is no openmaker admin operation; known: "
                + ", ".join(f"POST {PATH_PREFIX}{resource}/<name>/{verb}"
                            for resource, verb in ACTIONS))
        result = await self.app.run(action, self.app.context(request, verified), match["name"])
        return Response(200, [("content-type", CONTENT_TYPE),
                              ("x-amzn-requestid", request.request_id)],
                        json.dumps(result).encode())

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        return json_error_response(request, error, CONTENT_TYPE)
