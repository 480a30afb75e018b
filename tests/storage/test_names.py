"""Names, keys, ranges and URIs, and choosing a store from the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openmaker.config import Settings
from openmaker.core.errors import (
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectName,
    InvalidRange,
    KeyTooLongError,
)
from openmaker.storage import S3Uri, open_object_store
from openmaker.storage.local import LocalObjectStore
from openmaker.storage.names import (
    body_chunks,
    check_bucket_name,
    check_key,
    check_part_number,
    resolve_range,
)
from openmaker.storage.s3 import S3ObjectStore

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.parametrize("name", [
    "abc", "a" * 63, "my-bucket", "my.bucket.name", "0bucket", "bucket9", "a-b.c-d",
    "xn-almost", "s3alias-first",
])
def test_valid_bucket_names(name):
    check_bucket_name(name)


@pytest.mark.parametrize(("name", "reason"), [
    ("ab", "3 to 63 characters"),
    ("a" * 64, "3 to 63 characters"),
    ("MyBucket", "lower-case"),
    ("my_bucket", "lower-case"),
    ("-bucket", "begin and end"),
    ("bucket.", "begin and end"),
    ("my..bucket", "adjacent dots"),
    ("10.0.0.1", "IP address"),
    ("xn--bucket", "'xn--'"),
    ("sthree-bucket", "'sthree-'"),
    ("bucket-s3alias", "'-s3alias'"),
    ("bucket--ol-s3", "'--ol-s3'"),
])
def test_invalid_bucket_names_say_why(name, reason):
    with pytest.raises(InvalidBucketName) as caught:
        check_bucket_name(name)
    assert caught.value.message.startswith("The specified bucket is not valid.")
    assert reason in caught.value.message
    assert caught.value.extra == {"BucketName": name}


@pytest.mark.parametrize("key", [
    "a", "a/b/c", "folder/", "a//b", "./a", "a/.", "...", "a..b", "..a", "a/..b/c",
    "k" * 1024, "é" * 512, "emoji 😀", "back\\slash",
])
def test_valid_keys(key):
    assert check_key(key) == key.encode()


@pytest.mark.parametrize(("key", "error", "words"), [
    ("", InvalidObjectName, "non-empty"),
    ("..", InvalidObjectName, "'..' segment"),
    ("../a", InvalidObjectName, "'..' segment"),
    ("a/../b", InvalidObjectName, "'..' segment"),
    ("a/..", InvalidObjectName, "'..' segment"),
    ("/a", InvalidObjectName, "begin with '/'"),
    ("a\0b", InvalidObjectName, "NUL"),
    ("\udcff", InvalidObjectName, "surrogate"),
    ("k" * 1025, KeyTooLongError, "too long"),
    ("é" * 513, KeyTooLongError, "too long"),
])
def test_invalid_keys(key, error, words):
    with pytest.raises(error) as caught:
        check_key(key)
    assert words in caught.value.message


def test_key_too_long_reports_sizes():
    with pytest.raises(KeyTooLongError) as caught:
        check_key("é" * 513)
    assert caught.value.extra == {"Size": 1026, "MaxSizeAllowed": 1024}
    assert caught.value.code == "KeyTooLongError"


@pytest.mark.parametrize(("size", "byte_range", "expected"), [
    (10, None, (0, 9)),
    (10, (None, None), (0, 9)),
    (10, (2, 5), (2, 5)),
    (10, (2, None), (2, 9)),
    (10, (2, 99), (2, 9)),
    (10, (None, 4), (6, 9)),
    (10, (None, 99), (0, 9)),
    (10, (5, 3), (0, 9)),  # last before first: ignored, as HTTP says
    (0, None, (0, -1)),
])
def test_resolve_range(size, byte_range, expected):
    assert resolve_range(size, byte_range) == expected


@pytest.mark.parametrize(("size", "byte_range"), [
    (10, (10, None)), (10, (10, 12)), (10, (None, 0)), (0, (0, None)), (0, (None, 1)),
    (10, (-1, 5)),
])
def test_unsatisfiable_range(size, byte_range):
    with pytest.raises(InvalidRange) as caught:
        resolve_range(size, byte_range)
    assert caught.value.extra["ActualObjectSize"] == size
    assert caught.value.message == "The requested range is not satisfiable"


def test_part_numbers():
    for number in (1, 5000, 10_000):
        check_part_number(number)
    for number in (0, 10_001, -3, True, "1", 1.0):
        with pytest.raises(InvalidArgument):
            check_part_number(number)


def test_body_chunks():
    import io

    assert list(body_chunks(b"abc")) == [b"abc"]
    assert list(body_chunks(io.BytesIO(b"a\nb\n" * 3), chunk_size=5)) == [
        b"a\nb\na", b"\nb\na\n", b"b\n"]
    assert list(body_chunks([b"x", bytearray(b"y")])) == [b"x", bytearray(b"y")]
    with pytest.raises(TypeError, match="must be bytes"):
        list(body_chunks(["text"]))


# -- S3Uri --------------------------------------------------------------------------------
def test_s3_uri_parse_and_format():
    uri = S3Uri.parse("s3://my-bucket/data/train.csv")
    assert (uri.bucket, uri.key) == ("my-bucket", "data/train.csv")
    assert str(uri) == "s3://my-bucket/data/train.csv"
    assert not uri.is_prefix
    assert S3Uri.parse("s3://my-bucket") == S3Uri("my-bucket", "")
    assert S3Uri.parse("s3://my-bucket/").is_prefix
    assert S3Uri.parse("s3://my-bucket/a/b/").key == "a/b/"
    assert str(S3Uri("b", "")) == "s3://b/"
    with pytest.raises(AttributeError):
        uri.bucket = "other"  # type: ignore[misc]


def test_s3_uri_join():
    assert S3Uri.parse("s3://b/out").join("model.tar.gz") == S3Uri("b", "out/model.tar.gz")
    assert S3Uri.parse("s3://b/out/").join("model.tar.gz") == S3Uri("b", "out/model.tar.gz")
    assert S3Uri.parse("s3://b").join("x/y") == S3Uri("b", "x/y")
    assert S3Uri.parse("s3://b/a").join("/x") == S3Uri("b", "a/x")


@pytest.mark.parametrize("text", [
    "http://bucket/key", "bucket/key", "s3:/bucket/key", "s3://", "s3:///key", "", "S3 bucket",
])
def test_s3_uri_refuses_other_text(text):
    with pytest.raises(ValueError, match="s3://"):
        S3Uri.parse(text)


# -- choosing a store ---------------------------------------------------------------------
def test_open_local_store(tmp_path):
    store = open_object_store(Settings(home=tmp_path, storage_fsync=False))
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "storage" and store.fsync is False
    store.create_bucket("made-here")
    assert (tmp_path / "storage" / "made-here").is_dir()


def test_open_s3_store(tmp_path):
    settings = Settings(home=tmp_path, storage_backend="s3",
                        s3_endpoint_url="http://127.0.0.1:9", s3_region="eu-west-1",
                        s3_access_key_id="id", s3_secret_access_key="secret")
    store = open_object_store(settings)
    assert isinstance(store, S3ObjectStore)
    assert (store.endpoint_url, store.region) == ("http://127.0.0.1:9", "eu-west-1")


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="'local' or 's3'"):
        open_object_store(Settings(home=tmp_path, storage_backend="ftp"))


def test_importing_the_stores_does_not_import_boto3():
    code = ("import sys, openmaker.storage, openmaker.storage.local, openmaker.storage.s3;"
            "sys.exit('boto3' in sys.modules or 'botocore' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": SRC},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or "boto3 was imported"


def test_lazy_store_names():
    import openmaker.storage as storage

    assert storage.LocalObjectStore is LocalObjectStore
    assert storage.S3ObjectStore is S3ObjectStore
    with pytest.raises(AttributeError):
        storage.NoSuchThing  # noqa: B018
