"""``PerPlatform``: one object per platform, made once, dropped with the platform."""

from __future__ import annotations

import gc
import threading

from openmaker.config import load_settings
from openmaker.core.platform import PerPlatform, Platform


def test_one_object_per_platform_made_once_even_from_many_threads(tmp_path):
    made = []
    per = PerPlatform(lambda platform: made.append(platform) or object())
    first, second = Platform(load_settings(tmp_path / "a")), Platform(load_settings(tmp_path / "b"))
    assert per.existing() == [] and per.existing(first) == []
    results = []
    threads = [threading.Thread(target=lambda: results.append(per(first))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(r) for r in results}) == 1 and made == [first]
    assert per(second) is not per(first)
    assert per.existing(first) == [results[0]] and len(per.existing()) == 2
    del second, made[:]
    gc.collect()
    assert per.existing() == [results[0]]  # the second platform's object went with it
