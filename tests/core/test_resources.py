"""One suite for the resource store, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from openmaker.config import load_settings
from openmaker.core.errors import (
    ConflictException,
    ResourceInUse,
    ResourceLimitExceeded,
    ValidationException,
)
from openmaker.core.resources import (
    SORT_KEYS,
    ListQuery,
    Resource,
    ResourceNotFoundError,
    SqlResourceStore,
    open_resource_store,
)

OpenStore = Callable[[], SqlResourceStore]
BASE_TIME = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
SRC_DIR = Path(__file__).resolve().parents[2] / "src"


def _tags(count: int, prefix: str = "k") -> list[dict[str, str]]:
    return [{"Key": f"{prefix}{i}", "Value": f"v{i}"} for i in range(count)]


# --- create / get / update / delete --------------------------------------------------------


def test_create_then_get_returns_the_stored_resource(store: SqlResourceStore) -> None:
    created = store.create("training-job", "MyJob-1", {"TrainingJobName": "MyJob-1"},
                           status="InProgress")
    assert created.arn == (
        f"arn:aws:sagemaker:{store.region}:{store.account_id}:training-job/myjob-1")
    assert created.version == 1
    assert created.status == "InProgress"
    assert created.creation_time == created.last_modified_time
    assert created.creation_time.tzinfo is UTC
    assert abs(datetime.now(UTC) - created.creation_time) < timedelta(seconds=10)
    assert store.get("training-job", "MyJob-1") == created
    assert store.get_by_arn(created.arn) == created
    assert store.exists("training-job", "MyJob-1")
    assert not store.exists("training-job", "other")


def test_get_ignores_case_and_keeps_the_callers_spelling(store: SqlResourceStore) -> None:
    store.create("model", "MyModel", {})
    found = store.get("model", "MYMODEL")
    assert found.name == "MyModel"
    assert store.exists("model", "mymodel")


def test_status_is_optional(store: SqlResourceStore) -> None:
    assert store.create("model", "m", {}).status is None
    assert store.get("model", "m").status is None


def test_a_caller_chosen_arn_is_kept(store: SqlResourceStore) -> None:
    arn = f"arn:aws:sagemaker:{store.region}:{store.account_id}:model-package/Group/1"
    created = store.create("model-package", "Group/1", {}, arn=arn)
    assert created.arn == arn
    assert store.get_by_arn(arn).name == "Group/1"


def test_get_of_a_missing_resource_raises_not_found(store: SqlResourceStore) -> None:
    with pytest.raises(ResourceNotFoundError, match="model nope") as caught:
        store.get("model", "nope")
    assert (caught.value.resource_type, caught.value.name) == ("model", "nope")
    with pytest.raises(ResourceNotFoundError):
        store.get_by_arn(f"arn:aws:sagemaker:{store.region}:{store.account_id}:model/nope")


@pytest.mark.parametrize("second_name", ["dup-name", "DUP-Name"])
def test_a_taken_name_raises_resource_in_use(store: SqlResourceStore, second_name: str) -> None:
    store.create("endpoint", "dup-name", {"V": 1})
    with pytest.raises(ResourceInUse, match=f"endpoint {second_name}"):
        store.create("endpoint", second_name, {"V": 2}, tags=_tags(2))
    kept = store.get("endpoint", "dup-name")
    assert (kept.name, kept.record) == ("dup-name", {"V": 1})
    assert store.list_tags(kept.arn) == ([], None)


def test_callers_may_raise_their_own_conflict_error(store: SqlResourceStore) -> None:
    store.create("model", "m", {})
    own = ValidationException("Cannot create already existing model \"arn...\".")
    with pytest.raises(ValidationException) as caught:
        store.create("model", "M", {}, conflict_error=own)
    assert caught.value is own


def test_names_are_unique_per_type_only(store: SqlResourceStore) -> None:
    store.create("model", "same", {})
    store.create("endpoint", "same", {})
    assert store.get("model", "same").arn.endswith(":model/same")
    assert store.get("endpoint", "same").arn.endswith(":endpoint/same")


def test_datetimes_round_trip_with_timezone_and_microseconds(store: SqlResourceStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    stamp = datetime(2024, 2, 29, 23, 59, 58, 987654, tzinfo=plus_two)
    record = {"Created": stamp, "Nested": {"List": [stamp, {"At": BASE_TIME}]},
              "Naive": datetime(2024, 1, 1, 0, 0, 0, 1000)}
    created = store.create("training-job", "t", record, creation_time=stamp)
    for resource in (created, store.get("training-job", "t")):
        assert resource.creation_time == stamp
        assert resource.creation_time.tzinfo is UTC
        assert resource.creation_time.microsecond == 987654
        assert resource.record["Created"] == stamp
        assert resource.record["Created"].tzinfo == UTC
        assert resource.record["Nested"]["List"] == [stamp, {"At": BASE_TIME}]
        assert resource.record["Naive"] == datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)


def test_records_keep_json_values(store: SqlResourceStore) -> None:
    record = {"S": "é ü 漢", "I": 2**40, "F": 0.25, "B": False, "N": None,
              "L": [1, "two", [3]], "D": {"Deep": {"Er": True}}, "T": (1, 2)}
    assert store.create("model", "m", record).record == {**record, "T": [1, 2]}
    stored = store.get("model", "m").record
    assert stored == {**record, "T": [1, 2]}
    assert list(stored) == list(record)  # key order is kept


def test_records_with_unstorable_values_are_refused(store: SqlResourceStore) -> None:
    with pytest.raises(TypeError, match=r"record\.Bad\[1\]"):
        store.create("model", "m", {"Bad": [1, b"bytes"]})
    assert not store.exists("model", "m")


def test_update_replaces_record_and_status_and_bumps_version(store: SqlResourceStore) -> None:
    created = store.create("training-job", "job", {"Step": 1}, status="InProgress")
    updated = store.update("training-job", "JOB", record={"Step": 2}, status="Completed")
    assert (updated.record, updated.status, updated.version) == ({"Step": 2}, "Completed", 2)
    assert updated.creation_time == created.creation_time
    assert updated.last_modified_time > created.last_modified_time
    assert store.get("training-job", "job") == updated


def test_update_leaves_unspecified_fields_alone(store: SqlResourceStore) -> None:
    store.create("training-job", "job", {"Step": 1}, status="InProgress")
    assert store.update("training-job", "job", status="Stopping").record == {"Step": 1}
    assert store.update("training-job", "job", record={"Step": 2}).status == "Stopping"
    assert store.get("training-job", "job").version == 3


def test_update_of_a_missing_resource_raises_not_found(store: SqlResourceStore) -> None:
    with pytest.raises(ResourceNotFoundError):
        store.update("model", "nope", record={})
    with pytest.raises(ResourceNotFoundError):
        store.update("model", "nope", mutate=lambda record: record)


def test_update_with_a_stale_version_raises_conflict(store: SqlResourceStore) -> None:
    store.create("endpoint", "ep", {"N": 0})
    assert store.update("endpoint", "ep", record={"N": 1}, expected_version=1).version == 2
    with pytest.raises(ConflictException, match="version 2, expected 1"):
        store.update("endpoint", "ep", record={"N": 99}, expected_version=1)
    current = store.get("endpoint", "ep")
    assert (current.record, current.version) == ({"N": 1}, 2)


def test_mutate_may_return_a_record_a_status_or_change_in_place(
    store: SqlResourceStore,
) -> None:
    store.create("training-job", "job", {"N": 0}, status="InProgress")
    assert store.update("training-job", "job",
                        mutate=lambda r: {**r, "N": r["N"] + 1}).record == {"N": 1}

    def stop(record: dict) -> tuple[dict, str]:
        record["TrainingJobStatus"] = "Stopping"
        return record, "Stopping"

    stopped = store.update("training-job", "job", mutate=stop)
    assert (stopped.status, stopped.record["TrainingJobStatus"]) == ("Stopping", "Stopping")
    in_place = store.update("training-job", "job", mutate=lambda r: r.update(N=5))
    assert in_place.record["N"] == 5
    assert in_place.version == 4


def test_an_exception_in_mutate_changes_nothing(store: SqlResourceStore) -> None:
    store.create("training-job", "job", {"N": 0}, status="Completed")

    def refuse(record: dict) -> dict:
        record["N"] = 1
        raise ValidationException("job is not in progress")

    with pytest.raises(ValidationException):
        store.update("training-job", "job", mutate=refuse, status="Stopping")
    current = store.get("training-job", "job")
    assert (current.record, current.status, current.version) == ({"N": 0}, "Completed", 1)


def test_update_takes_record_or_mutate_not_both(store: SqlResourceStore) -> None:
    store.create("model", "m", {})
    with pytest.raises(ValueError):
        store.update("model", "m", record={}, mutate=lambda r: r)


def test_delete_removes_the_resource_and_its_tags(store: SqlResourceStore) -> None:
    created = store.create("model", "m", {"V": 1}, tags=_tags(3))
    store.delete("model", "M")
    assert not store.exists("model", "m")
    with pytest.raises(ResourceNotFoundError):
        store.list_tags(created.arn)
    again = store.create("model", "m", {"V": 2})
    assert again.arn == created.arn
    assert store.list_tags(again.arn) == ([], None)
    with pytest.raises(ResourceNotFoundError):
        store.delete("model", "never-made")


# --- concurrency and durability ------------------------------------------------------------


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # collected and checked by the caller
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_creates_of_one_name_let_exactly_one_win(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]
    spellings = ["Race", "race", "RACE", "rAcE"]
    results = _in_threads(8, lambda i: stores[i % 2].create(
        "training-job", spellings[i % 4], {"Writer": i}))
    winners = [r for r in results if isinstance(r, Resource)]
    losers = [r for r in results if isinstance(r, ResourceInUse)]
    assert len(winners) == 1 and len(losers) == 7, results
    assert stores[1].get("training-job", "race").record == winners[0].record


def test_concurrent_creates_from_processes_let_exactly_one_win(database_url: str) -> None:
    script = textwrap.dedent("""
        import sys, time
        from openmaker.core.errors import ResourceInUse
        from openmaker.core.resources import SqlResourceStore
        store = SqlResourceStore(sys.argv[1])
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        try:
            store.create("training-job", "shared-name", {"Writer": sys.argv[3]})
            print("created")
        except ResourceInUse:
            print("in-use")
        store.close()
    """)
    start_at = time.time() + 2.0  # after every process has imported and connected
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])}
    processes = [
        subprocess.Popen([sys.executable, "-c", script, database_url, str(start_at), str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(3)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert sorted(out.strip() for out, _ in outputs) == ["created", "in-use", "in-use"]


def test_read_modify_write_under_concurrency_loses_no_update(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]
    stores[0].create("training-job", "counter", {"Count": 0, "Writers": []})
    threads, rounds = 6, 15

    def bump(index: int) -> None:
        for _ in range(rounds):
            def add(record: dict) -> dict:
                record["Count"] += 1
                record["Writers"].append(index)
                return record
            stores[index % 2].update("training-job", "counter", mutate=add)

    assert _in_threads(threads, bump) == [None] * threads
    final = stores[0].get("training-job", "counter")
    assert final.record["Count"] == threads * rounds
    assert len(final.record["Writers"]) == threads * rounds
    assert final.version == 1 + threads * rounds


def test_optimistic_retries_under_concurrency_lose_no_update(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]
    stores[0].create("endpoint", "ep", {"Count": 0})
    threads, rounds = 4, 10

    def bump(index: int) -> int:
        store, conflicts = stores[index % 2], 0
        for _ in range(rounds):
            while True:
                current = store.get("endpoint", "ep")
                try:
                    store.update("endpoint", "ep", record={"Count": current.record["Count"] + 1},
                                 expected_version=current.version)
                    break
                except ConflictException:
                    conflicts += 1
        return conflicts

    results = _in_threads(threads, bump)
    assert all(isinstance(r, int) for r in results), results
    assert stores[0].get("endpoint", "ep").record["Count"] == threads * rounds


def test_a_second_store_on_the_same_database_sees_every_write(open_store: OpenStore) -> None:
    writer = open_store()
    created = writer.create("model", "m", {"V": 1}, tags=_tags(1))
    writer.update("model", "m", record={"V": 2})
    writer.close()
    reader = open_store()
    assert reader.get("model", "m").record == {"V": 2}
    assert reader.list_tags(created.arn)[0] == _tags(1)


def test_sqlite_writes_from_another_process_are_visible(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'metadata.db'}"
    script = textwrap.dedent("""
        import sys
        from openmaker.core.resources import SqlResourceStore
        store = SqlResourceStore(sys.argv[1])
        store.create("model", "from-child", {"Pid": 1})
        store.close()
    """)
    reader = SqlResourceStore(url)
    try:
        env = {**os.environ, "PYTHONPATH": str(SRC_DIR)}
        subprocess.run([sys.executable, "-c", script, url], check=True, env=env, timeout=60)
        assert reader.get("model", "from-child").record == {"Pid": 1}
    finally:
        reader.close()


def test_sqlite_database_uses_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "a" / "metadata.db"
    store = SqlResourceStore(f"sqlite:///{path}")
    try:
        store.create("model", "m", {})
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with store._engine.connect() as connection:  # per-connection setting
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        store.close()


def test_schema_version_is_recorded_and_a_newer_one_is_refused(
    open_store: OpenStore, database_url: str
) -> None:
    open_store().close()
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            assert connection.execute(sa.text(
                "SELECT version FROM schema_version WHERE component = 'resources'"
            )).scalar() == 1
            connection.execute(sa.text(
                "UPDATE schema_version SET version = 99 WHERE component = 'resources'"
            ))
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="schema version 99"):
        SqlResourceStore(database_url)


def test_open_resource_store_uses_the_settings(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", region="eu-central-1",
                             account_id="210987654321")
    store = open_resource_store(settings)
    try:
        created = store.create("endpoint", "Ep", {})
        assert created.arn == "arn:aws:sagemaker:eu-central-1:210987654321:endpoint/ep"
        assert (tmp_path / "home" / "metadata.db").is_file()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        SqlResourceStore(url)


# --- listing -------------------------------------------------------------------------------

NAMES = ["alpha", "Bravo", "charlie", "Delta", "echo", "Foxtrot", "golf", "Hotel",
         "india", "Juliet", "kilo", "Lima"]
STATUSES = ["InProgress", "Completed", "Failed", None]


def _populate(store: SqlResourceStore, resource_type: str = "training-job") -> list[Resource]:
    """Twelve resources; creation times tie in pairs, a third were updated since."""
    made = []
    for i, name in enumerate(NAMES):
        record: dict[str, object] = {"Index": i, "Even": i % 2 == 0, "Score": i / 4,
                                     "Group": "first" if i < 6 else "second"}
        if i % 3 == 0:
            record["Maybe"] = None
        elif i % 3 == 1:
            record["Maybe"] = "x"
        made.append(store.create(resource_type, f"{name}-{i}", record,
                                 status=STATUSES[i % 4],
                                 creation_time=BASE_TIME + timedelta(seconds=i // 2)))
    for i in range(0, len(NAMES), 3):
        made[i] = store.update(resource_type, made[i].name, record={**made[i].record})
    store.create("endpoint", "not-a-training-job", {"Index": 0})
    return made


def _sorted_names(resources: list[Resource], sort_by: str, sort_order: str) -> list[str]:
    keys = {
        "Name": lambda r: (r.name.lower(),),
        "CreationTime": lambda r: (r.creation_time, r.name.lower()),
        "Status": lambda r: (r.status or "", r.name.lower()),
        "LastModifiedTime": lambda r: (r.last_modified_time, r.name.lower()),
    }
    ordered = sorted(resources, key=keys[sort_by], reverse=sort_order == "Descending")
    return [r.name for r in ordered]


def _names(store: SqlResourceStore, **query: object) -> list[str]:
    page, token = store.list("training-job", ListQuery(**query))  # type: ignore[arg-type]
    assert token is None
    return [r.name for r in page]


def _walk(store: SqlResourceStore, query: ListQuery, max_results: int,
          between_pages: Callable[[int], None] | None = None) -> list[str]:
    names: list[str] = []
    token, pages = None, 0
    while True:
        page, token = store.list(
            "training-job", dataclasses.replace(query, max_results=max_results,
                                                next_token=token))
        assert len(page) <= max_results
        names += [r.name for r in page]
        pages += 1
        if token is None:
            return names
        assert len(page) == max_results and isinstance(token, str) and len(token) <= 8192
        if between_pages is not None:
            between_pages(pages)


def test_list_defaults_to_newest_first_and_returns_only_that_type(
    store: SqlResourceStore,
) -> None:
    made = _populate(store)
    page, token = store.list("training-job", ListQuery())
    assert token is None
    assert [r.name for r in page] == _sorted_names(made, "CreationTime", "Descending")
    assert page[0] == store.get("training-job", page[0].name)


@pytest.mark.parametrize("sort_order", ["Ascending", "Descending"])
@pytest.mark.parametrize("sort_by", SORT_KEYS)
def test_list_sorts_by_every_key_with_ties_broken_by_name(
    store: SqlResourceStore, sort_by: str, sort_order: str
) -> None:
    made = _populate(store)
    expected = _sorted_names(made, sort_by, sort_order)
    assert _names(store, sort_by=sort_by, sort_order=sort_order) == expected


def test_list_name_contains_is_a_case_insensitive_substring(store: SqlResourceStore) -> None:
    made = _populate(store)
    store.create("training-job", "under_score", {})
    store.create("training-job", "percent%sign", {})
    assert _names(store, name_contains="LIMA") == ["Lima-11"]
    assert sorted(_names(store, name_contains="O-")) == ["Bravo-1", "echo-4", "kilo-10"]
    assert _names(store, name_contains="_") == ["under_score"]
    assert _names(store, name_contains="%") == ["percent%sign"]
    assert len(_names(store, name_contains="-")) == len(made)
    assert _names(store, name_contains="zzz") == []


def test_list_status_equals(store: SqlResourceStore) -> None:
    made = _populate(store)
    expected = sorted(r.name for r in made if r.status == "Failed")
    assert sorted(_names(store, status_equals="Failed")) == expected
    assert _names(store, status_equals="failed") == []


def test_list_time_filters_are_strict(store: SqlResourceStore) -> None:
    made = _populate(store)
    pivot = made[5].creation_time  # shared with made[4]
    after = _names(store, creation_time_after=pivot)
    assert sorted(after) == sorted(r.name for r in made if r.creation_time > pivot)
    assert made[4].name not in after and made[5].name not in after
    before = _names(store, creation_time_before=pivot)
    assert sorted(before) == sorted(r.name for r in made if r.creation_time < pivot)
    between = _names(store, creation_time_after=made[1].creation_time,
                     creation_time_before=made[6].creation_time)
    assert sorted(between) == sorted(r.name for r in made[2:6])

    updated = [r for r in made if r.version == 2]
    pivot = updated[1].last_modified_time
    assert sorted(_names(store, last_modified_time_after=pivot)) == sorted(
        r.name for r in made if r.last_modified_time > pivot)
    assert sorted(_names(store, last_modified_time_before=pivot)) == sorted(
        r.name for r in made if r.last_modified_time < pivot)


def test_list_time_filters_accept_any_timezone(store: SqlResourceStore) -> None:
    made = _populate(store)
    local = made[5].creation_time.astimezone(timezone(timedelta(hours=-7)))
    assert sorted(_names(store, creation_time_after=local)) == sorted(
        r.name for r in made if r.creation_time > local)


@pytest.mark.parametrize(("filters", "expected"), [
    ({"Group": "second"}, list(range(6, 12))),
    ({"Index": 3}, [3]),
    ({"Index": "3"}, []),  # a string never equals a number
    ({"Score": 1.25}, [5]),
    ({"Even": True}, [0, 2, 4, 6, 8, 10]),
    ({"Even": False}, [1, 3, 5, 7, 9, 11]),
    ({"Maybe": None}, [0, 2, 3, 5, 6, 8, 9, 11]),  # JSON null or absent
    ({"Maybe": "x"}, [1, 4, 7, 10]),
    ({"Group": "first", "Even": True}, [0, 2, 4]),
    ({"Missing": "x"}, []),
])
def test_list_record_filters_match_top_level_fields(
    store: SqlResourceStore, filters: dict[str, object], expected: list[int]
) -> None:
    made = _populate(store)
    names = _names(store, record_filters=filters, sort_order="Ascending", sort_by="Name")
    assert names == sorted((made[i].name for i in expected), key=str.lower)


def test_list_combines_filters(store: SqlResourceStore) -> None:
    made = _populate(store)
    names = _names(store, name_contains="a", status_equals="InProgress",
                   record_filters={"Group": "second"}, creation_time_after=BASE_TIME)
    assert sorted(names) == sorted(
        r.name for r in made if "a" in r.name.lower() and r.status == "InProgress"
        and r.record["Group"] == "second" and r.creation_time > BASE_TIME)


@pytest.mark.parametrize("max_results", [1, 2, 7])
def test_list_pages_return_every_item_exactly_once(
    store: SqlResourceStore, max_results: int
) -> None:
    made = _populate(store)
    for sort_by in SORT_KEYS:
        for sort_order in ("Ascending", "Descending"):
            query = ListQuery(sort_by=sort_by, sort_order=sort_order)
            assert _walk(store, query, max_results) == _sorted_names(made, sort_by, sort_order)
    filtered = ListQuery(record_filters={"Even": True}, name_contains="o")
    assert _walk(store, filtered, max_results) == _sorted_names(
        [r for r in made if r.record["Even"] and "o" in r.name.lower()],
        "CreationTime", "Descending")


def test_list_has_no_token_when_the_last_page_is_exactly_full(store: SqlResourceStore) -> None:
    _populate(store)
    page, token = store.list("training-job", ListQuery(max_results=12))
    assert (len(page), token) == (12, None)
    page, token = store.list("training-job", ListQuery(max_results=11))
    assert len(page) == 11 and token is not None


def test_list_pages_stay_stable_when_rows_are_inserted(store: SqlResourceStore) -> None:
    made = _populate(store)

    def insert_around_the_cursor(page: int) -> None:
        store.create("training-job", f"aaa-early-{page}", {})  # sorts before the cursor
        store.create("training-job", f"zzz-late-{page}", {})  # sorts after it

    by_name = _walk(store, ListQuery(sort_by="Name", sort_order="Ascending"), 3,
                    insert_around_the_cursor)
    original = _sorted_names(made, "Name", "Ascending")
    assert [n for n in by_name if n in original] == original
    assert len(by_name) == len(set(by_name))
    assert not any(n.startswith("aaa-early") for n in by_name)
    assert {"zzz-late-1", "zzz-late-2", "zzz-late-3"} <= set(by_name)

    newest_first = _walk(store, ListQuery(record_filters={"Group": "first"}), 2,
                         lambda page: store.create("training-job", f"new-{page}",
                                                   {"Group": "first"}))
    # rows created now are newer than the cursor, so a newest-first walk does not reach them
    assert newest_first == _sorted_names(made[:6], "CreationTime", "Descending")


def test_list_tokens_are_bound_to_their_query(store: SqlResourceStore) -> None:
    _populate(store)
    _, token = store.list("training-job", ListQuery(max_results=2, status_equals="Completed"))
    assert token is not None
    for other in [
        ListQuery(next_token=token),
        ListQuery(next_token=token, status_equals="Failed"),
        ListQuery(next_token=token, status_equals="Completed", sort_by="Name"),
        ListQuery(next_token=token, status_equals="Completed", sort_order="Ascending"),
        ListQuery(next_token=token, status_equals="Completed", name_contains="a"),
        ListQuery(next_token=token, status_equals="Completed", record_filters={"Index": 1}),
        ListQuery(next_token=token, status_equals="Completed", creation_time_after=BASE_TIME),
    ]:
        with pytest.raises(ValidationException, match="Invalid pagination token"):
            store.list("training-job", other)
    with pytest.raises(ValidationException, match="Invalid pagination token"):
        store.list("endpoint", ListQuery(next_token=token, status_equals="Completed"))
    page, _ = store.list("training-job", ListQuery(next_token=token, status_equals="Completed",
                                                   max_results=5))
    assert page  # the same query may change MaxResults between pages


@pytest.mark.parametrize("mangle", [
    lambda token: "garbage",
    lambda token: "",
    lambda token: token[:-3],
    lambda token: token[:10] + ("A" if token[10] != "A" else "B") + token[11:],
    lambda token: token + "x",
    lambda token: "!!!" + token,
])
def test_list_rejects_garbled_tokens(store: SqlResourceStore, mangle: Callable) -> None:
    _populate(store)
    _, token = store.list("training-job", ListQuery(max_results=2))
    with pytest.raises(ValidationException, match="Invalid pagination token"):
        store.list("training-job", ListQuery(max_results=2, next_token=mangle(token)))


def test_list_rejects_unknown_sort_keys(store: SqlResourceStore) -> None:
    with pytest.raises(ValidationException, match="SortBy"):
        store.list("training-job", ListQuery(sort_by="Size"))
    with pytest.raises(ValidationException, match="SortOrder"):
        store.list("training-job", ListQuery(sort_order="Sideways"))


# --- tags ----------------------------------------------------------------------------------


def test_tags_given_at_create_are_listed_in_order(store: SqlResourceStore) -> None:
    created = store.create("model", "m", {}, tags=[{"Key": "b", "Value": "1"},
                                                   {"Key": "a", "Value": "2"}])
    assert store.list_tags(created.arn) == ([{"Key": "b", "Value": "1"},
                                             {"Key": "a", "Value": "2"}], None)


def test_add_tags_adds_and_overwrites_by_key(store: SqlResourceStore) -> None:
    arn = store.create("model", "m", {}, tags=_tags(2)).arn
    store.add_tags(arn, [{"Key": "k1", "Value": "new"}, {"Key": "Extra", "Value": ""},
                         {"Key": "K1", "Value": "keys are case-sensitive"}])
    tags, token = store.list_tags(arn)
    assert token is None
    assert tags == [{"Key": "k0", "Value": "v0"}, {"Key": "k1", "Value": "new"},
                    {"Key": "Extra", "Value": ""},
                    {"Key": "K1", "Value": "keys are case-sensitive"}]


def test_add_tags_does_not_touch_the_resource(store: SqlResourceStore) -> None:
    created = store.create("model", "m", {})
    store.add_tags(created.arn, _tags(1))
    assert store.get("model", "m") == created


def test_list_tags_pages_through_every_tag(store: SqlResourceStore) -> None:
    arn = store.create("model", "m", {}, tags=_tags(50)).arn
    other = store.create("model", "other", {}, tags=_tags(20)).arn
    collected, token = [], None
    while True:
        page, token = store.list_tags(arn, max_results=7, next_token=token)
        collected += page
        if token is None:
            break
        with pytest.raises(ValidationException, match="Invalid pagination token"):
            store.list_tags(other, max_results=7, next_token=token)
    assert collected == _tags(50)
    assert store.list_tags(arn) == (_tags(50), None)  # default page size 50
    with pytest.raises(ValidationException, match="Invalid pagination token"):
        store.list_tags(arn, next_token="garbage")


def test_delete_tags_removes_keys_and_ignores_unknown_ones(store: SqlResourceStore) -> None:
    arn = store.create("model", "m", {}, tags=_tags(4)).arn
    store.delete_tags(arn, ["k1", "k3", "not-there"])
    assert store.list_tags(arn)[0] == [{"Key": "k0", "Value": "v0"},
                                       {"Key": "k2", "Value": "v2"}]
    store.delete_tags(arn, [])
    assert len(store.list_tags(arn)[0]) == 2


def test_a_resource_holds_at_most_fifty_tags(store: SqlResourceStore) -> None:
    arn = store.create("model", "m", {}, tags=_tags(49)).arn
    store.add_tags(arn, [{"Key": "k48", "Value": "overwrite"}, {"Key": "fiftieth", "Value": ""}])
    store.add_tags(arn, [{"Key": "k0", "Value": "overwriting is fine at the limit"}])
    with pytest.raises(ResourceLimitExceeded, match=r"maximum number of tags \(50\)"):
        store.add_tags(arn, [{"Key": "k0", "Value": "changed"}, {"Key": "one-more", "Value": ""}])
    tags = dict((t["Key"], t["Value"]) for t in store.list_tags(arn)[0])
    assert len(tags) == 50 and "one-more" not in tags
    assert tags["k0"] == "overwriting is fine at the limit"  # the refused call changed nothing
    with pytest.raises(ResourceLimitExceeded):
        store.create("model", "crowded", {}, tags=_tags(51))
    assert not store.exists("model", "crowded")


def test_tag_operations_on_an_unknown_arn_raise_not_found(store: SqlResourceStore) -> None:
    arn = f"arn:aws:sagemaker:{store.region}:{store.account_id}:model/ghost"
    with pytest.raises(ResourceNotFoundError):
        store.add_tags(arn, _tags(1))
    with pytest.raises(ResourceNotFoundError):
        store.list_tags(arn)
    with pytest.raises(ResourceNotFoundError):
        store.delete_tags(arn, ["k0"])
