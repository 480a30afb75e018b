"""Object-store fixtures: every contract test runs against the local directory store and
against the S3 store pointed at a moto server on loopback."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from openmaker.storage.base import MIN_PART_SIZE, ObjectStore
from openmaker.storage.local import LocalObjectStore
from openmaker.storage.s3 import S3ObjectStore

# Small parts keep the local multipart tests fast; moto keeps S3's real 5 MiB minimum.
LOCAL_MIN_PART_SIZE = 64 * 1024


@dataclass
class StoreCase:
    kind: str  # "local" or "s3"
    store: ObjectStore
    min_part_size: int  # the smallest part (but the last) this store accepts


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 with a free port, for this test session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest, tmp_path) -> StoreCase:
    if request.param == "local":
        store = LocalObjectStore(tmp_path / "storage", fsync=False,
                                 min_part_size=LOCAL_MIN_PART_SIZE)
        return StoreCase("local", store, LOCAL_MIN_PART_SIZE)
    store = request.getfixturevalue("moto_store")
    reset_moto(store.endpoint_url)
    return StoreCase("s3", store, MIN_PART_SIZE)


@pytest.fixture(scope="session")
def moto_store(moto_endpoint: str) -> S3ObjectStore:
    """One S3 store for the session: making a boto3 client costs a tenth of a second."""
    return S3ObjectStore(endpoint_url=moto_endpoint, region="us-east-1",
                         access_key_id="testing", secret_access_key="testing")


@pytest.fixture
def store(case: StoreCase) -> ObjectStore:
    return case.store


@pytest.fixture
def bucket_name(store: ObjectStore) -> str:
    """A fresh, empty bucket."""
    store.create_bucket("test-bucket")
    return "test-bucket"


@pytest.fixture
def local_store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "storage", fsync=False, min_part_size=LOCAL_MIN_PART_SIZE)
