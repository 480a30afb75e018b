"""The local compute backend: output streaming, environments, exit codes, stopping,
runtime limits and recognising a recorded process after a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from openmaker.compute import (
    MAX_LINE_BYTES,
    ComputeError,
    LocalBackend,
    LocalJobHandle,
    ProcessSpec,
    is_same_process,
    open_compute_backend,
    process_start_time,
)
from openmaker.config import load_settings


class Output:
    """Collects on_output lines per process and lets a test wait for a given line."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = defaultdict(list)
        self._changed = threading.Condition()

    def __call__(self, name: str, line: str) -> None:
        with self._changed:
            self.lines[name].append(line)
            self._changed.notify_all()

    def wait_for(self, name: str, line: str, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: line in self.lines[name], timeout):
                raise AssertionError(f"{name} never wrote {line!r}: {self.lines[name][-5:]}")


def script(tmp_path: Path, body: str, name: str = "child.py") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def spec(name: str, argv: list[str], cwd: Path, **env: str) -> ProcessSpec:
    return ProcessSpec(name=name, argv=argv, cwd=cwd, env={"PYTHONUNBUFFERED": "1", **env})


def gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie waiting for an init that doesn't reap
    counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return not is_same_process(pid, None)


def assert_gone(*pids: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes still running: {pids}"
        time.sleep(0.02)


@pytest.fixture
def backend() -> LocalBackend:
    return LocalBackend()


def test_open_compute_backend_is_local(tmp_path: Path) -> None:
    assert isinstance(open_compute_backend(load_settings(home=tmp_path)), LocalBackend)


def test_output_lines_arrive_tagged_in_order_with_long_and_undecodable_lines(
    backend: LocalBackend, tmp_path: Path
) -> None:
    argv = script(tmp_path, """
        import os, sys
        name = sys.argv[1]
        for i in range(50):
            print(f"{name} line {i}", file=sys.stderr if i % 2 else sys.stdout, flush=True)
        os.write(1, b"bad \\xff\\xfe bytes \\xe2\\x82\\xac\\n")
        os.write(2, b"crlf\\r\\n")
        os.write(1, b"x" * 1_000_000 + b"\\n")
        os.write(2, b"last line without newline")
    """)
    output = Output()
    names = ["algo-1", "algo-2", "algo-3"]
    handle = backend.start(
        "job-output", [spec(n, [*argv, n], tmp_path) for n in names], output
    )
    assert handle.wait(timeout=10) == dict.fromkeys(names, 0)

    for name in names:
        lines = output.lines[name]
        assert lines[:50] == [f"{name} line {i}" for i in range(50)]
        assert lines[50] == "bad \ufffd\ufffd bytes \u20ac"
        assert lines[51] == "crlf"
        pieces = lines[52:-1]
        assert len(pieces) == -(-1_000_000 // MAX_LINE_BYTES)
        assert all(len(piece) <= MAX_LINE_BYTES for piece in pieces)
        assert "".join(pieces) == "x" * 1_000_000
        assert lines[-1] == "last line without newline"
    assert_gone(*handle.pids.values())


def test_process_gets_exactly_its_spec_environment(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENMAKER_SERVER_SECRET", "must-not-leak")
    argv = script(tmp_path, "import json, os; print(json.dumps(dict(os.environ)))")
    output = Output()
    specs = [
        ProcessSpec("algo-1", argv, tmp_path, env={"SM_CURRENT_HOST": "algo-1"}),
        ProcessSpec("algo-2", argv, tmp_path, env={"PATH": "/custom/bin:/usr/bin"}),
    ]
    assert backend.start("job-env", specs, output).wait(timeout=10) == {"algo-1": 0, "algo-2": 0}

    envs = {name: json.loads(lines[0]) for name, lines in output.lines.items()}
    for env in envs.values():
        env.pop("LC_CTYPE", None)  # Python's own C-locale coercion (PEP 538), if it applies
    assert envs["algo-1"] == {
        "SM_CURRENT_HOST": "algo-1",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    assert envs["algo-2"] == {
        "PATH": "/custom/bin:/usr/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
    }


def test_exit_codes_per_process_and_a_failure_does_not_stop_the_others(
    backend: LocalBackend, tmp_path: Path
) -> None:
    argv = script(tmp_path, """
        import pathlib, sys, time
        name, code, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        time.sleep(delay)
        pathlib.Path(name + ".done").write_text("done")
        sys.exit(code)
    """)
    exits: list[tuple[str, int]] = []
    handle = backend.start(
        "job-exits",
        [
            spec("algo-1", [*argv, "algo-1", "0", "0.3"], tmp_path),
            spec("algo-2", [*argv, "algo-2", "3", "0"], tmp_path),
            spec("algo-3", [*argv, "algo-3", "0", "0.6"], tmp_path),
        ],
        Output(),
        on_exit=lambda name, code: exits.append((name, code)),
    )
    assert handle.running
    assert handle.wait_any(timeout=10) == {"algo-2": 3}
    assert handle.running and handle.poll() is None
    assert handle.wait(timeout=10) == {"algo-1": 0, "algo-2": 3, "algo-3": 0}
    assert not handle.running
    assert handle.exit_codes == {"algo-1": 0, "algo-2": 3, "algo-3": 0}
    assert exits == [("algo-2", 3), ("algo-1", 0), ("algo-3", 0)]
    assert (tmp_path / "algo-3.done").exists()


def test_stop_lets_a_sigterm_handler_run(backend: LocalBackend, tmp_path: Path) -> None:
    argv = script(tmp_path, """
        import pathlib, signal, sys, time
        def on_term(signum, frame):
            pathlib.Path("terminated").write_text("clean")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        time.sleep(60)
    """)
    output = Output()
    handle = backend.start("job-term", [spec("algo-1", argv, tmp_path)], output)
    output.wait_for("algo-1", "ready")
    started = time.monotonic()
    assert handle.stop(grace_seconds=5) == {"algo-1": 0}
    assert time.monotonic() - started < 2
    assert (tmp_path / "terminated").read_text() == "clean"
    assert_gone(*handle.pids.values())


def test_stop_kills_a_process_ignoring_sigterm_and_its_children(
    backend: LocalBackend, tmp_path: Path
) -> None:
    # SIG_IGN is inherited, so the grandchild ignores SIGTERM as well
    argv = script(tmp_path, """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(f"grandchild {child.pid}", flush=True)
        print("ready", flush=True)
        time.sleep(60)
    """)
    output = Output()
    handle = backend.start("job-kill", [spec("algo-1", argv, tmp_path)], output)
    output.wait_for("algo-1", "ready")
    grandchild = int(output.lines["algo-1"][0].split()[1])
    started = time.monotonic()
    assert handle.stop(grace_seconds=0.5) == {"algo-1": -9}
    assert 0.5 <= time.monotonic() - started < 2.0
    assert_gone(handle.pids["algo-1"], grandchild)


def test_children_left_behind_by_an_exited_process_are_killed(
    backend: LocalBackend, tmp_path: Path
) -> None:
    argv = script(tmp_path, """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 stdout=subprocess.DEVNULL)
        print(child.pid, flush=True)
    """)
    output = Output()
    handle = backend.start("job-orphan", [spec("algo-1", argv, tmp_path)], output)
    assert handle.wait(timeout=10) == {"algo-1": 0}
    assert_gone(int(output.lines["algo-1"][0]))


def test_max_runtime_stops_the_job_and_marks_it_timed_out(
    backend: LocalBackend, tmp_path: Path
) -> None:
    argv = script(tmp_path, "import time; print('ready', flush=True); time.sleep(60)")
    output = Output()
    started = time.monotonic()
    handle = backend.start(
        "job-timeout", [spec("algo-1", argv, tmp_path), spec("algo-2", argv, tmp_path)], output,
        max_runtime_seconds=0.5, stop_grace_seconds=0.5,
    )
    assert not handle.timed_out
    assert handle.wait(timeout=10) == {"algo-1": -15, "algo-2": -15}
    assert 0.5 <= time.monotonic() - started < 3
    assert handle.timed_out
    assert_gone(*handle.pids.values())


def test_a_job_finishing_in_time_is_not_timed_out(backend: LocalBackend, tmp_path: Path) -> None:
    handle = backend.start(
        "job-quick", [spec("algo-1", [sys.executable, "-c", "pass"], tmp_path)], Output(),
        max_runtime_seconds=30,
    )
    assert handle.wait(timeout=10) == {"algo-1": 0}
    assert not handle.timed_out


def test_a_process_that_cannot_start_fails_the_start_and_stops_the_rest(
    backend: LocalBackend, tmp_path: Path
) -> None:
    exits: list[tuple[str, int]] = []
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ComputeError, match="algo-2.*/no/such/program"):
        backend.start(
            "job-bad",
            [spec("algo-1", sleeper, tmp_path), spec("algo-2", ["/no/such/program"], tmp_path)],
            Output(),
            on_exit=lambda name, code: exits.append((name, code)),
        )
    deadline = time.monotonic() + 3
    while not exits:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert exits[0][0] == "algo-1" and exits[0][1] < 0


@pytest.mark.parametrize(
    "specs, message",
    [
        ([], "at least one process"),
        ([ProcessSpec("algo-1", [], Path("."))], "empty command line"),
        ([ProcessSpec("a", ["x"], Path(".")), ProcessSpec("a", ["x"], Path("."))], "named 'a'"),
    ],
)
def test_bad_specs_are_rejected(
    backend: LocalBackend, specs: list[ProcessSpec], message: str
) -> None:
    with pytest.raises(ComputeError, match=message):
        backend.start("job-invalid", specs, Output())


def test_is_same_process_tells_a_recorded_process_from_a_dead_or_different_one(
    backend: LocalBackend, tmp_path: Path
) -> None:
    me = os.getpid()
    assert is_same_process(me, process_start_time(me))
    if process_start_time(me) is not None:
        assert not is_same_process(me, process_start_time(me) + 1)  # type: ignore[operator]

    argv = script(tmp_path, "import time; print('ready', flush=True); time.sleep(60)")
    output = Output()
    handle: LocalJobHandle = backend.start("job-pid", [spec("algo-1", argv, tmp_path)], output)
    output.wait_for("algo-1", "ready")
    pid, start_time = handle.pids["algo-1"], handle.start_times["algo-1"]
    assert is_same_process(pid, start_time)
    handle.stop(grace_seconds=1)
    assert not is_same_process(pid, start_time)

    with subprocess.Popen([sys.executable, "-c", "pass"]) as finished:
        finished_start_time = process_start_time(finished.pid)
    assert not is_same_process(finished.pid, finished_start_time)
    assert not is_same_process(0, None)
    assert not is_same_process(-1, None)


def test_a_long_line_split_inside_a_character_loses_nothing(
    backend: LocalBackend, tmp_path: Path
) -> None:
    text = "\u20ac" * 100_000  # 300,000 bytes: the split falls inside a character
    argv = script(tmp_path, "import os; os.write(1, ('\\u20ac' * 100_000).encode())")
    output = Output()
    assert backend.start("job-split", [spec("algo-1", argv, tmp_path)], output).wait(10) == {
        "algo-1": 0
    }
    assert len(output.lines["algo-1"]) == 2
    assert "".join(output.lines["algo-1"]) == text


def test_on_exit_can_stop_the_rest_of_the_job_when_one_process_fails(
    backend: LocalBackend, tmp_path: Path
) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    handles: list[LocalJobHandle] = []
    ready = threading.Event()

    refusals: list[str] = []

    def on_exit(name: str, code: int) -> None:
        ready.wait(5)
        if code != 0:
            handles[0].stop(grace_seconds=1)
            try:
                handles[0].wait()
            except RuntimeError as exc:  # waiting here would deadlock
                refusals.append(str(exc))

    failing = [sys.executable, "-c", "import sys; sys.exit(2)"]
    handles.append(backend.start(
        "job-fail-fast",
        [spec("algo-1", sleeper, tmp_path), spec("algo-2", failing, tmp_path)],
        Output(),
        on_exit=on_exit,
    ))
    ready.set()
    started = time.monotonic()
    assert handles[0].wait(timeout=10) == {"algo-1": -15, "algo-2": 2}
    assert time.monotonic() - started < 2
    assert refusals and "deadlock" in refusals[0]
