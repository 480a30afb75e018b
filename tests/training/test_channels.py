"""Input channels delivered to one instance: which objects, File, Pipe and FastFile modes."""

from __future__ import annotations

import gzip
import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openmaker.core.errors import ValidationException
from openmaker.formats.recordio import read_records
from openmaker.storage.local import LocalObjectStore
from openmaker.training.channels import (
    ChannelSpec,
    FastFileChannel,
    ObjectRef,
    PipeChannel,
    deliver_channel,
    epoch_objects,
    list_channel_objects,
    materialise,
    resolve_channel_objects,
)
from openmaker.training.contract import InstanceLayout, fifo_path

BUCKET = "bucket"


def channel(uri: str, **options: Any) -> dict[str, Any]:
    """An InputDataConfig entry; S3DataSource fields and channel fields mixed in options."""
    source_fields = {"S3DataType", "S3DataDistributionType", "AttributeNames"}
    source = {"S3Uri": uri, "S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}
    source.update({k: v for k, v in options.items() if k in source_fields})
    entry: dict[str, Any] = {"ChannelName": "train", "DataSource": {"S3DataSource": source}}
    entry.update({k: v for k, v in options.items() if k not in source_fields})
    return entry


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "storage", fsync=False)
    store.create_bucket(BUCKET)
    yield store
    store.close()


@pytest.fixture
def layout(tmp_path: Path) -> InstanceLayout:
    layout = InstanceLayout(tmp_path / "work", 1)
    layout.create()
    return layout


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())  # other areas' long-lived threads are not ours
    yield
    leftover = [t.name for t in threading.enumerate()
                if t.name.startswith("openmaker-") and t not in before]
    assert not leftover, f"threads left running: {leftover}"


def put(store: LocalObjectStore, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        store.put_object(BUCKET, key, body)


class FifoReader:
    """Reads a FIFO to end of file in a thread, so a broken server fails the test instead of
    hanging it."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self.limit = limit
        self.data = b""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 5
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        with open(self.path, "rb") as file:
            self.data = file.read() if self.limit is None else file.read(self.limit)

    def result(self, timeout: float = 5) -> bytes:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"reading {self.path} did not finish"
        return self.data


def read_fifo(path: Path) -> bytes:
    return FifoReader(path).result()


# -- which objects ---------------------------------------------------------------------------
NESTED = {
    "data/train/a.csv": b"1,2\n",
    "data/train/sub/b.csv": b"3,4\n",
    "data/train/sub/deeper/c.csv": b"5,6\n",
    "data/train2/d.csv": b"7,8\n",
    "data/training.csv": b"9,10\n",
    "data/other/e.csv": b"11,12\n",
}


def test_s3prefix_folder_delivers_every_object_under_it_with_relative_paths(store) -> None:
    put(store, NESTED)
    refs = resolve_channel_objects(store, channel(f"s3://{BUCKET}/data/train/"))
    assert [(r.key, r.relative_path, r.size) for r in refs] == [
        ("data/train/a.csv", "a.csv", 4),
        ("data/train/sub/b.csv", "sub/b.csv", 4),
        ("data/train/sub/deeper/c.csv", "sub/deeper/c.csv", 4),
    ]


def test_s3prefix_is_a_plain_key_prefix_not_only_a_folder(store) -> None:
    put(store, NESTED)
    refs = resolve_channel_objects(store, channel(f"s3://{BUCKET}/data/train"))
    assert [r.relative_path for r in refs] == [
        "train/a.csv", "train/sub/b.csv", "train/sub/deeper/c.csv", "train2/d.csv",
        "training.csv",
    ]


def test_s3prefix_pages_through_long_listings_and_skips_folder_markers(store) -> None:
    put(store, {f"many/{i:04d}": b"x" for i in range(1205)})
    put(store, {"many/zz-folder/": b""})
    refs = resolve_channel_objects(store, channel(f"s3://{BUCKET}/many/"))
    assert len(refs) == 1205
    assert refs[-1].key == "many/1204"


def test_manifest_file_lists_keys_relative_to_its_prefix(store) -> None:
    put(store, NESTED)
    manifest = [{"prefix": f"s3://{BUCKET}/data/"}, "train2/d.csv", "train/a.csv"]
    put(store, {"manifests/train.manifest": json.dumps(manifest).encode()})
    refs = resolve_channel_objects(
        store, channel(f"s3://{BUCKET}/manifests/train.manifest", S3DataType="ManifestFile")
    )
    assert [(r.key, r.relative_path) for r in refs] == [
        ("data/train2/d.csv", "train2/d.csv"), ("data/train/a.csv", "train/a.csv"),
    ]


def test_malformed_manifest_is_refused_by_name(store) -> None:
    put(store, {"bad.manifest": b'["no prefix object"]'})
    with pytest.raises(ValidationException, match="bad.manifest.*must be a JSON list"):
        resolve_channel_objects(store, channel(f"s3://{BUCKET}/bad.manifest",
                                               S3DataType="ManifestFile"))


def test_empty_channel_raises_sagemakers_error_naming_channel_and_uri(store) -> None:
    put(store, NESTED)
    with pytest.raises(ValidationException) as info:
        resolve_channel_objects(store, channel(f"s3://{BUCKET}/nothing-here/"))
    assert 'No S3 objects found under S3 URL "s3://bucket/nothing-here/"' in info.value.message
    assert "'train'" in info.value.message


def test_sharded_by_s3_key_deals_every_object_to_exactly_one_of_three_instances(store) -> None:
    put(store, {f"shards/part-{i:02d}": b"x" for i in range(10)})
    config = channel(f"s3://{BUCKET}/shards/", S3DataDistributionType="ShardedByS3Key")
    shards = [
        [r.key for r in resolve_channel_objects(store, config, instance_index=i,
                                                instance_count=3)]
        for i in (1, 2, 3)
    ]
    keys = [key for shard in shards for key in shard]
    assert sorted(keys) == [f"shards/part-{i:02d}" for i in range(10)]
    assert len(set(keys)) == 10
    assert [len(shard) for shard in shards] == [4, 3, 3]
    assert shards[0][:2] == ["shards/part-00", "shards/part-03"]  # round-robin in key order
    # Fully replicated: every instance gets everything.
    full = resolve_channel_objects(store, channel(f"s3://{BUCKET}/shards/"),
                                   instance_index=2, instance_count=3)
    assert len(full) == 10


def test_sharding_with_a_seed_changes_per_epoch_but_still_partitions(store) -> None:
    put(store, {f"s/{i:02d}": b"x" for i in range(12)})
    spec = ChannelSpec.from_config(channel(f"s3://{BUCKET}/s/",
                                           S3DataDistributionType="ShardedByS3Key",
                                           ShuffleConfig={"Seed": 11}))
    objects = list_channel_objects(store, spec)
    by_epoch = []
    for epoch in (0, 1):
        shards = [{r.key for r in epoch_objects(objects, spec, epoch=epoch, instance_index=i,
                                                instance_count=3)} for i in (1, 2, 3)]
        assert set().union(*shards) == {r.key for r in objects}
        assert sum(len(s) for s in shards) == 12
        by_epoch.append(shards)
    assert by_epoch[0] != by_epoch[1]


def test_more_instances_than_objects_leaves_some_with_nothing(store) -> None:
    put(store, {"two/a": b"a", "two/b": b"b"})
    config = channel(f"s3://{BUCKET}/two/", S3DataDistributionType="ShardedByS3Key")
    assert resolve_channel_objects(store, config, instance_index=3, instance_count=3) == []


# -- File mode -------------------------------------------------------------------------------
def test_file_mode_copies_objects_keeping_their_folders(store, layout) -> None:
    put(store, NESTED)
    big = os.urandom(600_000)
    put(store, {"data/train/big.bin": big})
    refs = resolve_channel_objects(store, channel(f"s3://{BUCKET}/data/train/"))
    copied = materialise(store, refs, layout, "train")
    root = layout.channel_dir("train")
    assert copied == 12 + len(big)
    assert (root / "a.csv").read_bytes() == b"1,2\n"
    assert (root / "sub" / "deeper" / "c.csv").read_bytes() == b"5,6\n"
    assert (root / "big.bin").read_bytes() == big
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == [
        "a.csv", "b.csv", "big.bin", "c.csv"]


def test_file_mode_does_not_decompress_gzip(store, layout) -> None:
    packed = gzip.compress(b"1,2\n")
    put(store, {"gz/a.csv.gz": packed})
    deliver_channel(store, channel(f"s3://{BUCKET}/gz/", CompressionType="Gzip"), layout)
    assert (layout.channel_dir("train") / "a.csv.gz").read_bytes() == packed


def test_file_mode_refuses_keys_that_would_escape_the_channel_directory(store, layout) -> None:
    for relative in ("../evil", "a/../../evil", "/abs", "a//b"):
        with pytest.raises(ValidationException, match="cannot be delivered as a file"):
            materialise(store, [ObjectRef(BUCKET, "k", relative)], layout, "train")
    assert not (layout.input_data_dir / "evil").exists()


# -- Pipe mode -------------------------------------------------------------------------------
def test_pipe_mode_streams_epochs_into_fresh_fifos(store, layout) -> None:
    objects = {f"p/{i}.csv": f"{i},{i}\n".encode() * 3 for i in range(4)}
    big = os.urandom(3 * 1024 * 1024)  # larger than the pipe: partial writes
    put(store, objects)
    put(store, {"p/9.bin": big})
    expected = b"".join(objects.values()) + big
    with PipeChannel(store, channel(f"s3://{BUCKET}/p/"), layout) as pipe:
        first = fifo_path(layout, "train", 0)
        assert stat.S_ISFIFO(first.stat().st_mode)
        assert read_fifo(first) == expected
        assert read_fifo(fifo_path(layout, "train", 1)) == expected
        assert not first.exists()
        assert pipe.error is None
    assert not fifo_path(layout, "train", 2).exists()


def test_pipe_mode_recordio_wraps_each_gzip_object_as_one_record(store, layout) -> None:
    payloads = [b"alpha\nbeta\n", b"gamma", os.urandom(70_001)]
    put(store, {f"z/{i}.gz": gzip.compress(body) for i, body in enumerate(payloads)})
    # A multi-member gzip object decompresses to the members joined.
    put(store, {"z/3.gz": gzip.compress(b"one,") + gzip.compress(b"two")})
    config = channel(f"s3://{BUCKET}/z/", CompressionType="Gzip", RecordWrapperType="RecordIO",
                     InputMode="Pipe")
    pipe = deliver_channel(store, config, layout)
    assert isinstance(pipe, PipeChannel)
    try:
        for epoch in (0, 1):
            data = read_fifo(fifo_path(layout, "train", epoch))
            assert read_records(data) == [*payloads, b"one,two"]
    finally:
        pipe.stop()


def test_pipe_mode_gzip_without_wrapper_concatenates_decompressed_objects(store, layout) -> None:
    put(store, {"g/a.gz": gzip.compress(b"1\n2\n"), "g/b.gz": gzip.compress(b"3\n")})
    config = channel(f"s3://{BUCKET}/g/", CompressionType="Gzip")
    with PipeChannel(store, config, layout):
        assert read_fifo(fifo_path(layout, "train", 0)) == b"1\n2\n3\n"


def test_pipe_mode_shuffle_is_reproducible_per_seed_and_epoch(store, layout, tmp_path) -> None:
    put(store, {f"r/{i:02d}": f"object-{i}".encode() for i in range(8)})
    config = channel(f"s3://{BUCKET}/r/", RecordWrapperType="RecordIO",
                     ShuffleConfig={"Seed": 42})

    def run(work: Path) -> list[list[bytes]]:
        run_layout = InstanceLayout(work, 1)
        with PipeChannel(store, config, run_layout) as pipe:
            epochs = [read_records(read_fifo(fifo_path(run_layout, "train", e)))
                      for e in (0, 1)]
            for epoch, records in enumerate(epochs):
                assert records == [store.get_object(BUCKET, r.key)
                                   for r in pipe.epoch_items(epoch)]
        return epochs

    first, second = run(tmp_path / "one"), run(tmp_path / "two")
    assert first == second
    assert first[0] != first[1]
    assert sorted(first[0]) == sorted(first[1]) == sorted(
        f"object-{i}".encode() for i in range(8))
    assert first[0] != sorted(first[0])


def test_pipe_mode_augmented_manifest_delivers_attributes_as_records(store, layout) -> None:
    images = {"images/1.jpg": b"\xff\xd8jpeg-one", "images/2.jpg": b"\xff\xd8jpeg-two!"}
    put(store, images)
    lines = [
        {"source-ref": f"s3://{BUCKET}/images/1.jpg", "class": 3, "note": "skipped"},
        {"source-ref": f"s3://{BUCKET}/images/2.jpg", "class": "5", "note": "skipped"},
    ]
    put(store, {"aug.jsonl": "\n".join(json.dumps(line) for line in lines).encode() + b"\n"})
    config = channel(f"s3://{BUCKET}/aug.jsonl", S3DataType="AugmentedManifestFile",
                     AttributeNames=["source-ref", "class"], RecordWrapperType="RecordIO",
                     InputMode="Pipe")
    with PipeChannel(store, config, layout) as pipe:
        records = read_records(read_fifo(fifo_path(layout, "train", 0)))
        assert pipe.error is None
    assert records == [images["images/1.jpg"], b"3", images["images/2.jpg"], b"5"]


def test_augmented_manifest_line_without_an_attribute_is_refused(store) -> None:
    put(store, {"aug.jsonl": b'{"source-ref": "s3://bucket/x"}\n'})
    config = channel(f"s3://{BUCKET}/aug.jsonl", S3DataType="AugmentedManifestFile",
                     AttributeNames=["source-ref", "class"])
    with pytest.raises(ValidationException, match="line 1 .* no attribute 'class'"):
        resolve_channel_objects(store, config)


def test_pipe_mode_reader_closing_early_moves_on_to_the_next_epoch(store, layout) -> None:
    put(store, {"e/big": os.urandom(4 * 1024 * 1024)})
    with PipeChannel(store, channel(f"s3://{BUCKET}/e/"), layout) as pipe:
        partial = FifoReader(fifo_path(layout, "train", 0), limit=1000).result()
        assert len(partial) == 1000
        assert len(read_fifo(fifo_path(layout, "train", 1))) == 4 * 1024 * 1024
        assert pipe.error is None


def test_pipe_mode_failure_is_kept_and_ends_the_epoch(store, layout) -> None:
    put(store, {"bad/a.gz": b"this is not gzip"})
    config = channel(f"s3://{BUCKET}/bad/", CompressionType="Gzip")
    with PipeChannel(store, config, layout) as pipe:
        assert read_fifo(fifo_path(layout, "train", 0)) == b""
        deadline = time.monotonic() + 5
        while pipe.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "not valid gzip" in str(pipe.error)


def test_pipe_stop_without_a_reader_returns_promptly(store, layout) -> None:
    put(store, {"s/a": b"data"})
    pipe = PipeChannel(store, channel(f"s3://{BUCKET}/s/"), layout).start()
    time.sleep(0.1)
    started = time.monotonic()
    pipe.stop()
    assert time.monotonic() - started < 1
    assert not fifo_path(layout, "train", 0).exists()


def test_pipe_stop_releases_a_reader_in_the_middle_of_an_epoch(store, layout) -> None:
    put(store, {"m/big": os.urandom(8 * 1024 * 1024)})
    pipe = PipeChannel(store, channel(f"s3://{BUCKET}/m/"), layout).start()
    path = fifo_path(layout, "train", 0)
    with open(path, "rb") as file:
        assert len(file.read(100)) == 100
        started = time.monotonic()
        pipe.stop()
        assert time.monotonic() - started < 1
        file.read()  # end of file, not a hang
    assert not path.exists()


# -- FastFile mode ---------------------------------------------------------------------------
def test_fastfile_objects_appear_at_once_and_stream_when_opened(store, layout) -> None:
    put(store, NESTED)
    config = channel(f"s3://{BUCKET}/data/train/", InputMode="FastFile")
    fast = deliver_channel(store, config, layout)
    assert isinstance(fast, FastFileChannel)
    root = layout.channel_dir("train")
    try:
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*.csv")) == [
            "a.csv", "sub/b.csv", "sub/deeper/c.csv"]
        assert stat.S_ISFIFO((root / "a.csv").stat().st_mode)  # nothing fetched yet
        assert read_fifo(root / "sub" / "deeper" / "c.csv") == b"5,6\n"
        assert read_fifo(root / "a.csv") == b"1,2\n"
        assert read_fifo(root / "a.csv") == b"1,2\n"  # each open streams from the start
    finally:
        fast.stop()
    assert not (root / "a.csv").exists()


def test_fastfile_serves_several_files_open_at_once(store, layout) -> None:
    bodies = {f"ff/{i}": os.urandom(300_000) for i in range(3)}
    put(store, bodies)
    refs = resolve_channel_objects(store, channel(f"s3://{BUCKET}/ff/"))
    with FastFileChannel(store, refs, layout, "train"):
        root = layout.channel_dir("train")
        files = [open(root / str(i), "rb") for i in range(3)]  # noqa: SIM115
        try:
            # Interleaved reads: no file waits for another to be read to the end.
            heads = [file.read(1000) for file in files]
            rests = [file.read() for file in files]
        finally:
            for file in files:
                file.close()
    for i in range(3):
        assert heads[i] + rests[i] == bodies[f"ff/{i}"]
