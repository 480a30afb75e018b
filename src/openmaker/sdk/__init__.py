"""The Pythonic SDK: sessions bound to an openmaker server, built on boto3 clients."""

from openmaker.sdk.session import ServerStartError, Session, StorageEntry

__all__ = ["ServerStartError", "Session", "StorageEntry"]
