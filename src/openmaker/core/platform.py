"""The running platform: settings plus the stores every area works through."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

from openmaker.config import Settings

if TYPE_CHECKING:
    from openmaker.cloudwatch.logs import LogStore
    from openmaker.core.resources import ResourceStore
    from openmaker.storage.base import ObjectStore


T = TypeVar("T")


class PerPlatform(Generic[T]):
    """One ``T`` per platform -- an area's store, buffer or worker -- made by
    ``factory(platform)`` on first use and dropped with the platform."""

    def __init__(self, factory: Callable[[Platform], T]) -> None:
        self._factory = factory
        self._items: weakref.WeakKeyDictionary[Platform, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, platform: Platform) -> T:
        with self._lock:
            item = self._items.get(platform)
            if item is None:
                item = self._items[platform] = self._factory(platform)
            return item

    def existing(self, platform: Platform | None = None) -> list[T]:
        """The ``T`` already made for ``platform``, or for every platform when None."""
        with self._lock:
            if platform is None:
                return list(self._items.values())
            return [self._items[platform]] if platform in self._items else []


class Platform:
    """Opens the object store and the resource store on first use and shares them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()

    @cached_property
    def objects(self) -> ObjectStore:
        from openmaker.storage import open_object_store

        with self._lock:
            return open_object_store(self.settings)

    @cached_property
    def resources(self) -> ResourceStore:
        from openmaker.core.resources import open_resource_store

        with self._lock:
            return open_resource_store(self.settings)

    @cached_property
    def logs(self) -> LogStore:
        from openmaker.cloudwatch.logs import open_log_store

        with self._lock:
            return open_log_store(self.settings)

    def close(self) -> None:
        for name in ("resources", "objects", "logs"):
            store = self.__dict__.pop(name, None)
            if store is not None:
                store.close()


@dataclass(frozen=True)
class RequestContext:
    """Who is calling and where: handed to every operation handler."""

    platform: Platform
    region: str
    account_id: str
    request_id: str
    access_key_id: str | None = None

    @property
    def settings(self) -> Settings:
        return self.platform.settings
