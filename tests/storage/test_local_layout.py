"""LocalObjectStore specifics: the on-disk layout, crash consistency, concurrency, memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from openmaker.core.errors import NoSuchBucket, NoSuchKey
from openmaker.storage import DEFAULT_CONTENT_TYPE, MIN_PART_SIZE
from openmaker.storage import local as local_module
from openmaker.storage.local import LocalObjectStore

SRC = str(Path(__file__).resolve().parents[2] / "src")


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, timeout=timeout,
                          capture_output=True, text=True)


@pytest.fixture
def root(local_store: LocalObjectStore) -> Path:
    local_store.create_bucket("bkt")
    return local_store.root


def test_objects_are_plain_files_and_the_bucket_holds_only_user_data(local_store, root):
    local_store.put_object("bkt", "data/train.csv", b"a,b\n1,2\n", content_type="text/csv")
    local_store.put_object("bkt", "top", b"t")
    assert (root / "bkt" / "data" / "train.csv").read_bytes() == b"a,b\n1,2\n"
    assert files_under(root / "bkt") == ["data/train.csv", "top"]
    system = root / ".openmaker"
    assert sorted(p.name for p in system.iterdir()) == [
        "buckets", "locks", "meta", "overflow", "tmp", "uploads"]
    assert json.loads((system / "buckets" / "bkt.json").read_text())["region"] == "us-east-1"
    assert len(files_under(system / "meta" / "bkt")) == 2
    assert list((system / "tmp").iterdir()) == []
    assert local_store.local_path("bkt", "data/train.csv") == root / "bkt/data/train.csv"
    assert local_store.local_path("bkt", "missing") is None


@pytest.mark.parametrize("key", ["data/", "a//b", "./x", "x/.", "s" * 256, ".openmaker/x"])
def test_keys_without_a_plain_path_go_to_overflow(local_store, root, key):
    local_store.put_object("bkt", key, b"odd")
    assert files_under(root / "bkt") == []
    assert len(files_under(root / ".openmaker" / "overflow" / "bkt")) == 1
    assert local_store.local_path("bkt", key) is None
    local_store.delete_object("bkt", key)
    assert files_under(root / ".openmaker" / "overflow" / "bkt") == []
    assert files_under(root / ".openmaker" / "meta" / "bkt") == []


def test_file_folder_clash_uses_overflow_for_the_blocked_key(local_store, root):
    local_store.put_object("bkt", "a/b", b"file")
    local_store.put_object("bkt", "a/b/c", b"nested")
    assert files_under(root / "bkt") == ["a/b"]
    assert len(files_under(root / ".openmaker" / "overflow" / "bkt")) == 1
    # Once the blocker is gone, the next write of the key takes its plain path again.
    local_store.delete_object("bkt", "a/b")
    local_store.put_object("bkt", "a/b/c", b"nested again")
    assert files_under(root / "bkt") == ["a/b/c"]
    assert files_under(root / ".openmaker" / "overflow" / "bkt") == []
    assert local_store.get_object("bkt", "a/b/c") == b"nested again"


def test_deletes_prune_empty_folders_but_keep_the_bucket(local_store, root):
    local_store.put_object("bkt", "x/y/z/deep", b"1")
    local_store.put_object("bkt", "x/keep", b"2")
    local_store.delete_object("bkt", "x/y/z/deep")
    assert sorted(p.name for p in (root / "bkt" / "x").iterdir()) == ["keep"]
    local_store.delete_object("bkt", "x/keep")
    assert list((root / "bkt").iterdir()) == []
    local_store.put_object("bkt", "x", b"a file where a folder was")
    assert local_store.get_object("bkt", "x") == b"a file where a folder was"


def test_leftover_empty_folder_does_not_block_a_key(local_store, root):
    (root / "bkt" / "made" / "by").mkdir(parents=True)
    local_store.put_object("bkt", "made/by", b"file")
    assert (root / "bkt" / "made" / "by").read_bytes() == b"file"
    assert [o.key for o in local_store.list_objects("bkt").objects] == ["made/by"]
    # Folders holding no file are no common prefix: S3 has no empty folders.
    (root / "bkt" / "empty" / "nested").mkdir(parents=True)
    page = local_store.list_objects("bkt", delimiter="/")
    assert ([o.key for o in page.objects], page.common_prefixes) == ([], ["made/"])
    # A folder with empty subfolders is not empty, so the key goes to the overflow area.
    local_store.put_object("bkt", "empty", b"blocked")
    assert local_store.get_object("bkt", "empty") == b"blocked"
    assert (root / "bkt" / "empty" / "nested").is_dir()


def test_files_copied_in_by_hand_get_metadata(local_store, root):
    (root / "bkt" / "dropped").mkdir()
    (root / "bkt" / "dropped" / "file.bin").write_bytes(b"by hand")
    head = local_store.head_object("bkt", "dropped/file.bin")
    assert head.etag == quoted_md5(b"by hand")
    assert head.content_type == DEFAULT_CONTENT_TYPE and head.size == 7
    assert len(files_under(root / ".openmaker" / "meta" / "bkt")) == 1  # saved for next time
    [listed] = local_store.list_objects("bkt").objects
    assert listed.etag == quoted_md5(b"by hand")
    # Edited in place: the size and mtime change, so the ETag is recomputed.
    with open(root / "bkt" / "dropped" / "file.bin", "ab") as fh:
        fh.write(b", then edited")
    assert local_store.head_object("bkt", "dropped/file.bin").etag == quoted_md5(
        b"by hand, then edited")
    assert local_store.get_object("bkt", "dropped/file.bin") == b"by hand, then edited"


def test_buckets_made_by_hand_are_buckets(local_store, root):
    (root / "by-hand").mkdir()
    (root / "Not_A_Bucket").mkdir()
    assert [b.name for b in local_store.list_buckets()] == ["bkt", "by-hand"]
    assert local_store.head_bucket("by-hand").region == "us-east-1"
    local_store.put_object("by-hand", "k", b"v")
    for name in ("Not_A_Bucket", "..", ".openmaker", "bkt/..", "a/b"):
        with pytest.raises(NoSuchBucket):
            local_store.head_bucket(name)
        with pytest.raises(NoSuchBucket):
            local_store.list_objects(name)


def test_prefixes_cannot_escape_the_bucket(local_store, root):
    local_store.create_bucket("other")
    local_store.put_object("other", "secret", b"s")
    local_store.put_object("bkt", "mine", b"m")
    for prefix in ("../", "../other/", "./", "/", "a//", ".openmaker/"):
        assert local_store.list_objects("bkt", prefix=prefix).objects == [], prefix


def test_names_that_are_not_utf8_are_skipped(local_store, root):
    os.mkdir(os.fsencode(root / "bkt") + b"/bad\xff")
    with open(os.fsencode(root / "bkt") + b"/bad\xff/file", "wb") as fh:
        fh.write(b"x")
    with open(os.fsencode(root / "bkt") + b"/worse\xfe", "wb") as fh:
        fh.write(b"x")
    local_store.put_object("bkt", "good", b"g")
    assert [o.key for o in local_store.list_objects("bkt").objects] == ["good"]
    assert local_store.list_objects("bkt", delimiter="/").common_prefixes == []


def test_control_characters_in_keys(local_store, root):
    for key in ("line\nbreak", "tab\there", "bell\x07", "cr\r/x"):
        local_store.put_object("bkt", key, key.encode())
        assert local_store.get_object("bkt", key) == key.encode()


def test_delete_bucket_removes_the_store_records(local_store, root):
    local_store.put_object("bkt", "k/", b"overflow")
    local_store.delete_object("bkt", "k/")
    local_store.delete_bucket("bkt")
    assert not (root / "bkt").exists()
    for area in ("meta", "overflow", "uploads"):
        assert not (root / ".openmaker" / area / "bkt").exists()
    assert not (root / ".openmaker" / "buckets" / "bkt.json").exists()


def test_multipart_state_lives_in_the_upload_folder(local_store, root):
    upload = local_store.create_multipart_upload("bkt", "k")
    part = local_store.upload_part("bkt", "k", upload.upload_id, 1, b"part one")
    folder = root / ".openmaker" / "uploads" / "bkt" / upload.upload_id
    assert sorted(p.name for p in folder.iterdir()) == ["00001", "00001.md5", "upload.json"]
    assert files_under(root / "bkt") == []
    # A lost digest file is recomputed from the part itself.
    (folder / "00001.md5").unlink()
    [listed] = local_store.list_parts("bkt", "k", upload.upload_id).parts
    assert listed.etag == part.etag == quoted_md5(b"part one")
    local_store.complete_multipart_upload("bkt", "k", upload.upload_id, [(1, part.etag)])
    assert not folder.exists()
    assert (root / "bkt" / "k").read_bytes() == b"part one"


def test_min_part_size_defaults_to_s3s(tmp_path):
    assert LocalObjectStore(tmp_path).min_part_size == MIN_PART_SIZE == 5 * 1024 * 1024


def test_failed_writes_leave_no_temp_files(local_store, root):
    def body():
        yield b"partial"
        raise RuntimeError("digest mismatch")

    with pytest.raises(RuntimeError):
        local_store.put_object("bkt", "k", body())
    upload = local_store.create_multipart_upload("bkt", "k")
    with pytest.raises(RuntimeError):
        local_store.upload_part("bkt", "k", upload.upload_id, 1, body())
    assert list((root / ".openmaker" / "tmp").iterdir()) == []
    assert local_store.list_parts("bkt", "k", upload.upload_id).parts == []
    assert files_under(root / "bkt") == []


def test_fsync_store_works(tmp_path):
    store = LocalObjectStore(tmp_path, fsync=True)
    store.create_bucket("durable")
    store.put_object("durable", "a/b", b"x")
    store.put_object("durable", "a/", b"y")
    store.copy_object("durable", "a/b", "durable", "c")
    store.delete_object("durable", "a/b")
    assert [o.key for o in store.list_objects("durable").objects] == ["a/", "c"]


# -- crash consistency --------------------------------------------------------------------
CRASH_DURING_PUT = """
import os, sys
from openmaker.storage.local import LocalObjectStore
store = LocalObjectStore(sys.argv[1], fsync=True)
crash_at = int(sys.argv[3])
def crashing(method, before, after):
    # The power goes out at step `crash_at` of publishing the write.
    def step(*args, **kwargs):
        if crash_at == before:
            os._exit(17)
        result = method(*args, **kwargs)
        if crash_at == after:
            os._exit(17)
        return result
    return step
store._append_entry = crashing(store._append_entry, 0, 1)  # the sidecar entry
store._place = crashing(store._place, 1, 2)                # the data rename
store.put_object("bkt", sys.argv[2], b"new data", content_type="text/new", metadata={"v": "2"})
"""
OLD = (quoted_md5(b"old data"), "text/old", {"v": "1"}, b"old data")
NEW = (quoted_md5(b"new data"), "text/new", {"v": "2"}, b"new data")


def snapshot(store: LocalObjectStore, key: str) -> tuple:
    head = store.head_object("bkt", key)
    return head.etag, head.content_type, head.metadata, store.get_object("bkt", key)


@pytest.mark.parametrize("key", ["plain/key", "overflow/"])
@pytest.mark.parametrize(("crash_at", "expected"), [(0, OLD), (1, OLD), (2, NEW)])
def test_a_crash_at_any_step_leaves_old_or_new_never_a_mix(local_store, root, key,
                                                           crash_at, expected):
    local_store.put_object("bkt", key, b"old data", content_type="text/old", metadata={"v": "1"})
    result = run_python(CRASH_DURING_PUT, str(root), key, str(crash_at))
    assert result.returncode == 17, result.stderr
    assert snapshot(local_store, key) == expected
    [listed] = local_store.list_objects("bkt").objects
    assert listed.etag == expected[0]
    # The store recovers: the next write is complete and consistent.
    local_store.put_object("bkt", key, b"newer", content_type="text/newer")
    assert snapshot(local_store, key) == (quoted_md5(b"newer"), "text/newer", {}, b"newer")


def test_crash_before_any_sidecar_for_a_new_key_leaves_nothing(local_store, root):
    result = run_python(CRASH_DURING_PUT, str(root), "fresh", "1")
    assert result.returncode == 17, result.stderr
    with pytest.raises(NoSuchKey):
        local_store.head_object("bkt", "fresh")
    assert local_store.list_objects("bkt").objects == []


def test_lost_sidecar_is_rebuilt_from_the_data(local_store, root):
    local_store.put_object("bkt", "k", b"data", content_type="text/plain")
    for sidecar in (root / ".openmaker" / "meta").rglob("*.jsonl"):
        sidecar.write_text("{torn")  # a crash without fsync can leave this behind
    head = local_store.head_object("bkt", "k")
    assert head.etag == quoted_md5(b"data") and head.size == 4


def test_a_torn_sidecar_append_loses_nothing_else(local_store, root):
    local_store.put_object("bkt", "k", b"first", content_type="text/first")
    [sidecar] = (root / ".openmaker" / "meta").rglob("*.jsonl")
    with open(sidecar, "ab") as fh:
        fh.write(b'\n{"i":12,"s":5,"m":')  # a crash in the middle of the next append
    assert local_store.head_object("bkt", "k").content_type == "text/first"
    local_store.put_object("bkt", "k", b"second", content_type="text/second")
    head = local_store.head_object("bkt", "k")
    assert (head.etag, head.content_type) == (quoted_md5(b"second"), "text/second")


def test_sidecars_stay_small_under_many_overwrites(local_store, root):
    for serial in range(300):
        local_store.put_object("bkt", "k", b"%d" % serial, metadata={"serial": str(serial)})
    [sidecar] = (root / ".openmaker" / "meta").rglob("*.jsonl")
    assert sidecar.stat().st_size <= 8192 + 512
    assert local_store.head_object("bkt", "k").metadata == {"serial": "299"}


# -- concurrency --------------------------------------------------------------------------
def payload(marker: int, serial: int) -> bytes:
    return bytes([marker]) * (1000 + (marker * 7919 + serial * 104729) % 150_000)


def check_consistent(store: LocalObjectStore, key: str) -> int | None:
    """Read the key once; data, ETag, size and metadata must all be of one write."""
    try:
        with store.open_object("bkt", key) as reader:
            data = reader.read()
            info = reader.info
    except NoSuchKey:
        return None
    marker = data[0]
    assert data == bytes([marker]) * len(data), "a mix of two writes"
    assert info.size == len(data)
    assert info.etag == quoted_md5(data)
    assert info.content_type == f"x/{marker}"
    assert info.metadata == {"size": str(len(data))}
    return marker


def writer(store: LocalObjectStore, key: str, marker: int, count: int) -> None:
    for serial in range(count):
        data = payload(marker, serial)
        store.put_object("bkt", key, data, content_type=f"x/{marker}",
                         metadata={"size": str(len(data))})


@pytest.mark.parametrize("key", ["hot/key", "hot/"])
def test_concurrent_writers_and_readers_in_threads(local_store, root, key, monkeypatch):
    # Compact sidecars often, so compaction races with the other writers too.
    monkeypatch.setattr(local_module, "_SIDECAR_COMPACT_BYTES", 1024)
    errors: list[BaseException] = []
    done = threading.Event()

    def guarded(fn, *args):
        try:
            fn(*args)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    def reader():
        while not done.is_set():
            check_consistent(local_store, key)
            local_store.list_objects("bkt")

    def deleter():
        while not done.is_set():
            local_store.delete_object("bkt", key)
            time.sleep(0.002)

    writers = [threading.Thread(target=guarded, args=(writer, local_store, key, m, 60))
               for m in (1, 2, 3, 4)]
    readers = [threading.Thread(target=guarded, args=(reader,)) for _ in range(3)]
    readers.append(threading.Thread(target=guarded, args=(deleter,)))
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert not errors, errors[0]
    writer(local_store, key, 9, 1)
    assert check_consistent(local_store, key) == 9
    assert list((root / ".openmaker" / "tmp").iterdir()) == []


WRITER_PROCESS = """
import sys, time
from openmaker.storage.local import LocalObjectStore
store = LocalObjectStore(sys.argv[1], fsync=False)
key, marker = sys.argv[2], int(sys.argv[3])
end = time.monotonic() + 0.6
serial = 0
while time.monotonic() < end:
    serial += 1
    data = bytes([marker]) * (1000 + (marker * 7919 + serial * 104729) % 150_000)
    store.put_object("bkt", key, data, content_type=f"x/{marker}",
                     metadata={"size": str(len(data))})
"""


def test_concurrent_writers_in_several_processes(local_store, root):
    key = "shared/object"
    env = {**os.environ, "PYTHONPATH": SRC}
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, str(root), key, str(m)],
                         env=env, stderr=subprocess.PIPE)
        for m in (5, 6)
    ]
    seen: list[int | None] = []
    deadline = time.monotonic() + 60
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        writer(local_store, key, 7, 2)
        seen.append(check_consistent(local_store, key))
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    assert check_consistent(local_store, key) in (5, 6, 7)
    assert set(seen) <= {5, 6, 7}
    assert {5, 6} & set(seen), "the processes never overlapped with this one"
    assert list((root / ".openmaker" / "tmp").iterdir()) == []


def test_many_keys_written_concurrently_all_survive(local_store, root):
    # Different keys share folders: parent creation and pruning race each other.
    def work(worker: int):
        for n in range(40):
            key = f"d{n % 3}/e{n % 2}/w{worker}-{n}"
            local_store.put_object("bkt", key, key.encode())
            if n % 4 == 0:
                local_store.delete_object("bkt", key)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = sorted((f"d{n % 3}/e{n % 2}/w{w}-{n}" for w in range(6) for n in range(40)
                       if n % 4), key=str.encode)
    assert [o.key for o in local_store.list_objects("bkt").objects] == expected
    for key in expected:
        assert local_store.get_object("bkt", key) == key.encode()


# -- memory -------------------------------------------------------------------------------
def test_large_put_and_get_stream_with_bounded_memory(local_store, root):
    chunk = b"\xab" * (1024 * 1024)
    size = 48 * len(chunk)
    tracemalloc.start()
    try:
        info = local_store.put_object("bkt", "big", (chunk for _ in range(48)))
        digest = hashlib.md5()
        with local_store.open_object("bkt", "big") as reader:
            for piece in reader.iter_chunks():
                digest.update(piece)
        copied = local_store.copy_object("bkt", "big", "bkt", "big-copy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == size
    assert digest.hexdigest() == hashlib.md5(chunk * 48).hexdigest()
    assert copied.etag == info.etag
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


def test_close_releases_lock_files_and_the_store_still_works(local_store, root):
    local_store.put_object("bkt", "k", b"1")
    assert any(fd is not None for fd in local_store._lock_fds)
    local_store.close()
    assert all(fd is None for fd in local_store._lock_fds)
    local_store.put_object("bkt", "k", b"2")
    assert local_store.get_object("bkt", "k") == b"2"


def test_stale_temp_files_are_removed_on_open(local_store, root):
    tmp = root / ".openmaker" / "tmp"
    old, fresh = tmp / "crashed-write", tmp / "in-flight-write"
    old.write_bytes(b"left by a crash")
    fresh.write_bytes(b"another process is writing this")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    LocalObjectStore(root)
    assert sorted(p.name for p in tmp.iterdir()) == ["in-flight-write"]


def test_special_files_in_a_bucket_are_not_objects(local_store, root):
    os.mkfifo(root / "bkt" / "pipe")
    local_store.put_object("bkt", "real", b"r")
    assert [o.key for o in local_store.list_objects("bkt").objects] == ["real"]
    with pytest.raises(NoSuchKey):
        local_store.get_object("bkt", "pipe")  # and does not block on the FIFO
