"""The target-tracking scaler, driven with fake invocation counts, a fake capacity setter
and a clock the test moves: scale out and in, cooldowns, DisableScaleIn, suspension,
zero-traffic behaviours and the min/max clamps, each change recorded as an activity."""

from __future__ import annotations

import pytest

from openmaker.autoscaling.scaler import Scaler
from openmaker.autoscaling.service import DIMENSION, NAMESPACE, autoscaling_store
from openmaker.config import load_settings
from openmaker.core.platform import Platform

RESOURCE = "endpoint/ep/variant/AllTraffic"
INTERVAL = 60.0


class FakeEndpoint:
    """Capacity and traffic of one variant; ``set_capacity`` records each change."""

    def __init__(self, instances: int = 1) -> None:
        self.instances = instances
        self.traffic = 0  # invocations in the period the scaler asks about
        self.changes: list[int] = []
        self.fail_with: Exception | None = None
        self.asked: list[tuple[str, str, float, float]] = []

    def capacity(self, endpoint: str, variant: str) -> int:
        return self.instances

    def invocations(self, endpoint: str, variant: str, since: float, until: float) -> int:
        self.asked.append((endpoint, variant, since, until))
        return self.traffic

    def set_capacity(self, endpoint: str, variant: str, count: int) -> None:
        assert (endpoint, variant) == ("ep", "AllTraffic")
        if self.fail_with is not None:
            raise self.fail_with
        self.changes.append(count)
        self.instances = count


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store(tmp_path):
    platform = Platform(load_settings(home=tmp_path))
    yield autoscaling_store(platform)
    platform.close()


@pytest.fixture
def fake():
    return FakeEndpoint()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def scaler(store, fake, clock):
    return Scaler(None, store=store, invocations=fake.invocations,
                  set_capacity=fake.set_capacity, capacity=fake.capacity, clock=clock,
                  evaluation_seconds=INTERVAL)


def target(store, low=1, high=10, tags=None, suspended=None) -> dict:
    store.put_target(NAMESPACE, RESOURCE, DIMENSION, arn="arn:target", min_capacity=low,
                     max_capacity=high, role_arn="arn:role", suspended=suspended, tags=tags)
    found = store.get_target(NAMESPACE, RESOURCE, DIMENSION)
    return found


def policy(store, name="tracking", target_value=100.0, **configuration) -> None:
    found = store.get_target(NAMESPACE, RESOURCE, DIMENSION)
    store.put_policy(found["id"], name, policy_type="TargetTrackingScaling",
                     configuration={"TargetValue": target_value, "ScaleOutCooldown": 300,
                                    "ScaleInCooldown": 300, **configuration},
                     arn=f"arn:policy/{name}",
                     alarms=[{"AlarmName": f"TargetTracking-{RESOURCE}-AlarmHigh-x",
                              "AlarmARN": "arn:high"},
                             {"AlarmName": f"TargetTracking-{RESOURCE}-AlarmLow-x",
                              "AlarmARN": "arn:low"}])


def activities(store) -> list[dict]:
    return store.list_activities(resource_id=RESOURCE)


def test_scales_out_to_ceil_of_current_times_metric_over_target(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0)
    fake.instances, fake.traffic = 2, 500  # 250 per instance per minute
    scaler.evaluate()
    assert fake.changes == [5]  # ceil(2 * 250 / 100)
    assert fake.asked[-1] == ("ep", "AllTraffic", clock.now - INTERVAL, clock.now)
    [activity] = activities(store)
    assert activity["status_code"] == "Successful"
    assert activity["description"] == "Setting desired instance count to 5."
    assert "AlarmHigh" in activity["cause"] and "policy tracking" in activity["cause"]
    assert activity["start_time"] == activity["end_time"] == int(clock.now * 1000)


def test_no_change_while_the_metric_is_on_target(store, scaler, fake):
    target(store)
    policy(store, target_value=100.0)
    fake.instances, fake.traffic = 3, 300
    scaler.evaluate()
    assert fake.changes == [] and activities(store) == []


def test_the_metric_is_per_minute_whatever_the_interval(store, fake, clock):
    target(store)
    policy(store, target_value=100.0)
    quick = Scaler(None, store=store, invocations=fake.invocations,
                   set_capacity=fake.set_capacity, capacity=fake.capacity, clock=clock,
                   evaluation_seconds=6.0)
    fake.instances, fake.traffic = 1, 30  # 30 in 6 s = 300 a minute
    quick.evaluate()
    assert fake.changes == [3]


def test_scale_out_is_clamped_to_max_capacity(store, scaler, fake):
    target(store, high=4)
    policy(store, target_value=10.0)
    fake.traffic = 1000
    scaler.evaluate()
    assert fake.changes == [4]


def test_scales_in_with_less_traffic(store, scaler, fake):
    target(store)
    policy(store, target_value=100.0)
    fake.instances, fake.traffic = 6, 150  # 25 per instance
    scaler.evaluate()
    assert fake.changes == [2]  # ceil(6 * 25 / 100)
    [activity] = activities(store)
    assert "AlarmLow" in activity["cause"]


def test_scale_in_stops_at_min_capacity(store, scaler, fake):
    target(store, low=3)
    policy(store, target_value=100.0)
    fake.instances, fake.traffic = 6, 6
    scaler.evaluate()
    assert fake.changes == [3]


def test_scale_out_cooldown_delays_the_next_scale_out(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0, ScaleOutCooldown=120)
    fake.instances, fake.traffic = 1, 200
    scaler.evaluate()
    assert fake.changes == [2]
    fake.traffic = 400  # 200 per instance: wants 4
    clock.advance(60)
    scaler.evaluate()
    assert fake.changes == [2]  # within ScaleOutCooldown
    clock.advance(60)
    scaler.evaluate()
    assert fake.changes == [2, 4]


def test_scale_in_cooldown_delays_the_next_scale_in(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0, ScaleInCooldown=300, ScaleOutCooldown=0)
    fake.instances, fake.traffic = 8, 400  # 50 per instance: wants 4
    scaler.evaluate()
    assert fake.changes == [4]
    fake.traffic = 100  # 25 per instance: wants 1
    clock.advance(240)
    scaler.evaluate()
    assert fake.changes == [4]
    clock.advance(60)
    scaler.evaluate()
    assert fake.changes == [4, 1]


def test_scale_in_waits_out_the_scale_out_cooldown(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0, ScaleOutCooldown=300, ScaleInCooldown=0)
    fake.instances, fake.traffic = 1, 300
    scaler.evaluate()
    assert fake.changes == [3]
    fake.traffic = 0
    clock.advance(120)
    scaler.evaluate()
    assert fake.changes == [3]
    clock.advance(180)
    scaler.evaluate()
    assert fake.changes == [3, 1]


def test_scale_out_is_not_held_back_by_the_scale_in_cooldown(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0, ScaleInCooldown=600, ScaleOutCooldown=0)
    fake.instances, fake.traffic = 4, 100
    scaler.evaluate()
    assert fake.changes == [1]
    fake.traffic = 500
    clock.advance(60)
    scaler.evaluate()
    assert fake.changes == [1, 5]


def test_disable_scale_in_keeps_capacity_but_still_scales_out(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0, DisableScaleIn=True, ScaleOutCooldown=0)
    fake.instances, fake.traffic = 4, 0
    scaler.evaluate()
    assert fake.changes == []
    fake.traffic = 1000
    scaler.evaluate()
    assert fake.changes == [10]


def test_zero_traffic_scales_in_to_min_capacity_by_default(store, scaler, fake):
    target(store, low=2)
    policy(store)
    fake.instances, fake.traffic = 5, 0
    scaler.evaluate()
    assert fake.changes == [2]


def test_the_hold_tag_keeps_capacity_without_traffic(store, scaler, fake):
    target(store, low=1, tags={"openmaker:zero-traffic": "hold"})
    policy(store, target_value=100.0)
    fake.instances, fake.traffic = 5, 0
    scaler.evaluate()
    assert fake.changes == []
    fake.traffic = 50  # some traffic, well under target: scale-in goes on as usual
    scaler.evaluate()
    assert fake.changes == [1]


def test_capacity_outside_min_max_is_brought_inside_without_policies(store, scaler, fake):
    target(store, low=3, high=5)
    fake.instances = 1
    scaler.evaluate()
    assert fake.changes == [3]
    assert activities(store)[0]["cause"] == "minimum capacity was set to 3"
    target(store, low=1, high=2)
    scaler.evaluate()
    assert fake.changes == [3, 2]
    assert activities(store)[0]["cause"] == "maximum capacity was set to 2"


def test_suspended_directions_do_not_scale(store, scaler, fake):
    target(store, suspended={"DynamicScalingOutSuspended": True,
                             "DynamicScalingInSuspended": True})
    policy(store, target_value=100.0, ScaleOutCooldown=0, ScaleInCooldown=0)
    fake.instances, fake.traffic = 2, 1000
    scaler.evaluate()
    fake.traffic = 0
    scaler.evaluate()
    assert fake.changes == []


def test_the_largest_policy_wish_wins(store, scaler, fake):
    target(store)
    policy(store, "loose", target_value=200.0)
    policy(store, "tight", target_value=50.0)
    fake.instances, fake.traffic = 2, 200  # 100 per instance: loose wants 1, tight 4
    scaler.evaluate()
    assert fake.changes == [4]
    assert "policy tight" in activities(store)[0]["cause"]


def test_a_failed_change_is_recorded_and_retried(store, scaler, fake, clock):
    target(store)
    policy(store, target_value=100.0)
    fake.traffic = 300
    fake.fail_with = RuntimeError("instance did not become healthy")
    scaler.evaluate()
    [failed] = activities(store)
    assert failed["status_code"] == "Failed"
    assert failed["status_message"] == "instance did not become healthy"
    fake.fail_with = None
    clock.advance(60)
    scaler.evaluate()  # a failure starts no cooldown
    assert fake.changes == [3]
    assert [a["status_code"] for a in activities(store)] == ["Successful", "Failed"]


def test_a_variant_not_in_service_is_skipped(store, scaler, fake):
    target(store, low=3)
    policy(store)
    fake.capacity = lambda endpoint, variant: None  # type: ignore[method-assign]
    scaler.capacity = fake.capacity
    scaler.evaluate()
    assert fake.changes == [] and activities(store) == []


def test_the_loop_evaluates_every_interval(store, fake):
    import time

    target(store, low=2)
    looping = Scaler(None, store=store, invocations=fake.invocations,
                     set_capacity=fake.set_capacity, capacity=fake.capacity,
                     evaluation_seconds=0.05)
    looping.start()
    try:
        deadline = time.monotonic() + 10
        while not fake.changes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        looping.stop()
    assert fake.changes == [2]


def test_default_invocations_without_hosting_metrics_is_zero(tmp_path, monkeypatch):
    import sys

    from openmaker.autoscaling import scaler as scaler_module

    monkeypatch.setitem(sys.modules, "openmaker.hosting.metrics", None)  # import fails
    count = scaler_module._default_invocations(Platform(load_settings(home=tmp_path)))
    assert count("ep", "AllTraffic", 0.0, 60.0) == 0
