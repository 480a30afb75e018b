"""CheckpointConfig: restoring S3Uri into the checkpoint folder and syncing it back."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openmaker.core.errors import ValidationException
from openmaker.storage.base import ObjectStore
from openmaker.storage.local import LocalObjectStore
from openmaker.storage.uri import S3Uri
from openmaker.training import checkpoints
from openmaker.training.checkpoints import CheckpointSync, restore_checkpoints

BUCKET = "bucket"
URI = S3Uri(BUCKET, "jobs/ckpt")  # no trailing slash: taken as a folder all the same


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalObjectStore]:
    store = LocalObjectStore(tmp_path / "storage", fsync=False)
    store.create_bucket(BUCKET)
    yield store
    store.close()


def keys(store: ObjectStore, prefix: str = "jobs/ckpt/") -> dict[str, bytes]:
    page = store.list_objects(BUCKET, prefix=prefix)
    return {info.key: store.get_object(BUCKET, info.key) for info in page.objects}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def settle() -> None:
    """Let files written just now leave the window in which they are uploaded twice."""
    time.sleep(checkpoints.RACY_WINDOW_NS / 1e9 + 0.02)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class CountingStore(LocalObjectStore):
    """Records every key put, to tell what was uploaded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.puts: list[str] = []

    def put_object(self, bucket, key, body, **kwargs):  # type: ignore[override]
        info = super().put_object(bucket, key, body, **kwargs)
        self.puts.append(key)
        return info


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[CountingStore]:
    store = CountingStore(tmp_path / "counted", fsync=False)
    store.create_bucket(BUCKET)
    yield store
    store.close()


def test_restore_round_trip_with_nested_folders(store: LocalObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write(source / "model.pt", b"weights")
    write(source / "epoch-3" / "optimizer" / "state.bin", b"\x00\x01" * 1000)
    settle()
    sync = CheckpointSync(store, URI, [source])
    assert sync.sync_now() == 2
    assert set(keys(store)) == {"jobs/ckpt/model.pt", "jobs/ckpt/epoch-3/optimizer/state.bin"}

    target = tmp_path / "restored"
    assert restore_checkpoints(store, URI, target) == 2
    assert (target / "model.pt").read_bytes() == b"weights"
    assert (target / "epoch-3" / "optimizer" / "state.bin").read_bytes() == b"\x00\x01" * 1000
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["model.pt", "state.bin"]


def test_restore_of_an_empty_prefix_restores_nothing(store: LocalObjectStore,
                                                     tmp_path: Path) -> None:
    store.put_object(BUCKET, "jobs/ckpt-other/x", b"not ours")  # shares the string prefix only
    assert restore_checkpoints(store, URI, tmp_path / "restored") == 0
    assert (tmp_path / "restored").is_dir()
    assert list((tmp_path / "restored").iterdir()) == []


def test_restore_replaces_a_file_already_there(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_object(BUCKET, "jobs/ckpt/model.pt", b"from s3")
    target = write(tmp_path / "restored" / "model.pt", b"stale local copy")
    assert restore_checkpoints(store, URI, tmp_path / "restored") == 1
    assert target.read_bytes() == b"from s3"
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]  # no temporary left


class ListsExtraKey(LocalObjectStore):
    """Lists one more key than it holds: S3 stores keys the local store refuses ("..")."""

    extra: str = ""

    def list_objects(self, bucket, prefix="", delimiter=None, start_after=None,
                     max_keys=1000):  # type: ignore[override]
        page = super().list_objects(bucket, prefix, delimiter, start_after, max_keys)
        fake = dataclasses.replace(page.objects[0], key=self.extra)
        return dataclasses.replace(page, objects=sorted([*page.objects, fake],
                                                        key=lambda info: info.key))


@pytest.mark.parametrize("bad", ["jobs/ckpt/../escape", "jobs/ckpt/a/../../escape",
                                 "jobs/ckpt//abs", "jobs/ckpt/./x", "jobs/ckpt/.."])
def test_restore_refuses_keys_that_leave_the_folder(tmp_path: Path, bad: str) -> None:
    store = ListsExtraKey(tmp_path / "storage", fsync=False)
    store.extra = bad
    store.create_bucket(BUCKET)
    store.put_object(BUCKET, "jobs/ckpt/fine.bin", b"ok")
    target = tmp_path / "restored"
    with pytest.raises(ValidationException) as caught:
        restore_checkpoints(store, URI, target)
    store.close()
    assert "CheckpointConfig.S3Uri" in caught.value.message
    assert not (tmp_path / "escape").exists()
    assert not (target / "fine.bin").exists()  # every key is checked before any write


def test_restore_refuses_a_key_through_a_symlink_out(store: LocalObjectStore,
                                                    tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "restored"
    target.mkdir()
    os.symlink(outside, target / "link")
    store.put_object(BUCKET, "jobs/ckpt/link/x", b"evil")
    with pytest.raises(ValidationException):
        restore_checkpoints(store, URI, target)
    assert list(outside.iterdir()) == []


def test_background_sync_uploads_new_and_changed_files(store: LocalObjectStore,
                                                       tmp_path: Path) -> None:
    local = tmp_path / "checkpoints"
    local.mkdir()
    sync = CheckpointSync(store, URI, [local], interval_seconds=0.1).start()
    try:
        write(local / "step-1.pt", b"one")
        wait_for(lambda: keys(store).get("jobs/ckpt/step-1.pt") == b"one")
        write(local / "nested" / "deeper" / "step-2.pt", b"two")
        wait_for(lambda: keys(store).get("jobs/ckpt/nested/deeper/step-2.pt") == b"two")
        write(local / "step-1.pt", b"one, rewritten")
        wait_for(lambda: keys(store).get("jobs/ckpt/step-1.pt") == b"one, rewritten")
    finally:
        sync.stop()


def test_stop_does_a_final_sync(store: LocalObjectStore, tmp_path: Path) -> None:
    local = tmp_path / "checkpoints"
    local.mkdir()
    sync = CheckpointSync(store, URI, [local], interval_seconds=3600).start()
    write(local / "last.pt", b"written just before the end")
    sync.stop()
    assert keys(store) == {"jobs/ckpt/last.pt": b"written just before the end"}


def test_unchanged_files_are_not_uploaded_again(counting: CountingStore, tmp_path: Path) -> None:
    local = tmp_path / "checkpoints"
    write(local / "a.pt", b"a")
    write(local / "sub" / "b.pt", b"b")
    settle()
    sync = CheckpointSync(counting, URI, [local])
    assert sync.sync_now() == 2
    assert sync.sync_now() == 0
    write(local / "a.pt", b"a changed")
    settle()
    assert sync.sync_now() == 1
    assert sync.sync_now() == 0
    assert sorted(counting.puts) == ["jobs/ckpt/a.pt", "jobs/ckpt/a.pt", "jobs/ckpt/sub/b.pt"]


def test_restored_files_are_not_uploaded_back(counting: CountingStore, tmp_path: Path) -> None:
    counting.put_object(BUCKET, "jobs/ckpt/model.pt", b"resumed")
    counting.put_object(BUCKET, "jobs/ckpt/dir/opt.bin", b"state")
    counting.puts.clear()
    dirs = [tmp_path / "algo-1", tmp_path / "algo-2"]
    for directory in dirs:
        assert restore_checkpoints(counting, URI, directory) == 2
    sync = CheckpointSync(counting, URI, dirs)
    assert sync.sync_now() == 0
    write(dirs[1] / "model.pt", b"trained further")
    settle()
    assert sync.sync_now() == 1
    assert counting.get_object(BUCKET, "jobs/ckpt/model.pt") == b"trained further"


def test_a_file_changing_while_read_is_not_uploaded_torn(store: LocalObjectStore,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "checkpoints"
    path = write(local / "big.pt", b"x" * 100)
    settle()
    real = checkpoints._stable_chunks

    def appending(file: Path, signature):  # the writer appends while the sync reads
        for number, chunk in enumerate(real(file, signature)):
            if number == 0:
                with open(file, "ab") as handle:
                    handle.write(b"more")
            yield chunk

    monkeypatch.setattr(checkpoints, "_stable_chunks", appending)
    sync = CheckpointSync(store, URI, [local])
    assert sync.sync_now() == 0
    assert keys(store) == {}
    monkeypatch.setattr(checkpoints, "_stable_chunks", real)
    settle()
    assert sync.sync_now() == 1
    assert keys(store) == {"jobs/ckpt/big.pt": path.read_bytes()}


def test_upload_errors_are_retried_and_do_not_end_the_thread(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "storage", fsync=False)
    local = tmp_path / "checkpoints"
    write(local / "model.pt", b"m")
    sync = CheckpointSync(store, URI, [local], interval_seconds=0.05).start()
    try:
        time.sleep(0.3)  # the bucket does not exist yet: every pass fails
        assert sync._thread is not None and sync._thread.is_alive()
        store.create_bucket(BUCKET)
        wait_for(lambda: keys(store).get("jobs/ckpt/model.pt") == b"m")
    finally:
        sync.stop()
        store.close()


def test_every_instance_syncs_to_the_same_prefix(store: LocalObjectStore,
                                                 tmp_path: Path) -> None:
    first, second = tmp_path / "algo-1", tmp_path / "algo-2"
    write(first / "algo-1.pt", b"1")
    write(second / "algo-2.pt", b"2")
    sync = CheckpointSync(store, S3Uri(BUCKET, "jobs/ckpt/"), [first, second])
    sync.stop()  # never started: stop still does the final sync
    assert keys(store) == {"jobs/ckpt/algo-1.pt": b"1", "jobs/ckpt/algo-2.pt": b"2"}
