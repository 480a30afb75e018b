"""The target-tracking loop: every ``evaluation_seconds`` each scalable target's policies
are evaluated and its variant's instance count changed when they call for it.

Per target, over the last period: ``metric = invocations * 60 / (period seconds * current
instances)`` (``SageMakerVariantInvocationsPerInstance`` is per minute per instance), and
each policy wants ``ceil(current * metric / TargetValue)``; the largest wish wins (so a
policy with ``DisableScaleIn`` keeps the count from falling), clamped to
``[MinCapacity, MaxCapacity]``. A scale-out waits ``ScaleOutCooldown`` (default 300 s)
after the last scale-out; a scale-in waits ``ScaleInCooldown`` after the last scale-in and
``ScaleOutCooldown`` after the last scale-out. ``SuspendedState`` stops either direction.
A count outside ``[MinCapacity, MaxCapacity]`` (after RegisterScalableTarget narrows them)
is brought inside at once, policies or not.

Zero traffic scales in to MinCapacity (SageMaker's behaviour since 2021) unless the target
carries the tag ``openmaker:zero-traffic = hold`` (the older behaviour: no datapoints, no
scale-in). Each change is recorded as a scaling activity, ``Successful`` or ``Failed``.

Targets whose endpoint is missing or not ``InService`` are skipped. The interval defaults
to 60 s (CloudWatch's one-minute metric); ``OPENMAKER_AUTOSCALING_INTERVAL_SECONDS``
overrides it, read when the server's scaler is made.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

from openmaker.autoscaling.service import (
    DEFAULT_COOLDOWN_SECONDS,
    ZERO_TRAFFIC_TAG,
    AutoscalingStore,
    autoscaling_store,
    split_resource_id,
)
from openmaker.core.platform import PerPlatform, Platform

log = logging.getLogger("openmaker.autoscaling")

DEFAULT_INTERVAL_SECONDS = 60.0
INTERVAL_ENV = "OPENMAKER_AUTOSCALING_INTERVAL_SECONDS"

Invocations = Callable[[str, str, float, float], int]  # (endpoint, variant, since, until)
SetCapacity = Callable[[str, str, int], None]  # (endpoint, variant, count)
Capacity = Callable[[str, str], "int | None"]  # (endpoint, variant) -> count, None to skip


def _default_invocations(platform: Platform) -> Invocations:
    def invocations(endpoint: str, variant: str, since: float, until: float) -> int:
        try:
            from openmaker.hosting.metrics import invocation_count
        except (ImportError, AttributeError):
            return 0  # no invocation metrics yet: treated as no traffic
        return int(invocation_count(platform, endpoint, variant, since, until))

    return invocations


def _default_set_capacity(platform: Platform) -> SetCapacity:
    def set_capacity(endpoint: str, variant: str, count: int) -> None:
        from openmaker.hosting.endpoints import set_variant_capacity

        set_variant_capacity(platform, endpoint, variant, count)

    return set_capacity


def _default_capacity(platform: Platform) -> Capacity:
    def capacity(endpoint: str, variant: str) -> int | None:
        from openmaker.hosting.endpoints import endpoint_record

        record = endpoint_record(platform, endpoint)
        if record is None or record.get("EndpointStatus") != "InService":
            return None
        for summary in record.get("ProductionVariants", []):
            if summary["VariantName"] == variant:
                count = summary.get("DesiredInstanceCount",
                                    summary.get("CurrentInstanceCount"))
                return None if count is None else int(count)
        return None

    return capacity


def interval_from_environment() -> float:
    text = os.environ.get(INTERVAL_ENV)
    if not text:
        return DEFAULT_INTERVAL_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        log.warning("%s=%r is not a positive number of seconds; using %s", INTERVAL_ENV,
                    text, DEFAULT_INTERVAL_SECONDS)
        return DEFAULT_INTERVAL_SECONDS
    return value


class Scaler:
    """Evaluates every scalable target of ``store`` each ``evaluation_seconds``.

    ``invocations``, ``set_capacity`` and ``capacity`` reach the endpoints (defaults: the
    hosting area's metrics and endpoint functions of ``platform``; ``since`` and ``until``
    are epoch seconds); ``clock`` returns epoch seconds. ``platform`` may be None when
    ``store`` and all three callables are given.
    """

    def __init__(self, platform: Platform | None, *, store: AutoscalingStore | None = None,
                 invocations: Invocations | None = None,
                 set_capacity: SetCapacity | None = None, capacity: Capacity | None = None,
                 clock: Callable[[], float] = time.time,
                 evaluation_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        if platform is None and None in (store, invocations, set_capacity, capacity):
            raise ValueError("a Scaler without a platform needs store, invocations, "
                             "set_capacity and capacity")
        self.store = store or autoscaling_store(platform)  # type: ignore[arg-type]
        self.invocations = invocations or _default_invocations(platform)  # type: ignore[arg-type]
        self.set_capacity = set_capacity or _default_set_capacity(platform)  # type: ignore[arg-type]
        self.capacity = capacity or _default_capacity(platform)  # type: ignore[arg-type]
        self.clock = clock
        self.evaluation_seconds = evaluation_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="openmaker-autoscaler",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.evaluation_seconds):
            try:
                self.evaluate()
            except Exception:  # one bad pass must not end scaling for good
                log.exception("autoscaling evaluation failed")

    # -- one pass ---------------------------------------------------------------------------
    def evaluate(self) -> None:
        """Evaluate every target once, at ``clock()``."""
        for target in self.store.list_targets():
            try:
                self.evaluate_target(target)
            except Exception:
                log.exception("autoscaling %s failed", target["resource_id"])

    def evaluate_target(self, target: dict) -> int | None:
        """Scale ``target``'s variant if its policies call for it; returns the new count
        when it was changed."""
        endpoint, variant = split_resource_id(target["resource_id"])
        current = self.capacity(endpoint, variant)
        if current is None or current < 1:
            return None
        low, high = target["min_capacity"], target["max_capacity"]
        if not low <= current <= high:
            desired = min(max(current, low), high)
            bound = "minimum" if current < low else "maximum"
            return self._change(target, endpoint, variant, current, desired,
                                f"{bound} capacity was set to {desired}")
        now = self.clock()
        policies = self.store.list_policies(target_id=target["id"])
        if not policies:
            return None
        count = self.invocations(endpoint, variant, now - self.evaluation_seconds, now)
        metric = count * 60.0 / (self.evaluation_seconds * current)
        hold_without_traffic = target["tags"].get(ZERO_TRAFFIC_TAG) == "hold"
        wishes = []
        for policy in policies:
            configuration = policy["configuration"]
            wish = math.ceil(current * metric / configuration["TargetValue"] - 1e-9)
            if configuration.get("DisableScaleIn") or (count == 0 and hold_without_traffic):
                wish = max(wish, current)
            wishes.append((wish, policy))
        desired, policy = max(wishes, key=lambda pair: pair[0])
        desired = min(max(desired, low), high)
        if desired == current:
            return None
        configuration = policy["configuration"]
        out_cooldown = configuration.get("ScaleOutCooldown", DEFAULT_COOLDOWN_SECONDS)
        in_cooldown = configuration.get("ScaleInCooldown", DEFAULT_COOLDOWN_SECONDS)
        suspended = target["suspended"]
        if desired > current:
            if suspended.get("DynamicScalingOutSuspended"):
                return None
            if _within(target["last_scale_out"], out_cooldown, now):
                return None
        else:
            if suspended.get("DynamicScalingInSuspended"):
                return None
            if (_within(target["last_scale_in"], in_cooldown, now)
                    or _within(target["last_scale_out"], out_cooldown, now)):
                return None
        side = "AlarmHigh" if desired > current else "AlarmLow"
        alarm = next((a["AlarmName"] for a in policy["alarms"] if side in a["AlarmName"]),
                     side)
        cause = f"monitor alarm {alarm} in state ALARM triggered policy {policy['name']}"
        return self._change(target, endpoint, variant, current, desired, cause)

    def _change(self, target: dict, endpoint: str, variant: str, current: int, desired: int,
                cause: str) -> int | None:
        start = self.clock()
        status, message = "Successful", None
        try:
            self.set_capacity(endpoint, variant, desired)
        except Exception as exc:
            status = "Failed"
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        end = self.clock()
        self.store.add_activity(
            target["namespace"], target["resource_id"], target["dimension"],
            description=f"Setting desired instance count to {desired}.", cause=cause,
            start_ms=int(start * 1000), end_ms=int(end * 1000), status_code=status,
            status_message=message)
        if status != "Successful":
            log.warning("scaling %s to %d failed: %s", target["resource_id"], desired, message)
            return None
        self.store.mark_scaled(target["id"], "out" if desired > current else "in",
                               int(end * 1000))
        return desired


def _within(last_ms: int | None, cooldown_seconds: float, now: float) -> bool:
    return last_ms is not None and now * 1000 - last_ms < cooldown_seconds * 1000


_scalers: PerPlatform[Scaler] = PerPlatform(
    lambda platform: Scaler(platform, evaluation_seconds=interval_from_environment()))


def start_scaler(platform: Platform) -> Scaler:
    """The platform's running scaler, started on first call."""
    scaler = _scalers(platform)
    scaler.start()
    return scaler


def resume_scaling(platform: Platform) -> None:
    """At server start: run the scaler when targets were registered before."""
    if autoscaling_store(platform).has_targets():
        start_scaler(platform)
