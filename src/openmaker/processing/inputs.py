"""Delivering a processing job's ``ProcessingInputs`` to one instance, with the training
area's channel machinery (``training/channels.py``): which objects an ``S3Prefix`` or
``ManifestFile`` holds, ``ShardedByS3Key``/``FullyReplicated``, File (copied before the
entrypoint runs) and Pipe (a FIFO streamed while the job reads; ``S3CompressionType: Gzip``
decompressed on the fly).

An input's objects land in its ``LocalPath``. In Pipe mode the FIFO is
``<LocalPath>_<epoch>`` (``/opt/ml/processing/input/data_0``, then ``data_1`` ...), as a
training channel ``input/data/<ch>`` gets ``<ch>_0``; SageMaker does not document the
processing FIFO's name (UNVERIFIED).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openmaker.core import errors
from openmaker.processing.contract import ProcessingLayout
from openmaker.storage.base import ObjectStore
from openmaker.storage.uri import S3Uri
from openmaker.training.channels import (
    ChannelSpec,
    ObjectRef,
    PipeChannel,
    epoch_objects,
    list_channel_objects,
    materialise,
)

_FIFO_BASENAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")


class _InputLayout:
    """What ``deliver_channel`` needs of an instance layout, for one input: the "channel"
    is the ``LocalPath``'s last segment, its directory the ``LocalPath``."""

    def __init__(self, directory: Path, index: int) -> None:
        self.directory = directory
        self.index = index

    @property
    def input_data_dir(self) -> Path:
        return self.directory.parent

    def channel_dir(self, channel: str) -> Path:
        return self.directory


def channel_config(processing_input: Mapping[str, Any]) -> dict[str, Any]:
    """A ``ProcessingInput``'s ``S3Input`` as a training ``InputDataConfig`` entry."""
    s3 = processing_input["S3Input"]
    local = s3["LocalPath"].rstrip("/")
    return {
        "ChannelName": local.rsplit("/", 1)[-1],
        "DataSource": {"S3DataSource": {
            "S3DataType": s3.get("S3DataType", "S3Prefix"),
            "S3Uri": s3["S3Uri"],
            "S3DataDistributionType": s3.get("S3DataDistributionType", "FullyReplicated"),
        }},
        "InputMode": s3.get("S3InputMode", "File"),
        "CompressionType": s3.get("S3CompressionType", "None"),
    }


def _named(processing_input: Mapping[str, Any], exc: errors.AwsError) -> errors.AwsError:
    name = processing_input["InputName"]
    message = getattr(exc, "message", None) or str(exc)
    return errors.ValidationException(f"ProcessingInputs {name!r}: {message}")


def check_input_objects(store: ObjectStore, processing_input: Mapping[str, Any]) -> None:
    """ValidationException naming the input when its S3 source holds no object (or its
    bucket or manifest is missing)."""
    s3 = processing_input["S3Input"]
    spec = ChannelSpec.from_config(channel_config(processing_input))
    try:
        list_channel_objects(store, spec)
    except errors.AwsError as exc:
        if isinstance(exc, errors.ValidationException) and "No S3 objects" not in str(exc):
            raise _named(processing_input, exc) from None
        raise errors.ValidationException(
            f"ProcessingInputs {processing_input['InputName']!r}: no S3 objects found under "
            f"{s3['S3Uri']} ({s3.get('S3DataType', 'S3Prefix')}); make sure the bucket exists "
            "and objects exist under that prefix"
        ) from None


def check_pipe_path(processing_input: Mapping[str, Any]) -> None:
    s3 = processing_input["S3Input"]
    if s3.get("S3InputMode") == "Pipe":
        basename = s3["LocalPath"].rstrip("/").rsplit("/", 1)[-1]
        if not _FIFO_BASENAME.fullmatch(basename) or basename in {".", ".."}:
            raise errors.ValidationException(
                f"ProcessingInputs {processing_input['InputName']!r}: in Pipe mode the last "
                f"segment of S3Input.LocalPath ({basename!r}) names the FIFO and must be 1-64 "
                "of A-Z a-z 0-9 . - _")


def _processing_paths(refs: list[ObjectRef], spec: ChannelSpec) -> list[ObjectRef]:
    """Place ``S3Prefix`` objects as SageMaker processing does (and the SDK's local mode):
    by key relative to the prefix itself, an object named exactly by the URI by its base
    name; a prefix that ends inside a key segment falls back to training's rule (relative
    to the prefix's folder)."""
    if spec.data_type != "S3Prefix":
        return refs
    prefix = S3Uri.parse(spec.uri).key
    placed = []
    for ref in refs:
        if ref.key == prefix:
            relative = prefix.rsplit("/", 1)[-1]
        elif prefix.endswith("/") or not prefix or ref.key[len(prefix)] == "/":
            relative = ref.key[len(prefix):].lstrip("/")
        else:
            relative = ref.relative_path
        placed.append(dataclasses.replace(ref, relative_path=relative))
    return placed


def deliver_input(store: ObjectStore, processing_input: Mapping[str, Any],
                  layout: ProcessingLayout, *, instance_count: int) -> PipeChannel | None:
    """Deliver one input to ``layout``'s instance; for Pipe mode a started channel to
    ``stop()`` at the end of the job, for File mode None (the objects are copied)."""
    directory = layout.container_path(processing_input["S3Input"]["LocalPath"],
                                      "S3Input.LocalPath")
    adapter = _InputLayout(directory, layout.index)
    config = channel_config(processing_input)
    spec = ChannelSpec.from_config(config)
    try:
        objects = _processing_paths(list_channel_objects(store, spec), spec)
        if spec.input_mode == "Pipe":
            return PipeChannel(store, config, adapter,  # type: ignore[arg-type]
                               instance_count=instance_count, objects=objects).start()
        mine = epoch_objects(objects, spec, instance_index=layout.index,
                             instance_count=instance_count)
        directory.mkdir(parents=True, exist_ok=True)
        materialise(store, mine, adapter, spec.name)  # type: ignore[arg-type]
    except errors.AwsError as exc:
        raise _named(processing_input, exc) from None
    return None
