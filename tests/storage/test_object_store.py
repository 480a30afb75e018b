"""The object-store contract: one suite, run against LocalObjectStore and S3ObjectStore."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from openmaker.core.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooSmall,
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectName,
    InvalidPart,
    InvalidPartOrder,
    InvalidRange,
    InvalidRequest,
    KeyTooLongError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from openmaker.storage import DEFAULT_CONTENT_TYPE, ListPage, ObjectStore
from openmaker.storage.names import check_key


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def quoted_md5(data: bytes) -> str:
    return f'"{md5(data)}"'


def multipart_etag(*parts: bytes) -> str:
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def list_all(store: ObjectStore, bucket: str, page_size: int, **query) -> tuple[list, list]:
    """Every key and common prefix, fetched ``page_size`` at a time via start_after."""
    keys: list[str] = []
    prefixes: list[str] = []
    start_after = query.pop("start_after", None)
    for _ in range(1000):
        page = store.list_objects(bucket, start_after=start_after, max_keys=page_size, **query)
        assert len(page.objects) + len(page.common_prefixes) <= page_size
        keys += [o.key for o in page.objects]
        prefixes += page.common_prefixes
        if not page.is_truncated:
            return keys, prefixes
        assert page.next_marker is not None
        start_after = page.next_marker
    raise AssertionError("listing never ended")


def names(page: ListPage) -> tuple[list[str], list[str]]:
    return [o.key for o in page.objects], page.common_prefixes


# -- buckets ------------------------------------------------------------------------------
def test_bucket_lifecycle(store):
    created = store.create_bucket("alpha-bucket")
    store.create_bucket("beta.bucket")
    assert created.name == "alpha-bucket"
    assert created.region == "us-east-1"
    assert created.creation_date.tzinfo is not None
    head = store.head_bucket("alpha-bucket")
    assert head.name == "alpha-bucket" and head.region == "us-east-1"
    assert [b.name for b in store.list_buckets()] == ["alpha-bucket", "beta.bucket"]
    store.delete_bucket("alpha-bucket")
    assert [b.name for b in store.list_buckets()] == ["beta.bucket"]
    with pytest.raises(NoSuchBucket):
        store.head_bucket("alpha-bucket")


def test_create_existing_bucket_is_already_owned(store, bucket_name):
    with pytest.raises(BucketAlreadyOwnedByYou) as caught:
        store.create_bucket(bucket_name)
    assert caught.value.extra["BucketName"] == bucket_name


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Upper", "under_score", "-start", "end-", "two..dots", "192.168.5.4",
    "xn--punycode", "bucket-s3alias", "spa ce", "dot.", "",
])
def test_invalid_bucket_names_are_refused(store, name):
    with pytest.raises(InvalidBucketName):
        store.create_bucket(name)


def test_missing_bucket_raises_everywhere(store):
    for call in (
        lambda: store.head_bucket("no-such-bucket"),
        lambda: store.delete_bucket("no-such-bucket"),
        lambda: store.put_object("no-such-bucket", "k", b"x"),
        lambda: store.get_object("no-such-bucket", "k"),
        lambda: store.head_object("no-such-bucket", "k"),
        lambda: store.list_objects("no-such-bucket"),
        lambda: store.delete_object("no-such-bucket", "k"),
        lambda: store.create_multipart_upload("no-such-bucket", "k"),
    ):
        with pytest.raises(NoSuchBucket):
            call()


def test_delete_bucket_refuses_while_objects_or_uploads_remain(store, bucket_name):
    store.put_object(bucket_name, "deep/down/key", b"x")
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket_name)
    store.delete_object(bucket_name, "deep/down/key")
    upload = store.create_multipart_upload(bucket_name, "pending")
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket_name)
    store.abort_multipart_upload(bucket_name, "pending", upload.upload_id)
    store.delete_bucket(bucket_name)
    assert store.list_buckets() == []


def test_delete_bucket_refuses_while_an_overflow_key_remains(store, bucket_name):
    store.put_object(bucket_name, "folder/", b"")
    with pytest.raises(BucketNotEmpty):
        store.delete_bucket(bucket_name)


# -- objects ------------------------------------------------------------------------------
def test_put_get_head_round_trip(store, bucket_name):
    data = b"hello, object store\n" * 50
    info = store.put_object(bucket_name, "data/train.csv", data)
    assert info.etag == quoted_md5(data)
    assert info.size == len(data)
    assert info.parts_count is None
    assert store.get_object(bucket_name, "data/train.csv") == data
    head = store.head_object(bucket_name, "data/train.csv")
    assert (head.size, head.etag, head.content_type) == (len(data), info.etag,
                                                        DEFAULT_CONTENT_TYPE)
    assert head.metadata == {} and head.parts_count is None
    assert head.last_modified.tzinfo is not None


def test_content_type_metadata_and_headers_round_trip(store, bucket_name):
    headers = {"Content-Encoding": "gzip", "Cache-Control": "no-cache",
               "Content-Disposition": 'attachment; filename="x.csv"', "Content-Language": "en"}
    store.put_object(bucket_name, "k", b"payload", content_type="text/csv",
                     metadata={"Owner": "team-a", "run-id": "42"}, headers=headers)
    expected_headers = {name.lower(): value for name, value in headers.items()}
    head = store.head_object(bucket_name, "k")
    assert head.content_type == "text/csv"
    assert head.metadata == {"owner": "team-a", "run-id": "42"}
    assert head.headers == expected_headers
    with store.open_object(bucket_name, "k") as reader:
        assert reader.info.content_type == "text/csv"
        assert reader.info.metadata == {"owner": "team-a", "run-id": "42"}
        assert reader.info.headers == expected_headers
        assert reader.read() == b"payload"


def test_overwrite_replaces_data_and_metadata(store, bucket_name):
    store.put_object(bucket_name, "k", b"first", content_type="text/plain", metadata={"a": "1"})
    info = store.put_object(bucket_name, "k", b"second version")
    head = store.head_object(bucket_name, "k")
    assert head.etag == info.etag == quoted_md5(b"second version")
    assert head.content_type == DEFAULT_CONTENT_TYPE and head.metadata == {}
    assert store.get_object(bucket_name, "k") == b"second version"


def test_iterable_file_and_empty_bodies(store, bucket_name):
    chunks = [b"abc", b"", bytearray(b"def"), memoryview(b"ghi")]
    assert store.put_object(bucket_name, "it", iter(chunks)).etag == quoted_md5(b"abcdefghi")
    assert store.get_object(bucket_name, "it") == b"abcdefghi"
    data = b"line one\nline two\n" * 1000
    store.put_object(bucket_name, "file", io.BytesIO(data))
    assert store.get_object(bucket_name, "file") == data
    info = store.put_object(bucket_name, "empty", b"")
    assert info.size == 0 and info.etag == quoted_md5(b"")
    assert store.get_object(bucket_name, "empty") == b""


def test_large_streamed_body_round_trips(store, bucket_name):
    # Above the S3 store's 8 MiB threshold, so it goes up as a multipart upload there.
    block = bytes(range(256)) * 4096  # 1 MiB
    total = 12

    def body():
        for index in range(total):
            yield bytes([index]) + block[1:]

    info = store.put_object(bucket_name, "big", body())
    assert info.size == total * len(block)
    digest = hashlib.md5()
    with store.open_object(bucket_name, "big") as reader:
        for chunk in reader.iter_chunks(256 * 1024):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.md5(b"".join(body())).hexdigest()
    assert store.list_multipart_uploads(bucket_name) == []


@pytest.mark.parametrize("size", [100, 12 * 1024 * 1024])
def test_failing_body_leaves_nothing(store, bucket_name, size):
    store.put_object(bucket_name, "kept", b"old")

    def body(key_bytes: int):
        yield b"x" * key_bytes
        raise ConnectionError("client went away")

    for key in ("kept", "new"):
        with pytest.raises(ConnectionError):
            store.put_object(bucket_name, key, body(size))
    assert store.get_object(bucket_name, "kept") == b"old"
    with pytest.raises(NoSuchKey):
        store.head_object(bucket_name, "new")
    assert [o.key for o in store.list_objects(bucket_name).objects] == ["kept"]
    assert store.list_multipart_uploads(bucket_name) == []


def test_missing_key(store, bucket_name):
    with pytest.raises(NoSuchKey) as caught:
        store.get_object(bucket_name, "nope")
    assert caught.value.extra.get("Key") == "nope"
    with pytest.raises(NoSuchKey):
        store.head_object(bucket_name, "nope")
    store.delete_object(bucket_name, "nope")  # deleting a missing key succeeds


def test_delete_object_and_delete_objects(store, bucket_name):
    for key in ("a", "b/c", "d/"):
        store.put_object(bucket_name, key, b"1")
    store.delete_object(bucket_name, "a")
    with pytest.raises(NoSuchKey):
        store.head_object(bucket_name, "a")
    results = store.delete_objects(bucket_name, ["b/c", "d/", "missing"])
    assert results == [("b/c", None), ("d/", None), ("missing", None)]
    assert store.list_objects(bucket_name).objects == []


# -- ranges -------------------------------------------------------------------------------
DATA = b"0123456789"


@pytest.mark.parametrize(("byte_range", "expected", "start", "end"), [
    (None, DATA, 0, 9),
    ((None, None), DATA, 0, 9),
    ((0, 4), b"01234", 0, 4),
    ((5, None), b"56789", 5, 9),
    ((None, 3), b"789", 7, 9),
    ((None, 50), DATA, 0, 9),
    ((3, 100), b"3456789", 3, 9),
    ((9, 9), b"9", 9, 9),
])
def test_byte_ranges(store, bucket_name, byte_range, expected, start, end):
    store.put_object(bucket_name, "digits", DATA)
    with store.open_object(bucket_name, "digits", byte_range) as reader:
        assert (reader.start, reader.end, reader.length) == (start, end, len(expected))
        assert reader.info.size == len(DATA)
        assert reader.read() == expected


@pytest.mark.parametrize(("body", "byte_range"), [
    (DATA, (10, None)), (DATA, (10, 20)), (DATA, (None, 0)),
    (b"", (0, None)), (b"", (0, 0)), (b"", (None, 5)),
])
def test_unsatisfiable_ranges(store, bucket_name, body, byte_range):
    store.put_object(bucket_name, "obj", body)
    with pytest.raises(InvalidRange):
        store.get_object(bucket_name, "obj", byte_range)


def test_reader_reads_in_chunks(store, bucket_name):
    data = bytes(range(256)) * 1000
    store.put_object(bucket_name, "k", data)
    with store.open_object(bucket_name, "k", (1000, 200_999)) as reader:
        pieces = []
        while piece := reader.read(7777):
            assert len(piece) <= 7777
            pieces.append(piece)
    assert b"".join(pieces) == data[1000:201_000]
    assert b"".join(store.open_object(bucket_name, "k").iter_chunks(4096)) == data


def test_open_reader_is_a_snapshot(store, bucket_name):
    store.put_object(bucket_name, "k", b"old contents", content_type="text/old")
    reader = store.open_object(bucket_name, "k")
    store.put_object(bucket_name, "k", b"new", content_type="text/new")
    store.delete_object(bucket_name, "k")
    with reader:
        assert reader.read() == b"old contents"
        assert reader.info.etag == quoted_md5(b"old contents")
        assert reader.info.content_type == "text/old"


# -- keys ---------------------------------------------------------------------------------
ODD_KEYS = [
    "folder/",                   # folder marker
    "a//b",                      # empty segment
    "./x", "a/./b", "x/.",       # '.' segments
    "s" * 300,                   # a segment longer than a file name may be
    "deep/" + "t" * 256 + "/leaf",
    ".openmaker/x",              # the store's own directory name as a first segment
    "é/ünïcødé 文字 😀",
    "with space/and+plus?query#frag%20",
    "...", ".hidden", "a..b", "x/..y",
    "é" * 512,                   # exactly 1024 UTF-8 bytes
    "d/" * 400 + "deep",         # 401 folders deep
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_any_valid_key_round_trips(store, bucket_name, key):
    data = key.encode()
    store.put_object(bucket_name, key, data, metadata={"k": "v"})
    assert store.get_object(bucket_name, key) == data
    assert store.head_object(bucket_name, key).metadata == {"k": "v"}
    assert [o.key for o in store.list_objects(bucket_name).objects] == [key]
    store.delete_object(bucket_name, key)
    assert store.list_objects(bucket_name).objects == []


def test_odd_keys_coexist_and_list_in_byte_order(store, bucket_name):
    for key in ODD_KEYS:
        store.put_object(bucket_name, key, key.encode())
    expected = sorted(ODD_KEYS, key=str.encode)
    assert [o.key for o in store.list_objects(bucket_name).objects] == expected
    for key in ODD_KEYS:
        assert store.get_object(bucket_name, key) == key.encode()


@pytest.mark.parametrize("order", [["a/b", "a/b/c"], ["a/b/c", "a/b"]])
def test_key_that_is_also_a_folder(store, bucket_name, order):
    for key in order:
        store.put_object(bucket_name, key, key.encode())
    assert store.get_object(bucket_name, "a/b") == b"a/b"
    assert store.get_object(bucket_name, "a/b/c") == b"a/b/c"
    assert [o.key for o in store.list_objects(bucket_name).objects] == ["a/b", "a/b/c"]
    page = store.list_objects(bucket_name, prefix="a/", delimiter="/")
    assert names(page) == (["a/b"], ["a/b/"])
    store.put_object(bucket_name, "a/b", b"rewritten")
    store.put_object(bucket_name, "a/b/c", b"rewritten too")
    store.delete_object(bucket_name, order[0])
    survivor = order[1]
    assert [o.key for o in store.list_objects(bucket_name).objects] == [survivor]
    assert store.get_object(bucket_name, survivor).startswith(b"rewritten")


@pytest.mark.parametrize(("key", "error"), [
    ("", InvalidObjectName),
    ("../escape", InvalidObjectName),
    ("a/../../b", InvalidObjectName),
    ("a/..", InvalidObjectName),
    ("/etc/passwd", InvalidObjectName),
    ("nul\0byte", InvalidObjectName),
    ("\ud800lone-surrogate", InvalidObjectName),
    ("k" * 1025, KeyTooLongError),
    ("é" * 513, KeyTooLongError),
])
def test_invalid_keys_are_refused_by_every_call(store, bucket_name, key, error):
    store.put_object(bucket_name, "source", b"x")
    upload = store.create_multipart_upload(bucket_name, "mp")
    for call in (
        lambda: store.put_object(bucket_name, key, b"x"),
        lambda: store.get_object(bucket_name, key),
        lambda: store.head_object(bucket_name, key),
        lambda: store.delete_object(bucket_name, key),
        lambda: store.copy_object(bucket_name, "source", bucket_name, key),
        lambda: store.copy_object(bucket_name, key, bucket_name, "dest"),
        lambda: store.create_multipart_upload(bucket_name, key),
        lambda: store.complete_multipart_upload(bucket_name, key, upload.upload_id, [(1, "e")]),
    ):
        with pytest.raises(error):
            call()
    assert [o.key for o in store.list_objects(bucket_name).objects] == ["source"]


# -- listing ------------------------------------------------------------------------------
def test_listing_is_in_utf8_byte_order(store, bucket_name):
    keys = ["a/b", "a-c", "a", "a0", "ab", "a/b/c", "z", "é", "ｚ", "😀", "A", "a!"]
    for key in keys:
        store.put_object(bucket_name, key, b"")
    expected = ["A", "a", "a!", "a-c", "a/b", "a/b/c", "a0", "ab", "z", "é", "ｚ", "😀"]
    assert expected == sorted(keys, key=str.encode)
    page = store.list_objects(bucket_name)
    assert [o.key for o in page.objects] == expected
    assert not page.is_truncated and page.next_marker is None
    assert all(o.etag == quoted_md5(b"") and o.size == 0 for o in page.objects)


def test_delimiter_rolls_up_common_prefixes(store, bucket_name):
    for key in ["a/b/c", "a/b/d", "a/e", "a-c", "f", "g/h", "g/i/j"]:
        store.put_object(bucket_name, key, b"x")
    assert names(store.list_objects(bucket_name, delimiter="/")) == (["a-c", "f"], ["a/", "g/"])
    assert names(store.list_objects(bucket_name, prefix="a/", delimiter="/")) == (
        ["a/e"], ["a/b/"])
    assert names(store.list_objects(bucket_name, prefix="a/b", delimiter="/")) == ([], ["a/b/"])
    assert names(store.list_objects(bucket_name, prefix="a/b/", delimiter="/")) == (
        ["a/b/c", "a/b/d"], [])
    assert names(store.list_objects(bucket_name, prefix="a")) == (
        ["a-c", "a/b/c", "a/b/d", "a/e"], [])
    assert names(store.list_objects(bucket_name, prefix="g/i/j")) == (["g/i/j"], [])
    assert names(store.list_objects(bucket_name, prefix="nothing/")) == ([], [])


def test_other_delimiters(store, bucket_name):
    for key in ["x-1/a", "x-2", "x-3-4", "y", "x/z"]:
        store.put_object(bucket_name, key, b"x")
    assert names(store.list_objects(bucket_name, delimiter="-")) == (["x/z", "y"], ["x-"])
    assert names(store.list_objects(bucket_name, prefix="x-", delimiter="-")) == (
        ["x-1/a", "x-2"], ["x-3-"])
    assert names(store.list_objects(bucket_name, delimiter="1/")) == (
        ["x-2", "x-3-4", "x/z", "y"], ["x-1/"])


def test_folder_markers_list_as_objects_and_prefixes(store, bucket_name):
    for key in ["data/", "data/train.csv", "data/sub/", "data/sub/x", "other"]:
        store.put_object(bucket_name, key, b"")
    assert names(store.list_objects(bucket_name, delimiter="/")) == (["other"], ["data/"])
    assert names(store.list_objects(bucket_name, prefix="data/", delimiter="/")) == (
        ["data/", "data/train.csv"], ["data/sub/"])
    assert names(store.list_objects(bucket_name, prefix="data/sub/")) == (
        ["data/sub/", "data/sub/x"], [])
    store.delete_object(bucket_name, "data/sub/x")
    assert names(store.list_objects(bucket_name, prefix="data/", delimiter="/")) == (
        ["data/", "data/train.csv"], ["data/sub/"])
    store.delete_object(bucket_name, "data/sub/")
    assert names(store.list_objects(bucket_name, prefix="data/", delimiter="/")) == (
        ["data/", "data/train.csv"], [])


def test_start_after_skips_and_prunes(store, bucket_name):
    keys = ["a/1", "a/2", "a/3", "b/1", "b/2", "c"]
    for key in keys:
        store.put_object(bucket_name, key, b"")
    assert names(store.list_objects(bucket_name, start_after="a/2")) == (
        ["a/3", "b/1", "b/2", "c"], [])
    assert names(store.list_objects(bucket_name, start_after="a/")) == (keys, [])
    assert names(store.list_objects(bucket_name, start_after="a0")) == (["b/1", "b/2", "c"], [])
    assert names(store.list_objects(bucket_name, start_after="c")) == ([], [])
    # A common prefix is an item too: resuming after it skips the whole prefix.
    assert names(store.list_objects(bucket_name, delimiter="/", start_after="a/")) == (
        ["c"], ["b/"])


def test_pagination_counts_keys_and_prefixes(store, bucket_name):
    keys = ["a", "b/1", "b/2", "c", "d/x/y", "e", "f/", "g"]
    for key in keys:
        store.put_object(bucket_name, key, b"")
    page = store.list_objects(bucket_name, delimiter="/", max_keys=3)
    assert names(page) == (["a", "c"], ["b/"])
    assert page.is_truncated and page.next_marker == "c"
    assert list_all(store, bucket_name, 3, delimiter="/") == (
        ["a", "c", "e", "g"], ["b/", "d/", "f/"])
    for size in (1, 2, 5, 100):
        assert list_all(store, bucket_name, size) == (keys, [])
    last = store.list_objects(bucket_name, max_keys=len(keys))
    assert not last.is_truncated and last.next_marker is None


def test_listing_matches_a_model_of_s3(store, bucket_name):
    rng = random.Random(1234)
    alphabet = ["a", "b", "-", "/", "/", ".", "0", "é", "z"]
    keys: set[str] = set()
    while len(keys) < 60:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        try:
            check_key(key)
        except Exception:
            continue
        keys.add(key)
    for key in keys:
        store.put_object(bucket_name, key, key.encode())

    def model(prefix: str, delimiter: str | None, start_after: str | None):
        items: dict[str, bool] = {}
        for key in keys:
            if not key.startswith(prefix):
                continue
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut != -1:
                items[key[: cut + len(delimiter)]] = False
            else:
                items[key] = True
        ordered = sorted((n for n in items if not start_after or n.encode() > start_after.encode()),
                         key=str.encode)
        return ([n for n in ordered if items[n]], [n for n in ordered if not items[n]])

    queries = [("", None, None), ("", "/", None), ("a", "/", None), ("a/", "/", None),
               ("", "-", None), ("b", "/", "b/"), ("", "/", "a/a"), ("", None, "a."),
               ("a", "a", None), ("é", "/", None), ("", "/", "b")]
    for prefix, delimiter, start_after in queries:
        expected = model(prefix, delimiter, start_after)
        query = {"prefix": prefix, "delimiter": delimiter, "start_after": start_after}
        got = store.list_objects(bucket_name, **query)
        assert names(got) == expected, query
        assert list_all(store, bucket_name, 4, **query) == expected, query


def test_listed_objects_carry_size_and_etag(store, bucket_name):
    store.put_object(bucket_name, "x/one", b"1")
    store.put_object(bucket_name, "x/", b"22")
    objects = {o.key: o for o in store.list_objects(bucket_name).objects}
    assert (objects["x/one"].size, objects["x/one"].etag) == (1, quoted_md5(b"1"))
    assert (objects["x/"].size, objects["x/"].etag) == (2, quoted_md5(b"22"))
    assert objects["x/one"].bucket == bucket_name


# -- copy ---------------------------------------------------------------------------------
def test_copy_keeps_or_replaces_metadata(store, bucket_name):
    store.create_bucket("other-bucket")
    store.put_object(bucket_name, "src", b"source data", content_type="text/plain",
                     metadata={"a": "1"}, headers={"content-language": "de"})
    copied = store.copy_object(bucket_name, "src", "other-bucket", "dst/copy")
    assert copied.etag == quoted_md5(b"source data")
    head = store.head_object("other-bucket", "dst/copy")
    assert (head.content_type, head.metadata) == ("text/plain", {"a": "1"})
    assert head.headers == {"content-language": "de"}
    assert store.get_object("other-bucket", "dst/copy") == b"source data"

    store.copy_object(bucket_name, "src", bucket_name, "dst2", metadata={"B": "2"})
    head = store.head_object(bucket_name, "dst2")
    assert (head.content_type, head.metadata) == ("text/plain", {"b": "2"})
    assert head.headers == {"content-language": "de"}


def test_copy_onto_itself(store, bucket_name):
    store.put_object(bucket_name, "k", b"same data", content_type="text/plain",
                     metadata={"v": "1"})
    with pytest.raises(InvalidRequest):
        store.copy_object(bucket_name, "k", bucket_name, "k")
    info = store.copy_object(bucket_name, "k", bucket_name, "k", metadata={"v": "2"})
    assert info.etag == quoted_md5(b"same data")
    head = store.head_object(bucket_name, "k")
    assert (head.metadata, head.content_type) == ({"v": "2"}, "text/plain")
    assert store.get_object(bucket_name, "k") == b"same data"


def test_copy_missing_source(store, bucket_name):
    with pytest.raises(NoSuchKey):
        store.copy_object(bucket_name, "missing", bucket_name, "dst")
    with pytest.raises(NoSuchBucket):
        store.copy_object("no-such-bucket", "missing", bucket_name, "dst")


# -- multipart uploads --------------------------------------------------------------------
def part_bodies(case, count: int) -> list[bytes]:
    """``count`` parts: all but the last exactly the minimum size, the last small."""
    size = case.min_part_size
    bodies = [bytes([65 + n]) * size for n in range(count - 1)]
    return bodies + [b"tail"]


def test_multipart_upload_assembles_parts(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "mp/obj", content_type="text/csv",
                                           metadata={"Stage": "raw"})
    assert (upload.bucket, upload.key) == (bucket_name, "mp/obj")
    bodies = part_bodies(case, 3)
    etags = []
    for number, body in enumerate(bodies, start=1):
        part = store.upload_part(bucket_name, "mp/obj", upload.upload_id, number, body)
        assert (part.part_number, part.size, part.etag) == (number, len(body), quoted_md5(body))
        etags.append((number, part.etag))
    listed = store.list_parts(bucket_name, "mp/obj", upload.upload_id)
    assert [(p.part_number, p.size, p.etag) for p in listed.parts] == [
        (n, len(b), quoted_md5(b)) for n, b in enumerate(bodies, start=1)]
    assert not listed.is_truncated
    [pending] = store.list_multipart_uploads(bucket_name)
    assert (pending.key, pending.upload_id) == ("mp/obj", upload.upload_id)

    info = store.complete_multipart_upload(bucket_name, "mp/obj", upload.upload_id, etags)
    expected_etag = multipart_etag(*bodies)
    assert info.etag == expected_etag
    assert info.parts_count == 3
    assert info.size == sum(map(len, bodies))
    head = store.head_object(bucket_name, "mp/obj")
    assert (head.etag, head.size, head.parts_count) == (expected_etag, info.size, 3)
    assert (head.content_type, head.metadata) == ("text/csv", {"stage": "raw"})
    assert store.get_object(bucket_name, "mp/obj") == b"".join(bodies)
    assert store.list_multipart_uploads(bucket_name) == []
    with pytest.raises(NoSuchUpload):
        store.list_parts(bucket_name, "mp/obj", upload.upload_id)
    listed = {o.key: o for o in store.list_objects(bucket_name).objects}
    assert listed["mp/obj"].etag == expected_etag


def test_etags_may_be_given_without_quotes(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    part = store.upload_part(bucket_name, "k", upload.upload_id, 1, b"only part")
    info = store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                           [(1, part.etag.strip('"'))])
    assert info.etag == multipart_etag(b"only part")


def test_reuploading_a_part_replaces_it(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    store.upload_part(bucket_name, "k", upload.upload_id, 1, b"first try")
    second = store.upload_part(bucket_name, "k", upload.upload_id, 1, iter([b"second", b" try"]))
    [listed] = store.list_parts(bucket_name, "k", upload.upload_id).parts
    assert listed.etag == second.etag == quoted_md5(b"second try")
    store.complete_multipart_upload(bucket_name, "k", upload.upload_id, [(1, second.etag)])
    assert store.get_object(bucket_name, "k") == b"second try"


def test_small_parts_other_than_the_last_are_too_small(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    small = b"x" * (case.min_part_size - 1)
    p1 = store.upload_part(bucket_name, "k", upload.upload_id, 1, small)
    p2 = store.upload_part(bucket_name, "k", upload.upload_id, 2, b"last")
    with pytest.raises(EntityTooSmall):
        store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                        [(1, p1.etag), (2, p2.etag)])
    # Nothing was written and the upload is still open.
    with pytest.raises(NoSuchKey):
        store.head_object(bucket_name, "k")
    assert len(store.list_parts(bucket_name, "k", upload.upload_id).parts) == 2


def test_missing_or_mismatched_parts(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    body = b"y" * case.min_part_size
    p1 = store.upload_part(bucket_name, "k", upload.upload_id, 1, body)
    p2 = store.upload_part(bucket_name, "k", upload.upload_id, 2, b"end")
    for parts in ([(1, p1.etag), (3, p2.etag)],           # part 3 was never uploaded
                  [(1, p1.etag), (2, quoted_md5(b"other"))],  # ETag differs
                  [(1, p2.etag), (2, p2.etag)]):
        with pytest.raises(InvalidPart):
            store.complete_multipart_upload(bucket_name, "k", upload.upload_id, parts)
    with pytest.raises(InvalidPartOrder):
        store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                        [(2, p2.etag), (1, p1.etag)])
    with pytest.raises(InvalidPartOrder):
        store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                        [(1, p1.etag), (1, p1.etag)])
    info = store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                           [(1, p1.etag), (2, p2.etag)])
    assert info.etag == multipart_etag(body, b"end")


def test_parts_may_skip_numbers(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    body = b"z" * case.min_part_size
    p2 = store.upload_part(bucket_name, "k", upload.upload_id, 2, body)
    p7 = store.upload_part(bucket_name, "k", upload.upload_id, 7, b"end")
    store.upload_part(bucket_name, "k", upload.upload_id, 9, b"left out")
    info = store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                           [(2, p2.etag), (7, p7.etag)])
    assert info.etag == multipart_etag(body, b"end")
    assert store.get_object(bucket_name, "k") == body + b"end"


def test_abort_and_unknown_uploads(case, bucket_name):
    store = case.store
    upload = store.create_multipart_upload(bucket_name, "k")
    store.upload_part(bucket_name, "k", upload.upload_id, 1, b"data")
    store.abort_multipart_upload(bucket_name, "k", upload.upload_id)
    assert store.list_multipart_uploads(bucket_name) == []
    calls = [
        lambda: store.abort_multipart_upload(bucket_name, "k", upload.upload_id),
        lambda: store.list_parts(bucket_name, "k", upload.upload_id),
        lambda: store.abort_multipart_upload(bucket_name, "k", "not-an-upload-id"),
    ]
    if case.kind == "local":
        # moto answers UploadPart and CompleteMultipartUpload for an unknown upload with a
        # 500 (a KeyError) where S3 says NoSuchUpload; the S3 store reports what it is told.
        calls += [
            lambda: store.complete_multipart_upload(bucket_name, "k", upload.upload_id,
                                                    [(1, quoted_md5(b"data"))]),
            lambda: store.upload_part(bucket_name, "k", upload.upload_id, 1, b"x"),
            lambda: store.upload_part(bucket_name, "k", "../../etc", 1, b"x"),
            lambda: store.list_parts(bucket_name, "other-key", upload.upload_id),
        ]
    for call in calls:
        with pytest.raises(NoSuchUpload):
            call()
    with pytest.raises(NoSuchKey):
        store.head_object(bucket_name, "k")


@pytest.mark.parametrize("number", [0, -1, 10_001])
def test_part_numbers_out_of_range(store, bucket_name, number):
    upload = store.create_multipart_upload(bucket_name, "k")
    with pytest.raises(InvalidArgument):
        store.upload_part(bucket_name, "k", upload.upload_id, number, b"x")


def test_list_parts_pages(store, bucket_name):
    upload = store.create_multipart_upload(bucket_name, "k")
    for number in range(1, 6):
        store.upload_part(bucket_name, "k", upload.upload_id, number, b"p%d" % number)
    seen = []
    marker = 0
    pages = 0
    while True:
        page = store.list_parts(bucket_name, "k", upload.upload_id,
                                part_number_marker=marker, max_parts=2)
        pages += 1
        seen += [p.part_number for p in page.parts]
        if not page.is_truncated:
            break
        assert page.next_part_number_marker == page.parts[-1].part_number
        marker = page.next_part_number_marker
    assert seen == [1, 2, 3, 4, 5]
    assert pages == 3
    assert all(p.size == 2 for p in store.list_parts(bucket_name, "k", upload.upload_id).parts)


def test_list_multipart_uploads_sorted_and_filtered(store, bucket_name):
    second = store.create_multipart_upload(bucket_name, "b/key")
    first = store.create_multipart_upload(bucket_name, "a/key")
    again = store.create_multipart_upload(bucket_name, "b/key")
    listed = store.list_multipart_uploads(bucket_name)
    assert [u.key for u in listed] == ["a/key", "b/key", "b/key"]
    assert listed[0].upload_id == first.upload_id
    assert {u.upload_id for u in listed[1:]} == {second.upload_id, again.upload_id}
    assert [u.upload_id for u in store.list_multipart_uploads(bucket_name, prefix="a/")] == [
        first.upload_id]


def test_upload_part_copy(case, bucket_name):
    store = case.store
    source = bytes(range(256)) * (case.min_part_size // 256 + 10)
    store.put_object(bucket_name, "src", source)
    upload = store.create_multipart_upload(bucket_name, "dst")
    p1 = store.upload_part_copy(bucket_name, "dst", upload.upload_id, 1, bucket_name, "src",
                                (0, case.min_part_size - 1))
    assert p1.size == case.min_part_size
    assert p1.etag == quoted_md5(source[: case.min_part_size])
    p2 = store.upload_part_copy(bucket_name, "dst", upload.upload_id, 2, bucket_name, "src")
    assert (p2.size, p2.etag) == (len(source), quoted_md5(source))
    info = store.complete_multipart_upload(bucket_name, "dst", upload.upload_id,
                                           [(1, p1.etag), (2, p2.etag)])
    assert info.etag == multipart_etag(source[: case.min_part_size], source)
    assert store.get_object(bucket_name, "dst") == source[: case.min_part_size] + source


def test_multipart_to_an_odd_key(case, bucket_name):
    store = case.store
    store.put_object(bucket_name, "dir/file", b"blocker")
    for key in ("dir/", "dir/file/inner"):
        upload = store.create_multipart_upload(bucket_name, key)
        part = store.upload_part(bucket_name, key, upload.upload_id, 1, key.encode())
        store.complete_multipart_upload(bucket_name, key, upload.upload_id, [(1, part.etag)])
        assert store.get_object(bucket_name, key) == key.encode()
    assert [o.key for o in store.list_objects(bucket_name).objects] == [
        "dir/", "dir/file", "dir/file/inner"]
