"""``openmaker.Transformer``: batch transform jobs over a model, as
``sagemaker.transformer.Transformer`` (the same argument names).

>>> transformer = model.transformer(instance_count=1, instance_type="ml.m5.large",
...                                 strategy="MultiRecord", assemble_with="Line")
>>> transformer.transform("s3://bucket/input/", content_type="text/csv", split_type="Line")
>>> transformer.output_path  # one <input key>.out per input object

``transform`` calls ``CreateTransformJob`` and, with ``wait`` (the default), polls
``DescribeTransformJob`` until the job ends, raising :class:`TransformJobFailedError` with
its ``FailureReason`` when it failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from openmaker.sdk.estimator import default_bucket, name_from_base, tag_list
from openmaker.sdk.session import Session

POLL_SECONDS = 0.5
_RUNNING = ("InProgress", "Stopping")


class TransformJobFailedError(RuntimeError):
    """A transform job ended ``Failed``; ``failure_reason`` is its ``FailureReason``."""

    def __init__(self, job_name: str, failure_reason: str) -> None:
        super().__init__(f"Transform job {job_name} failed. Reason: {failure_reason}")
        self.job_name = job_name
        self.failure_reason = failure_reason


def wait_for_transform_job(session: Session, job_name: str, *, out: TextIO | None = None,
                           poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Poll ``DescribeTransformJob`` until the job ends, printing a dot per poll; its
    description, or ``TransformJobFailedError`` when it failed."""
    out = out or sys.stdout
    while True:
        job = session.sagemaker.describe_transform_job(TransformJobName=job_name)
        if job["TransformJobStatus"] not in _RUNNING:
            break
        print(".", end="", file=out, flush=True)
        time.sleep(poll_seconds)
    print("!" if job["TransformJobStatus"] == "Completed" else "*", file=out, flush=True)
    if job["TransformJobStatus"] == "Failed":
        raise TransformJobFailedError(job_name, job.get("FailureReason", "(no reason given)"))
    return job


class Transformer:
    """Runs batch transform jobs of one model (``model_name`` must exist on the server)."""

    def __init__(
        self,
        model_name: str,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: list[dict[str, str]] | Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        base_transform_job_name: str | None = None,
        session: Session | None = None,
        volume_kms_key: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = tags
        self.env = dict(env or {})
        self.base_transform_job_name = base_transform_job_name
        self.volume_kms_key = volume_kms_key
        self._session = session
        self.latest_transform_job: str | None = None

    def __repr__(self) -> str:
        return f"Transformer(model_name={self.model_name!r})"

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session()
        return self._session

    def transform_job_request(
        self, data: str, data_type: str = "S3Prefix", content_type: str | None = None,
        compression_type: str | None = None, split_type: str | None = None,
        job_name: str | None = None, input_filter: str | None = None,
        output_filter: str | None = None, join_source: str | None = None,
        model_client_config: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """The ``CreateTransformJob`` request ``transform`` sends."""
        name = job_name or name_from_base(self.base_transform_job_name or self.model_name)
        if self.output_path is None:  # the SageMaker SDK's default: s3://<bucket>/<job>
            self.output_path = f"s3://{default_bucket(self.session)}/{name}"
        source: dict[str, Any] = {"DataSource": {"S3DataSource": {"S3DataType": data_type,
                                                                  "S3Uri": data}}}
        for key, value in (("ContentType", content_type), ("CompressionType", compression_type),
                           ("SplitType", split_type)):
            if value is not None:
                source[key] = value
        output: dict[str, Any] = {"S3OutputPath": self.output_path}
        for key, value in (("Accept", self.accept), ("AssembleWith", self.assemble_with),
                           ("KmsKeyId", self.output_kms_key)):
            if value is not None:
                output[key] = value
        resources: dict[str, Any] = {"InstanceType": self.instance_type,
                                     "InstanceCount": self.instance_count}
        if self.volume_kms_key:
            resources["VolumeKmsKeyId"] = self.volume_kms_key
        request: dict[str, Any] = {"TransformJobName": name, "ModelName": self.model_name,
                                   "TransformInput": source, "TransformOutput": output,
                                   "TransformResources": resources}
        for key, value in (("BatchStrategy", self.strategy),
                           ("MaxConcurrentTransforms", self.max_concurrent_transforms),
                           ("MaxPayloadInMB", self.max_payload)):
            if value is not None:
                request[key] = value
        if self.env:
            request["Environment"] = self.env
        processing = {key: value for key, value in (("InputFilter", input_filter),
                                                    ("OutputFilter", output_filter),
                                                    ("JoinSource", join_source))
                      if value is not None}
        if processing:
            request["DataProcessing"] = processing
        if model_client_config:
            request["ModelClientConfig"] = dict(model_client_config)
        if self.tags:
            request["Tags"] = tag_list(self.tags)
        return request

    def transform(
        self, data: str, data_type: str = "S3Prefix", content_type: str | None = None,
        compression_type: str | None = None, split_type: str | None = None,
        job_name: str | None = None, input_filter: str | None = None,
        output_filter: str | None = None, join_source: str | None = None,
        model_client_config: Mapping[str, int] | None = None, wait: bool = True,
        logs: bool = True,
    ) -> dict[str, Any] | None:
        """Start a transform job of ``data`` (an S3 prefix, or a manifest with
        ``data_type="ManifestFile"``); with ``wait``, block until it ends and return its
        description (``TransformJobFailedError`` when it failed)."""
        request = self.transform_job_request(
            data, data_type, content_type, compression_type, split_type, job_name,
            input_filter, output_filter, join_source, model_client_config)
        self.session.sagemaker.create_transform_job(**request)
        self.latest_transform_job = request["TransformJobName"]
        return self.wait(logs=logs) if wait else None

    def _job_name(self) -> str:
        if self.latest_transform_job is None:
            raise ValueError("no transform job yet: call transform() or Transformer.attach()")
        return self.latest_transform_job

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Block until the latest job ends; its description. ``logs`` prints progress."""
        import io

        return wait_for_transform_job(self.session, self._job_name(),
                                      out=None if logs else io.StringIO())

    def describe(self) -> dict[str, Any]:
        """``DescribeTransformJob`` of the latest job."""
        return self.session.sagemaker.describe_transform_job(
            TransformJobName=self._job_name())

    def stop_transform_job(self, wait: bool = True) -> None:
        """``StopTransformJob`` on the latest job; with ``wait`` until it is ``Stopped``."""
        self.session.sagemaker.stop_transform_job(TransformJobName=self._job_name())
        if wait:
            self.wait(logs=False)

    @classmethod
    def attach(cls, transform_job_name: str, session: Session | None = None) -> Transformer:
        """A transformer for an existing job, its settings read from the job."""
        session = session or Session()
        job = session.sagemaker.describe_transform_job(TransformJobName=transform_job_name)
        output = job.get("TransformOutput", {})
        transformer = cls(
            job["ModelName"], job["TransformResources"]["InstanceCount"],
            job["TransformResources"]["InstanceType"], strategy=job.get("BatchStrategy"),
            assemble_with=output.get("AssembleWith"), output_path=output.get("S3OutputPath"),
            accept=output.get("Accept"),
            max_concurrent_transforms=job.get("MaxConcurrentTransforms"),
            max_payload=job.get("MaxPayloadInMB"), env=job.get("Environment"),
            session=session)
        transformer.latest_transform_job = transform_job_name
        return transformer


__all__ = ["TransformJobFailedError", "Transformer", "wait_for_transform_job"]
