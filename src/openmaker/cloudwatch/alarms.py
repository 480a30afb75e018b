"""CloudWatch metric alarms: ``PutMetricAlarm``, ``DescribeAlarms``, ``DeleteAlarms``,
``SetAlarmState`` and ``DescribeAlarmHistory`` over the metrics
:mod:`openmaker.cloudwatch.metrics` serves (training-job metrics and endpoint invocation
metrics), and :func:`alarm_states`, which a blue/green deployment polls to roll back.

An alarm watches one metric (``Namespace``, ``MetricName``, ``Dimensions``) with one
``Statistic`` or percentile ``ExtendedStatistic``. Alarms live in the platform database
(tables ``cloudwatch_alarms`` and ``cloudwatch_alarm_history``), keyed by their
case-sensitive name. Metric math (``Metrics``), anomaly-detection thresholds
(``ThresholdMetricId`` and the band operators) and PromQL ``EvaluationCriteria`` are
refused with ``NotImplemented`` naming the field. Actions (``AlarmActions``,
``OKActions``, ``InsufficientDataActions``) are stored and shown but not executed.

Evaluation happens when an alarm is read (``DescribeAlarms``, :func:`alarm_state`,
:func:`alarm_states`), not on a timer. The window is the last ``EvaluationPeriods``
periods up to now, the newest being the period in progress (periods are aligned to the
epoch, so a 60-second period runs from a whole minute); each period's datapoint is the
statistic of its points. A period without points is missing, and ``TreatMissingData``
decides: ``breaching`` counts it as breaching, ``notBreaching`` as not, and ``missing``
(the default) and ``ignore`` leave it out. The alarm is ``ALARM`` when at least
``DatapointsToAlarm`` (default ``EvaluationPeriods``) datapoints breach, else ``OK``;
with no datapoint at all it is ``INSUFFICIENT_DATA`` under ``missing`` and keeps its
state under ``ignore``. A state set by ``SetAlarmState`` holds for one ``Period`` from
the moment it was set; the first evaluation after that decides again. A change of state
updates ``StateValue``, ``StateReason``, ``StateReasonData``, ``StateUpdatedTimestamp``
and ``StateTransitionedTimestamp`` and adds a ``StateUpdate`` history item;
``SetAlarmState`` to the current state updates only ``StateUpdatedTimestamp``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openmaker.cloudwatch import metrics
from openmaker.cloudwatch.metrics import (
    CloudWatchError,
    InvalidNextToken,
    InvalidParameterCombination,
    InvalidParameterValue,
    ValidationError,
    missing_parameter,
)
from openmaker.core import errors
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import PerPlatform, Platform, RequestContext
from openmaker.training.metrics import now_ms, to_datetime

SCHEMA_VERSION = 1
OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)
COMPARISONS = {
    "GreaterThanThreshold": (lambda value, threshold: value > threshold, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda value, threshold: value >= threshold,
                                      "greater than or equal to"),
    "LessThanThreshold": (lambda value, threshold: value < threshold, "less than"),
    "LessThanOrEqualToThreshold": (lambda value, threshold: value <= threshold,
                                   "less than or equal to"),
}
TREATMENTS = ("missing", "notBreaching", "breaching", "ignore")
ALARM_PERIODS_BELOW_A_MINUTE = (10, 30)
MAX_EVALUATION_SECONDS = 86_400
DESCRIBE_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 100
METRIC_ALARM = "MetricAlarm"
# members of PutMetricAlarm kept as given and shown by DescribeAlarms
CONFIG_MEMBERS = (
    "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
    "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
    "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
    "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile",
)
UNSUPPORTED_MEMBERS = {
    "Metrics": "metric math alarms",
    "ThresholdMetricId": "anomaly detection alarms",
    "EvaluationCriteria": "PromQL alarms",
}


class ResourceNotFound(CloudWatchError):
    """No alarm of that name."""

    code = "ResourceNotFound"
    status = 404


class InvalidFormat(CloudWatchError):
    """``StateReasonData`` is not JSON."""

    code = "InvalidFormat"


# --- store -------------------------------------------------------------------------------
_metadata = sa.MetaData()
_alarms = sa.Table(
    "cloudwatch_alarms", _metadata,
    sa.Column("name", Key, primary_key=True),
    sa.Column("arn", sa.String, nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON of CONFIG_MEMBERS and Tags
    sa.Column("config_updated", sa.BigInteger, nullable=False),  # epoch ms
    sa.Column("state_value", sa.String, nullable=False),
    sa.Column("state_reason", sa.Text, nullable=False),
    sa.Column("state_reason_data", sa.Text, nullable=True),
    sa.Column("state_updated", sa.BigInteger, nullable=False),
    sa.Column("state_transitioned", sa.BigInteger, nullable=False),
    sa.Column("state_held_until", sa.BigInteger, nullable=True),  # SetAlarmState's hold
)
_history = sa.Table(
    "cloudwatch_alarm_history", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("alarm_name", Key, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("item_type", sa.String, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("cloudwatch_alarm_history_by_name", "alarm_name", "timestamp", "id"),
)


class AlarmStore:
    """Alarms and their history in the platform's database."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        create_schema(self.engine, _metadata, "cloudwatch-alarms", SCHEMA_VERSION)

    def close(self) -> None:
        self.engine.dispose()

    def get(self, name: str) -> Any | None:
        with reading(self.engine) as connection:
            return connection.execute(
                sa.select(_alarms).where(_alarms.c.name == name)).first()

    def select(self, names: Sequence[str] | None = None, prefix: str | None = None,
               ) -> list[Any]:
        query = sa.select(_alarms).order_by(_alarms.c.name)
        if names is not None:
            query = query.where(_alarms.c.name.in_(list(names)))
        with reading(self.engine) as connection:
            rows = connection.execute(query).all()
        # prefix matched here: LIKE would treat "_" and "%" in names as wildcards
        return [row for row in rows if prefix is None or row.name.startswith(prefix)]


alarm_store: PerPlatform[AlarmStore] = PerPlatform(
    lambda platform: AlarmStore(platform.settings.resolved_database_url))
"""The platform's alarm store, opened (and its tables created) on first use."""


def _history_row(name: str, when: int, item_type: str, summary: str, data: dict) -> dict:
    return {"alarm_name": name, "timestamp": when, "item_type": item_type,
            "summary": summary, "data": json.dumps(data, separators=(",", ":"))}


def _iso(ms: int) -> str:
    return to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


# --- evaluation --------------------------------------------------------------------------
def alarm_state(platform: Platform, name: str) -> str:
    """The state of alarm ``name`` evaluated now (``OK``, ``ALARM`` or
    ``INSUFFICIENT_DATA``); ResourceNotFound when there is no such alarm."""
    row = _evaluated(platform, name)
    if row is None:
        raise ResourceNotFound(f"The alarm {name} does not exist.")
    return row.state_value


def alarm_states(platform: Platform, names: list[str]) -> dict[str, str]:
    """Each name's alarm state evaluated now; ``INSUFFICIENT_DATA`` for a name with no
    alarm. A deployment rolls back when any of its alarms is ``ALARM``."""
    states = {}
    for name in names:
        row = _evaluated(platform, name)
        states[name] = INSUFFICIENT_DATA if row is None else row.state_value
    return states


def _evaluated(platform: Platform, name: str) -> Any | None:
    store = alarm_store(platform)
    row = store.get(name)
    return None if row is None else _evaluate(platform, store, row)


def _evaluate(platform: Platform, store: AlarmStore, row: Any) -> Any:
    """``row`` after evaluating its alarm now, the new state stored when it changed."""
    now = now_ms()
    if row.state_held_until is not None and now < row.state_held_until:
        return row
    config = json.loads(row.config)
    state, reason, data = _decide(platform, config, row.state_value, now)
    if state == row.state_value:
        return row
    c = _alarms.c
    with writing(store.engine) as connection:
        # only when nobody changed the alarm since it was read
        changed = connection.execute(
            _alarms.update()
            .where(c.name == row.name, c.state_updated == row.state_updated,
                   c.config_updated == row.config_updated)
            .values(state_value=state, state_reason=reason,
                    state_reason_data=json.dumps(data, separators=(",", ":")),
                    state_updated=now, state_transitioned=now, state_held_until=None))
        if changed.rowcount:
            connection.execute(_history.insert(), [_state_update(
                row.name, now, row.state_value, row.state_reason, state, reason, data)])
    return store.get(row.name) or row


def _state_update(name: str, when: int, old: str, old_reason: str, new: str, reason: str,
                  data: dict | None) -> dict:
    new_state: dict[str, Any] = {"stateValue": new, "stateReason": reason}
    if data is not None:
        new_state["stateReasonData"] = data
    return _history_row(name, when, "StateUpdate", f"Alarm updated from {old} to {new}",
                        {"version": "1.0", "oldState": {"stateValue": old,
                                                        "stateReason": old_reason},
                         "newState": new_state})


def _decide(platform: Platform, config: dict, current: str, now: int,
            ) -> tuple[str, str, dict]:
    """(state, reason, reason data) of the alarm over the periods up to ``now``."""
    period = config["Period"]
    step = period * 1000
    count = config["EvaluationPeriods"]
    needed = config.get("DatapointsToAlarm", count)
    stat = config.get("Statistic") or config["ExtendedStatistic"]
    threshold = config["Threshold"]
    breaches, phrase = COMPARISONS[config["ComparisonOperator"]]
    start = now - now % step - (count - 1) * step
    values = metrics.period_statistics(
        platform, config["Namespace"], config["MetricName"], config.get("Dimensions"), stat,
        config.get("Unit"), start, start + count * step, period)
    datapoints = sorted(values.items(), reverse=True)
    data = {"version": "1.0", "queryDate": _iso(now), "startDate": _iso(start),
            "statistic" if config.get("Statistic") else "extendedStatistic": stat,
            "period": period, "recentDatapoints": [value for _, value in datapoints],
            "threshold": threshold,
            "evaluatedDatapoints": [{"timestamp": _iso(stamp), "value": value}
                                    for stamp, value in datapoints]}
    treatment = config.get("TreatMissingData", "missing")
    missing = count - len(values)
    if not values and treatment in ("missing", "ignore"):
        if treatment == "ignore":
            return current, "", data
        return (INSUFFICIENT_DATA, f"Insufficient Data: {count} datapoint"
                f"{'s were' if count != 1 else ' was'} unknown.", data)
    breaching = sum(breaches(value, threshold) for _, value in datapoints)
    if treatment == "breaching":
        breaching += missing
    state = ALARM if breaching >= needed else OK
    shown = ", ".join(f"{value} ({to_datetime(stamp):%d/%m/%y %H:%M:%S})"
                      for stamp, value in datapoints)
    listed = f" [{shown}]" if shown else ""
    verb = "was" if breaching == 1 else "were"
    if state == ALARM:
        reason = (f"Threshold Crossed: {breaching} out of the last {count} datapoints"
                  f"{listed} {verb} {phrase} the threshold ({threshold}) (minimum {needed} "
                  f"datapoint{'s' if needed != 1 else ''} for OK -> ALARM transition).")
    else:
        reason = (f"Threshold Crossed: {breaching} out of the last {count} datapoints"
                  f"{listed} {verb} {phrase} the threshold ({threshold}), fewer than the "
                  f"{needed} that put the alarm in ALARM.")
    if missing and treatment != "missing":
        reason += f" {missing} missing datapoint{'s' if missing != 1 else ''} treated as " \
                  f"{treatment}."
    return state, reason, data


# --- PutMetricAlarm ----------------------------------------------------------------------
def put_metric_alarm(ctx: RequestContext, params: dict) -> dict:
    """Create the alarm, or replace its configuration keeping its state."""
    config = _checked_config(params)
    name = params["AlarmName"]
    now = now_ms()
    store = alarm_store(ctx.platform)
    text = json.dumps(config, separators=(",", ":"), default=str)
    with writing(store.engine) as connection:
        found = connection.execute(
            sa.select(_alarms.c.name).where(_alarms.c.name == name)).first()
        if found is None:
            connection.execute(_alarms.insert().values(
                name=name, arn=f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{name}",
                config=text, config_updated=now, state_value=INSUFFICIENT_DATA,
                state_reason="Unchecked: Initial alarm creation", state_reason_data=None,
                state_updated=now, state_transitioned=now, state_held_until=None))
            summary = f'Alarm "{name}" created'
        else:
            connection.execute(_alarms.update().where(_alarms.c.name == name)
                               .values(config=text, config_updated=now))
            summary = f'Alarm "{name}" updated'
        shown = {key: value for key, value in config.items() if key != "Tags"}
        connection.execute(_history.insert(), [_history_row(
            name, now, "ConfigurationUpdate", summary,
            {"version": "1.0", "type": "Create" if found is None else "Update",
             "createdAlarm" if found is None else "updatedAlarm": shown})])
    return {}


def _checked_config(params: dict) -> dict:
    for member, kind in UNSUPPORTED_MEMBERS.items():
        if params.get(member) is not None:
            raise errors.NotImplementedOperation(
                f"{member}: {kind} are not implemented by openmaker; give MetricName, "
                "Namespace, Dimensions and Statistic or ExtendedStatistic instead.")
    for member in ("MetricName", "Namespace", "Period", "EvaluationPeriods", "Threshold",
                   "ComparisonOperator"):
        if params.get(member) is None:
            raise missing_parameter(member)
    statistic, extended = params.get("Statistic"), params.get("ExtendedStatistic")
    if (statistic is None) == (extended is None):
        raise InvalidParameterCombination(
            "Exactly one of the parameters Statistic and ExtendedStatistic must be "
            "specified.")
    if extended is not None and (metrics.PERCENTILE.fullmatch(extended) is None
                                 or not metrics.is_statistic(extended)):
        raise InvalidParameterValue(
            f"The value {extended} for parameter ExtendedStatistic is not a valid percentile "
            "statistic: use p0 to p100, such as p90 or p99.9.")
    period = params["Period"]
    if period not in ALARM_PERIODS_BELOW_A_MINUTE and period % 60 != 0:
        raise InvalidParameterValue(
            f"The value {period} for parameter Period is not valid: an alarm's period is 10, "
            "30 or a multiple of 60 seconds.")
    count = params["EvaluationPeriods"]
    if period * count > MAX_EVALUATION_SECONDS:
        raise ValidationError(
            "Metrics cannot be checked across more than a day (EvaluationPeriods * Period "
            f"must be <= {MAX_EVALUATION_SECONDS}); it is {period * count}.")
    needed = params.get("DatapointsToAlarm")
    if needed is not None and needed > count:
        raise ValidationError(
            f"DatapointsToAlarm ({needed}) must be less than or equal to EvaluationPeriods "
            f"({count}).")
    operator = params["ComparisonOperator"]
    if operator not in COMPARISONS:
        raise InvalidParameterValue(
            f"The value {operator} for parameter ComparisonOperator needs an anomaly "
            "detection band (ThresholdMetricId), which openmaker does not implement; use "
            f"one of {', '.join(COMPARISONS)}.")
    treatment = params.get("TreatMissingData")
    if treatment is not None and treatment not in TREATMENTS:
        raise InvalidParameterValue(
            f"The value {treatment} for parameter TreatMissingData is not valid; use one of "
            f"{', '.join(TREATMENTS)}.")
    low_count = params.get("EvaluateLowSampleCountPercentile")
    if low_count is not None and low_count not in ("evaluate", "ignore"):
        raise InvalidParameterValue(
            f"The value {low_count} for parameter EvaluateLowSampleCountPercentile is not "
            "valid; use evaluate or ignore.")
    dimensions = params.get("Dimensions") or []
    if len({d["Name"] for d in dimensions}) != len(dimensions):
        raise InvalidParameterValue("The collection Dimensions must not name a dimension "
                                    "twice.")
    config = {member: params[member] for member in CONFIG_MEMBERS
              if params.get(member) is not None}
    config.setdefault("Dimensions", [])
    if params.get("Tags"):
        config["Tags"] = params["Tags"]
    return config


# --- DescribeAlarms ----------------------------------------------------------------------
def describe_alarms(ctx: RequestContext, params: dict) -> dict:
    """Metric alarms by name, name prefix and state, evaluated now, in name order, 50 a
    page (``MaxRecords`` up to 100). openmaker has no composite alarms."""
    names, prefix = params.get("AlarmNames"), params.get("AlarmNamePrefix")
    if names is not None and prefix is not None:
        raise InvalidParameterCombination(
            "The parameters AlarmNames and AlarmNamePrefix are mutually exclusive.")
    fingerprint = metrics._fingerprint(params, "NextToken", "MaxRecords")
    offset = 0
    if params.get("NextToken") is not None:
        offset = metrics._decode_token(params["NextToken"], fingerprint)
        if offset is None:
            raise InvalidNextToken("The NextToken does not continue this request; pass the "
                                   "NextToken of the previous page with the same filters.")
    types = params.get("AlarmTypes")
    store = alarm_store(ctx.platform)
    alarms: list[dict] = []
    related = params.get("ChildrenOfAlarmName") or params.get("ParentsOfAlarmName")
    if (types is None or METRIC_ALARM in types) and related is None:
        rows = [_evaluate(ctx.platform, store, row) for row in store.select(names, prefix)]
        alarms = [_metric_alarm(row) for row in rows
                  if params.get("StateValue") in (None, row.state_value)
                  and _has_action_prefix(row, params.get("ActionPrefix"))]
    limit = params.get("MaxRecords", DESCRIBE_PAGE_SIZE)
    result: dict[str, Any] = {"MetricAlarms": alarms[offset:offset + limit],
                              "CompositeAlarms": []}
    if offset + limit < len(alarms):
        result["NextToken"] = metrics._encode_token(fingerprint, offset + limit)
    return result


def _has_action_prefix(row: Any, prefix: str | None) -> bool:
    if prefix is None:
        return True
    config = json.loads(row.config)
    return any(action.startswith(prefix) for member in
               ("AlarmActions", "OKActions", "InsufficientDataActions")
               for action in config.get(member, ()))


def _metric_alarm(row: Any) -> dict:
    config = json.loads(row.config)
    alarm: dict[str, Any] = {
        "AlarmName": row.name, "AlarmArn": row.arn,
        "AlarmConfigurationUpdatedTimestamp": to_datetime(row.config_updated),
        "ActionsEnabled": config.get("ActionsEnabled", True),
        "OKActions": config.get("OKActions", []),
        "AlarmActions": config.get("AlarmActions", []),
        "InsufficientDataActions": config.get("InsufficientDataActions", []),
        "StateValue": row.state_value, "StateReason": row.state_reason,
        "StateUpdatedTimestamp": to_datetime(row.state_updated),
        "StateTransitionedTimestamp": to_datetime(row.state_transitioned),
    }
    if row.state_reason_data is not None:
        alarm["StateReasonData"] = row.state_reason_data
    alarm.update({key: value for key, value in config.items()
                  if key not in alarm and key != "Tags"})
    return alarm


# --- DeleteAlarms, SetAlarmState ---------------------------------------------------------
def delete_alarms(ctx: RequestContext, params: dict) -> dict:
    """Delete the named alarms; ResourceNotFound naming those that do not exist (the
    others are still deleted, as in CloudWatch). Their history stays."""
    names = list(dict.fromkeys(params["AlarmNames"]))
    store = alarm_store(ctx.platform)
    with writing(store.engine) as connection:
        found = set(connection.execute(
            sa.select(_alarms.c.name).where(_alarms.c.name.in_(names))).scalars())
        if found:
            connection.execute(_alarms.delete().where(_alarms.c.name.in_(sorted(found))))
    unknown = [name for name in names if name not in found]
    if unknown:
        raise ResourceNotFound(f"{len(unknown)} of the AlarmNames do not exist: "
                               f"{', '.join(unknown)}.")
    return {}


def set_alarm_state(ctx: RequestContext, params: dict) -> dict:
    """Set an alarm's state until one ``Period`` has passed (then it is evaluated
    again); ``StateReasonData`` must be JSON."""
    name, state, reason = params["AlarmName"], params["StateValue"], params["StateReason"]
    reason_data = params.get("StateReasonData")
    parsed = None
    if reason_data is not None:
        try:
            parsed = json.loads(reason_data)
        except ValueError:
            raise InvalidFormat("The parameter StateReasonData must be JSON.") from None
    store = alarm_store(ctx.platform)
    now = now_ms()
    c = _alarms.c
    with writing(store.engine) as connection:
        row = connection.execute(sa.select(_alarms).where(c.name == name)).first()
        if row is None:
            raise ResourceNotFound(f"The alarm {name} does not exist.")
        period = json.loads(row.config)["Period"]
        values: dict[str, Any] = {"state_value": state, "state_reason": reason,
                                  "state_reason_data": reason_data, "state_updated": now,
                                  "state_held_until": now + period * 1000}
        if state != row.state_value:
            values["state_transitioned"] = now
            connection.execute(_history.insert(), [_state_update(
                name, now, row.state_value, row.state_reason, state, reason, parsed)])
        connection.execute(_alarms.update().where(c.name == name).values(**values))
    return {}


# --- DescribeAlarmHistory ----------------------------------------------------------------
def describe_alarm_history(ctx: RequestContext, params: dict) -> dict:
    """History items (configuration and state updates) of one alarm or all, newest first
    unless ``ScanBy`` is ``TimestampAscending``; 100 a page."""
    types = params.get("AlarmTypes")
    fingerprint = metrics._fingerprint(params, "NextToken", "MaxRecords")
    offset = 0
    if params.get("NextToken") is not None:
        offset = metrics._decode_token(params["NextToken"], fingerprint)
        if offset is None:
            raise InvalidNextToken("The NextToken does not continue this request; pass the "
                                   "NextToken of the previous page with the same filters.")
    if types is not None and METRIC_ALARM not in types:
        return {"AlarmHistoryItems": []}
    if params.get("AlarmName") is not None:
        _evaluated(ctx.platform, params["AlarmName"])
    c = _history.c
    query = sa.select(_history)
    if params.get("AlarmName") is not None:
        query = query.where(c.alarm_name == params["AlarmName"])
    if params.get("HistoryItemType") is not None:
        query = query.where(c.item_type == params["HistoryItemType"])
    if params.get("StartDate") is not None:
        query = query.where(c.timestamp >= _ms(params["StartDate"]))
    if params.get("EndDate") is not None:
        query = query.where(c.timestamp <= _ms(params["EndDate"]))
    if params.get("ScanBy") == "TimestampAscending":
        query = query.order_by(c.timestamp, c.id)
    else:
        query = query.order_by(c.timestamp.desc(), c.id.desc())
    limit = params.get("MaxRecords", HISTORY_PAGE_SIZE)
    with reading(alarm_store(ctx.platform).engine) as connection:
        rows = connection.execute(query.offset(offset).limit(limit + 1)).all()
    result: dict[str, Any] = {"AlarmHistoryItems": [
        {"AlarmName": row.alarm_name, "AlarmType": METRIC_ALARM,
         "Timestamp": to_datetime(row.timestamp), "HistoryItemType": row.item_type,
         "HistorySummary": row.summary, "HistoryData": row.data} for row in rows[:limit]]}
    if len(rows) > limit:
        result["NextToken"] = metrics._encode_token(fingerprint, offset + limit)
    return result


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
