"""The object store: S3 buckets and objects over a local directory or an S3-compatible
endpoint, chosen by ``settings.storage_backend``.

``open_object_store(settings)`` returns the configured :class:`ObjectStore`; both
implementations pass one contract suite (``tests/storage/test_object_store.py``). The
implementations are imported only when a store is opened, so importing this package
stays cheap (boto3 in particular is loaded by the S3 store on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from openmaker.storage.base import (
    DEFAULT_CONTENT_TYPE,
    MAX_KEY_BYTES,
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MAX_SINGLE_PUT_SIZE,
    MIN_PART_SIZE,
    Body,
    BucketInfo,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
)
from openmaker.storage.uri import S3Uri

if TYPE_CHECKING:
    from openmaker.config import Settings
    from openmaker.storage.local import LocalObjectStore
    from openmaker.storage.s3 import S3ObjectStore

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_KEY_BYTES",
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MAX_SINGLE_PUT_SIZE",
    "MIN_PART_SIZE",
    "Body",
    "BucketInfo",
    "ListPage",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectReader",
    "ObjectStore",
    "PartInfo",
    "PartsPage",
    "S3ObjectStore",
    "S3Uri",
    "UploadInfo",
    "open_object_store",
]


def open_object_store(settings: Settings) -> ObjectStore:
    """The object store ``settings`` configure: ``"local"`` (a directory in the home) or
    ``"s3"`` (an S3-compatible endpoint)."""
    backend = settings.storage_backend
    if backend == "local":
        from openmaker.storage.local import LocalObjectStore

        return LocalObjectStore(
            settings.storage_dir, fsync=settings.storage_fsync, region=settings.region
        )
    if backend == "s3":
        from openmaker.storage.s3 import S3ObjectStore

        return S3ObjectStore(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region or settings.region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    raise ValueError(
        f"storage backend must be 'local' or 's3', got {backend!r} "
        "(OPENMAKER_STORAGE_BACKEND or [storage] backend)"
    )


def __getattr__(name: str) -> object:
    # The implementations load on first use, keeping `import openmaker.storage` light.
    if name == "LocalObjectStore":
        from openmaker.storage.local import LocalObjectStore

        return LocalObjectStore
    if name == "S3ObjectStore":
        from openmaker.storage.s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
