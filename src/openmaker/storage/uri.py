"""``s3://bucket/key`` URIs, parsed once into a bucket and a key."""

from __future__ import annotations

from dataclasses import dataclass

_SCHEME = "s3://"


@dataclass(frozen=True)
class S3Uri:
    """An S3 location: ``S3Uri.parse("s3://bucket/data/train.csv")``.

    ``key`` may be empty (the whole bucket) or end in ``/`` (a prefix).
    """

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split ``s3://bucket/key``; anything else raises ``ValueError``."""
        if not isinstance(uri, str) or not uri.startswith(_SCHEME):
            raise ValueError(
                f"{uri!r} is not an S3 URI: expected s3://<bucket>/<key>, "
                "for example s3://my-bucket/data/train.csv"
            )
        bucket, _, key = uri[len(_SCHEME):].partition("/")
        if not bucket:
            raise ValueError(
                f"{uri!r} names no bucket: expected s3://<bucket>/<key>, "
                "for example s3://my-bucket/data/train.csv"
            )
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{_SCHEME}{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        """True for the whole bucket or a key ending in ``/`` (a "folder")."""
        return self.key == "" or self.key.endswith("/")

    def join(self, name: str) -> S3Uri:
        """The URI of ``name`` under this one, as a folder: ``s3://b/a`` + ``x`` is ``s3://b/a/x``."""
        if not self.key:
            return S3Uri(self.bucket, name.lstrip("/"))
        base = self.key if self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, base + name.lstrip("/"))
