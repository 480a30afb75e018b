"""``openmaker.Estimator``: training jobs in the SageMaker Python SDK's shape.

An estimator packages the user's script into ``sourcedir.tar.gz``, uploads it to the
default bucket, calls ``CreateTrainingJob`` with the hyperparameters a SageMaker framework
estimator sends, and while waiting streams the job's CloudWatch log lines to stdout, as
``sagemaker.estimator.Framework.fit`` does.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from openmaker.sdk.session import Session

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
POLL_SECONDS = 0.5
VOLUME_SIZE_GB = 30
# Keys the SDK adds to a framework estimator's hyperparameters; not the user's own.
RESERVED_HYPERPARAMETERS = ("sagemaker_program", "sagemaker_submit_directory",
                            "sagemaker_region", "sagemaker_container_log_level",
                            "sagemaker_job_name")
_JOB_NAME_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}$")
_IMAGE = re.compile(r"^(.+/)?([^:/@]+)(:[^:]+|@.+)?$")


class TrainingJobFailedError(RuntimeError):
    """A training job ended ``Failed``; ``failure_reason`` is its ``FailureReason``."""

    def __init__(self, job_name: str, failure_reason: str) -> None:
        super().__init__(f"Training job {job_name} failed. Reason: {failure_reason}")
        self.job_name = job_name
        self.failure_reason = failure_reason


@dataclass
class TrainingInput:
    """One input channel, as ``sagemaker.inputs.TrainingInput``: an S3 location and how to
    deliver it. ``shuffle_config`` is a seed (or anything with a ``seed`` attribute)."""

    s3_data: str
    distribution: str | None = None
    compression: str | None = None
    content_type: str | None = None
    record_wrapping: str | None = None
    s3_data_type: str = "S3Prefix"
    input_mode: str | None = None
    shuffle_config: Any = None

    @property
    def config(self) -> dict[str, Any]:
        """The channel's ``InputDataConfig`` entry, without ``ChannelName``."""
        source = {"S3DataType": self.s3_data_type, "S3Uri": self.s3_data,
                  "S3DataDistributionType": self.distribution or "FullyReplicated"}
        config: dict[str, Any] = {"DataSource": {"S3DataSource": source}}
        if self.compression:
            config["CompressionType"] = self.compression
        if self.content_type:
            config["ContentType"] = self.content_type
        if self.record_wrapping:
            config["RecordWrapperType"] = self.record_wrapping
        if self.input_mode:
            config["InputMode"] = self.input_mode
        if self.shuffle_config is not None:
            seed = getattr(self.shuffle_config, "seed", self.shuffle_config)
            config["ShuffleConfig"] = {"Seed": int(seed)}
        return config


def default_bucket(session: Session) -> str:
    """``openmaker-<account>-<region>``, created if missing (the SageMaker SDK's is
    ``sagemaker-<region>-<account>``); estimators and models upload code there."""
    bucket = f"openmaker-{session.account_id}-{session.region}"
    session.make_bucket(bucket)
    return bucket


def tag_list(tags: list[dict[str, str]] | Mapping[str, str] | None) -> list[dict[str, str]]:
    """Tags as the API takes them, from a ``{key: value}`` mapping or a list of them."""
    if isinstance(tags, Mapping):
        return [{"Key": k, "Value": v} for k, v in tags.items()]
    return list(tags or [])


def base_name_from_image(image_uri: str) -> str:
    """The repository name of an image URI, the SDK's default job-name base."""
    match = _IMAGE.match(image_uri)
    return match.group(2) if match else "training-job"


def name_from_base(base: str, max_length: int = 63) -> str:
    """``<base>-YYYY-MM-DD-HH-MM-SS-mmm``, trimming ``base`` to fit, as the SDK names jobs."""
    moment = time.time()
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(moment))
    stamp += f"-{int(moment * 1000) % 1000:03d}"
    return f"{base[:max_length - len(stamp) - 1]}-{stamp}"


def _channels(inputs: Any) -> list[dict[str, Any]]:
    """``InputDataConfig`` from an s3:// URI, a TrainingInput, or a dict of channels (the
    first two become the ``training`` channel, as in the SDK)."""
    if inputs is None:
        return []
    if isinstance(inputs, str | TrainingInput):
        inputs = {"training": inputs}
    if not isinstance(inputs, Mapping):
        raise TypeError("inputs must be an s3:// URI, a TrainingInput, or a dict of channel "
                        f"name to either; got {type(inputs).__name__}")
    channels = []
    for name, value in inputs.items():
        if isinstance(value, str):
            if not value.startswith("s3://"):
                raise ValueError(f"channel {name!r}: {value!r} is not an s3:// URI; upload "
                                 "local data first (Session.upload)")
            value = TrainingInput(value)
        if not isinstance(value, TrainingInput):
            raise TypeError(f"channel {name!r}: expected an s3:// URI or a TrainingInput, got "
                            f"{type(value).__name__}")
        channels.append({"ChannelName": name, **value.config})
    return channels


def _source_archive(entry_point: str, source_dir: str | None) -> tuple[bytes, str]:
    """``sourcedir.tar.gz`` bytes and the program's path inside it: all of ``source_dir``,
    or the entry point's file alone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if source_dir:
            root = Path(source_dir)
            if not root.is_dir():
                raise FileNotFoundError(f"source_dir {source_dir} is not a directory")
            if not (root / entry_point).is_file():
                raise FileNotFoundError(f"entry_point {entry_point} is not a file in "
                                        f"source_dir {source_dir}")
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    tar.add(path, arcname=path.relative_to(root).as_posix())
            program = Path(entry_point).as_posix()
        else:
            path = Path(entry_point)
            if not path.is_file():
                raise FileNotFoundError(f"entry_point {entry_point} is not a file")
            tar.add(path, arcname=path.name)
            program = path.name
    return buffer.getvalue(), program


def _encode(value: Any) -> str:
    return json.dumps(value)


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


class TrainingJobLogs:
    """New lines of every ``<job>/`` stream in ``/aws/sagemaker/TrainingJobs``, read with
    forward tokens as the SageMaker SDK's log tailer does."""

    def __init__(self, logs_client: Any, job_name: str) -> None:
        self._client = logs_client
        self.job_name = job_name
        self._tokens: dict[str, str | None] = {}

    @property
    def streams(self) -> list[str]:
        """The streams seen so far, one per instance."""
        return sorted(self._tokens)

    def _stream_names(self) -> list[str]:
        names: list[str] = []
        arguments: dict[str, Any] = {"logGroupName": LOG_GROUP,
                                     "logStreamNamePrefix": f"{self.job_name}/"}
        while True:
            try:
                page = self._client.describe_log_streams(**arguments)
            except self._client.exceptions.ResourceNotFoundException:
                return []  # no job has logged yet
            names.extend(s["logStreamName"] for s in page.get("logStreams", []))
            if not page.get("nextToken"):
                return sorted(names)
            arguments["nextToken"] = page["nextToken"]

    def poll(self) -> Iterator[tuple[str, str]]:
        """(stream, message) for each event logged since the last poll."""
        for stream in self._stream_names():
            token = self._tokens.get(stream)
            while True:
                arguments: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream,
                                             "startFromHead": True}
                if token:
                    arguments["nextToken"] = token
                page = self._client.get_log_events(**arguments)
                for event in page["events"]:
                    yield stream, event["message"]
                next_token = page.get("nextForwardToken")
                if not page["events"] or next_token == token:
                    break
                token = next_token
            self._tokens[stream] = token


def follow_training_job(session: Session, job_name: str, *, logs: bool = True,
                        follow: bool = True, out: TextIO | None = None,
                        poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Print the job's log lines (all streams; prefixed by host for several instances) and,
    with ``follow``, keep polling until the job ends. Returns the last description."""
    out = out or sys.stdout
    tail = TrainingJobLogs(session.client("logs"), job_name)

    def drain(several: bool) -> None:
        if not logs:
            return
        for stream, message in tail.poll():
            host = stream.split("/", 1)[-1].rsplit("-", 1)[0]
            print(f"[{host}] {message}" if several else message, file=out)
        out.flush()

    while True:
        job = session.sagemaker.describe_training_job(TrainingJobName=job_name)
        finished = job["TrainingJobStatus"] in TERMINAL_STATUSES
        drain(job["ResourceConfig"].get("InstanceCount", 1) > 1)
        if finished or not follow:
            return job
        time.sleep(poll_seconds)


class Estimator:
    """A training job definition, as ``sagemaker.estimator.Estimator`` / ``Framework``.

    >>> estimator = openmaker.Estimator(SKLEARN_IMAGE, entry_point="train.py",
    ...                                 source_dir="src/", hyperparameters={"epochs": 3})
    >>> estimator.fit({"train": "s3://my-bucket/data/train/"})
    >>> estimator.model_data
    """

    def __init__(
        self,
        image_uri: str,
        role: str | None = None,
        instance_count: int = 1,
        instance_type: str = "ml.m5.large",
        hyperparameters: Mapping[str, Any] | None = None,
        entry_point: str | None = None,
        source_dir: str | None = None,
        output_path: str | None = None,
        max_run: int = 86400,
        input_mode: str = "File",
        environment: Mapping[str, str] | None = None,
        base_job_name: str | None = None,
        tags: list[dict[str, str]] | Mapping[str, str] | None = None,
        session: Session | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        use_spot_instances: bool = False,
        max_wait: int | None = None,
    ) -> None:
        self.image_uri = image_uri
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self._hyperparameters = dict(hyperparameters or {})
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.output_path = output_path
        self.max_run = max_run
        self.input_mode = input_mode
        self.environment = dict(environment or {})
        self.base_job_name = base_job_name
        self.tags = tags
        self._session = session
        self.metric_definitions = metric_definitions
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.checkpoint_local_path = checkpoint_local_path
        self.use_spot_instances = use_spot_instances
        self.max_wait = max_wait
        self._current_job_name: str | None = None

    def __repr__(self) -> str:
        return f"Estimator(image_uri={self.image_uri!r}, job={self._current_job_name!r})"

    # -- configuration --------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The session, created on first use (``OPENMAKER_URL`` or the home's server)."""
        if self._session is None:
            self._session = Session()
        return self._session

    def hyperparameters(self) -> dict[str, str]:
        """The user's hyperparameters JSON-encoded, as a framework estimator sends them."""
        return {str(k): _encode(v) for k, v in self._hyperparameters.items()}

    def set_hyperparameters(self, **values: Any) -> None:
        self._hyperparameters.update(values)

    def default_bucket(self) -> str:
        """``openmaker-<account>-<region>``, created if missing."""
        return default_bucket(self.session)

    def _role(self) -> str:
        return self.role or f"arn:aws:iam::{self.session.account_id}:role/openmaker"

    def _upload_source(self, job_name: str) -> dict[str, str]:
        if not self.entry_point:
            return {}
        if self.source_dir and self.source_dir.startswith("s3://"):
            uri, program = self.source_dir, self.entry_point
        else:
            archive, program = _source_archive(self.entry_point, self.source_dir)
            bucket = self.default_bucket()
            key = f"{job_name}/source/sourcedir.tar.gz"
            self.session.s3.put_object(Bucket=bucket, Key=key, Body=archive)
            uri = f"s3://{bucket}/{key}"
        return {
            "sagemaker_program": _encode(program),
            "sagemaker_submit_directory": _encode(uri),
            "sagemaker_container_log_level": _encode(logging.INFO),
            "sagemaker_job_name": _encode(job_name),
            "sagemaker_region": _encode(self.session.region),
        }

    def training_job_request(self, inputs: Any = None,
                             job_name: str | None = None) -> dict[str, Any]:
        """The ``CreateTrainingJob`` parameters ``fit`` sends (uploading the source)."""
        job_name = job_name or name_from_base(self.base_job_name
                                              or base_name_from_image(self.image_uri))
        output_path = self.output_path or f"s3://{self.default_bucket()}/"
        request: dict[str, Any] = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": {"TrainingImage": self.image_uri,
                                       "TrainingInputMode": self.input_mode},
            "RoleArn": self._role(),
            "HyperParameters": {**self.hyperparameters(), **self._upload_source(job_name)},
            "OutputDataConfig": {"S3OutputPath": output_path},
            "ResourceConfig": {"InstanceType": self.instance_type,
                               "InstanceCount": self.instance_count,
                               "VolumeSizeInGB": VOLUME_SIZE_GB},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_run},
        }
        channels = _channels(inputs)
        if channels:
            request["InputDataConfig"] = channels
        if self.environment:
            request["Environment"] = self.environment
        if self.metric_definitions:
            request["AlgorithmSpecification"]["MetricDefinitions"] = self.metric_definitions
        if self.checkpoint_s3_uri:
            request["CheckpointConfig"] = {"S3Uri": self.checkpoint_s3_uri}
            if self.checkpoint_local_path:
                request["CheckpointConfig"]["LocalPath"] = self.checkpoint_local_path
        if self.use_spot_instances:
            request["EnableManagedSpotTraining"] = True
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = self.max_wait or self.max_run
        if self.tags:
            request["Tags"] = tag_list(self.tags)
        return request

    # -- running --------------------------------------------------------------------------
    def fit(self, inputs: Any = None, job_name: str | None = None, wait: bool = True,
            logs: bool = True) -> None:
        """Start a training job on ``inputs`` and, with ``wait``, block until it ends
        (streaming its logs with ``logs``); ``TrainingJobFailedError`` if it fails."""
        request = self.training_job_request(inputs, job_name)
        self.session.sagemaker.create_training_job(**request)
        self._current_job_name = request["TrainingJobName"]
        if wait:
            self.wait(logs=logs)

    @property
    def latest_training_job(self) -> str | None:
        """The name of the job this estimator last started or attached to."""
        return self._current_job_name

    def _job_name(self) -> str:
        if self._current_job_name is None:
            raise ValueError("no training job yet: call fit() or Estimator.attach() first")
        return self._current_job_name

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Poll until the job ends, printing new log lines with ``logs``; returns its
        description, or raises ``TrainingJobFailedError`` when it failed."""
        job = follow_training_job(self.session, self._job_name(), logs=logs)
        if job["TrainingJobStatus"] == "Failed":
            raise TrainingJobFailedError(job["TrainingJobName"],
                                         job.get("FailureReason", "(no reason given)"))
        return job

    def logs(self) -> None:
        """Print the latest job's log lines, following them until the job ends."""
        follow_training_job(self.session, self._job_name())

    def describe(self) -> dict[str, Any]:
        """``DescribeTrainingJob`` of the latest job."""
        return self.session.sagemaker.describe_training_job(TrainingJobName=self._job_name())

    def stop(self) -> None:
        """``StopTrainingJob`` on the latest job; it ends ``Stopped``."""
        self.session.sagemaker.stop_training_job(TrainingJobName=self._job_name())

    @property
    def model_data(self) -> str | None:
        """``s3://.../model.tar.gz`` of the latest job once it has one, else None."""
        uri = self.describe().get("ModelArtifacts", {}).get("S3ModelArtifacts")
        return uri or None

    def create_model(self, entry_point: str | None = None, source_dir: str | None = None,
                     image_uri: str | None = None, env: Mapping[str, str] | None = None,
                     name: str | None = None, role: str | None = None,
                     predictor_cls: type | None = None):
        """An ``openmaker.Model`` of the latest job's ``model.tar.gz``, served by the
        training image (built-in algorithms serve with it). A script-mode job's code is
        reused for serving unless another ``entry_point`` is given."""
        from openmaker.sdk.model import Model
        from openmaker.sdk.predictor import Predictor

        model_data = self.model_data
        if model_data is None:
            raise ValueError(f"training job {self._job_name()} has no model artifact yet; "
                             "deploy once it has Completed")
        if entry_point is None and self.entry_point:
            hyperparameters = self.describe().get("HyperParameters", {})
            program = _decode(hyperparameters.get("sagemaker_program", "null"))
            submit = _decode(hyperparameters.get("sagemaker_submit_directory", "null"))
            if isinstance(program, str) and isinstance(submit, str):
                entry_point, source_dir = program, submit
        return Model(image_uri or self.image_uri, model_data=model_data,
                     role=role or self.role, env=env, name=name, session=self.session,
                     predictor_cls=predictor_cls or Predictor, entry_point=entry_point,
                     source_dir=source_dir)

    def deploy(self, initial_instance_count: int = 1, instance_type: str | None = None,
               serializer: Any = None, deserializer: Any = None,
               endpoint_name: str | None = None, entry_point: str | None = None,
               source_dir: str | None = None, image_uri: str | None = None,
               env: Mapping[str, str] | None = None, model_name: str | None = None,
               wait: bool = True, variant_name: str = "AllTraffic",
               data_capture_config: Any = None,
               tags: list[dict[str, str]] | Mapping[str, str] | None = None):
        """Deploy the latest job's model to an endpoint (``Model.deploy``); returns its
        ``Predictor``. The endpoint and model are named after the job by default."""
        job_name = self._job_name()
        model = self.create_model(entry_point=entry_point, source_dir=source_dir,
                                  image_uri=image_uri, env=env,
                                  name=model_name or endpoint_name or job_name)
        return model.deploy(initial_instance_count=initial_instance_count,
                            instance_type=instance_type or self.instance_type,
                            endpoint_name=endpoint_name or model.name,
                            serializer=serializer, deserializer=deserializer, wait=wait,
                            variant_name=variant_name,
                            data_capture_config=data_capture_config,
                            tags=tags if tags is not None else self.tags)

    def transformer(self, instance_count: int, instance_type: str,
                    strategy: str | None = None, assemble_with: str | None = None,
                    output_path: str | None = None, accept: str | None = None,
                    env: Mapping[str, str] | None = None,
                    max_concurrent_transforms: int | None = None,
                    max_payload: int | None = None,
                    tags: list[dict[str, str]] | Mapping[str, str] | None = None,
                    model_name: str | None = None, image_uri: str | None = None,
                    entry_point: str | None = None, source_dir: str | None = None):
        """An ``openmaker.Transformer`` of the latest job's model (created, named after
        the job unless ``model_name``), as ``sagemaker.estimator.Estimator.transformer``."""
        model = self.create_model(entry_point=entry_point, source_dir=source_dir,
                                  image_uri=image_uri, name=model_name or self._job_name())
        return model.transformer(instance_count, instance_type, strategy=strategy,
                                 assemble_with=assemble_with, output_path=output_path,
                                 accept=accept, env=env,
                                 max_concurrent_transforms=max_concurrent_transforms,
                                 max_payload=max_payload,
                                 tags=tags if tags is not None else self.tags)

    @property
    def training_job_analytics(self):
        """The latest job's metrics (``openmaker.TrainingJobAnalytics``)."""
        from openmaker.sdk.analytics import TrainingJobAnalytics

        return TrainingJobAnalytics(self._job_name(), session=self.session)

    @classmethod
    def attach(cls, training_job_name: str, session: Session | None = None) -> Estimator:
        """An estimator rebuilt from an existing job's description, bound to that job."""
        session = session or Session()
        job = session.sagemaker.describe_training_job(TrainingJobName=training_job_name)
        hyperparameters = {k: _decode(v) for k, v in job.get("HyperParameters", {}).items()}
        program = hyperparameters.get("sagemaker_program")
        source = hyperparameters.get("sagemaker_submit_directory")
        base = _JOB_NAME_SUFFIX.sub("", training_job_name)
        algorithm = job["AlgorithmSpecification"]
        resources = job["ResourceConfig"]
        tags = session.sagemaker.list_tags(ResourceArn=job["TrainingJobArn"]).get("Tags")
        estimator = cls(
            image_uri=algorithm["TrainingImage"],
            role=job.get("RoleArn"),
            instance_count=resources.get("InstanceCount", 1),
            instance_type=resources["InstanceType"],
            hyperparameters={k: v for k, v in hyperparameters.items()
                             if k not in RESERVED_HYPERPARAMETERS},
            entry_point=program if isinstance(program, str) else None,
            source_dir=source if isinstance(source, str) else None,
            output_path=job["OutputDataConfig"].get("S3OutputPath"),
            max_run=job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400),
            input_mode=algorithm.get("TrainingInputMode", "File"),
            environment=job.get("Environment"),
            base_job_name=base if base != training_job_name else None,
            tags=tags or None,
            session=session,
            metric_definitions=algorithm.get("MetricDefinitions"),
            checkpoint_s3_uri=(job.get("CheckpointConfig") or {}).get("S3Uri"),
            checkpoint_local_path=(job.get("CheckpointConfig") or {}).get("LocalPath"),
            use_spot_instances=bool(job.get("EnableManagedSpotTraining")),
            max_wait=job.get("StoppingCondition", {}).get("MaxWaitTimeInSeconds"),
        )
        estimator._current_job_name = job["TrainingJobName"]
        return estimator


__all__ = ["Estimator", "TrainingInput", "TrainingJobFailedError", "TrainingJobLogs",
           "base_name_from_image", "follow_training_job", "name_from_base"]
