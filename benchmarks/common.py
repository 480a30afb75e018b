"""Shared parts of the benchmarks: servers in their own processes, boto3 clients, timing
helpers, tables, and the results file.

Each server runs as its own process (so the client and the server never share a GIL) and
is stopped when its ``with`` block ends, whether the benchmark finished, failed, or was
interrupted with Ctrl-C or SIGTERM. Results are printed as a table and appended as JSON
lines to ``benchmarks/results/results.jsonl``.

``python benchmarks/common.py profiled-server OUT.prof wall|cpu -- server --home H
--port 0`` runs ``openmaker`` in-process with a cProfile profiler on every thread (the request
handlers run in a thread pool, which ``python -m cProfile`` would not see) and writes the
merged profile to OUT.prof when the server stops; the benchmarks' ``--profile`` option uses
it. The ``wall`` clock (default) shows where requests wait (fsync, thread hand-offs); the
``cpu`` clock (per-thread CPU time) shows where the processor goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "results.jsonl"
LOOPBACK = "127.0.0.1"
ACCESS_KEY_ID = "benchmark"
SECRET_ACCESS_KEY = "benchmark-secret"
REGION = "us-east-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# moto's ThreadedMotoServer in its own process, with werkzeug's per-request access log off
# (openmaker runs with access_log=False, so neither side pays for logging). It prints its
# address as one JSON line once listening and stops on SIGTERM/SIGINT.
_MOTO_SERVER_CODE = """
import json, logging, os, signal, threading
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}), flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
while not stop.wait(1):
    pass
server.stop()
"""

# The client's ceiling: an HTTP/1.1 server that does no work at all, answering every request
# at once with a fixed S3-shaped reply (a GET gets a 1 KiB body). Its requests/s is the most
# any server can reach with the benchmark's client on this machine.
_NULL_SERVER_CODE = """
import asyncio, json, os, signal
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
BODY = b"x" * 1024
ETAG = b'ETag: "0f343b0931126a20f133d67c2b018a3b"\\r\\n'
GET = (b"HTTP/1.1 200 OK\\r\\nContent-Type: binary/octet-stream\\r\\n" + ETAG
       + b"Content-Length: 1024\\r\\n\\r\\n" + BODY)
OTHER = b"HTTP/1.1 200 OK\\r\\n" + ETAG + b"Content-Length: 0\\r\\n\\r\\n"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                elif line.lower() == b"expect: 100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\\r\\n\\r\\n")
            if length:
                await reader.readexactly(length)
            writer.write(GET if head.startswith((b"GET ", b"HEAD ")) else OTHER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
asyncio.run(main())
"""


# -- the environment ----------------------------------------------------------------------
def isolate_aws_environment() -> None:
    """Keep the user's AWS configuration (profiles, endpoint, checksum settings) out of the
    benchmark's boto3 clients, so both servers see exactly the same requests."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _server_environment(**extra: str) -> dict[str, str]:
    """The environment for a server process: no OPENMAKER_* or AWS_* settings of the user's
    (access keys, a PostgreSQL URL or an S3 backend would change what is measured)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENMAKER_", "AWS_", "MOTO_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def install_signal_handlers() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so ``finally`` blocks stop the servers."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def run_main(main) -> int:
    """Run a benchmark's ``main``; Ctrl-C or SIGTERM ends it quietly with status 130 (the
    servers are stopped by then: their ``with`` blocks have exited)."""
    install_signal_handlers()
    try:
        return main()
    except KeyboardInterrupt:
        print("\ninterrupted; every server this benchmark started has been stopped",
              file=sys.stderr)
        return 130


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def load_note() -> str | None:
    """A warning when other work is using the CPUs (the numbers will be noisy), else None."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load < 0.25 * cores:
        return None
    return (f"note: the load average was {load:.2f} on {cores} cores when this started: "
            "other work is running, so these numbers are noisy")


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


# -- servers ------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its live descendants, from /proc (a
    server with worker processes: Ray's raylet and replicas, uvicorn's workers, openmaker's
    model servers); None elsewhere."""
    total = _cpu_seconds(pid)
    if total is None:
        return None
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    total += tree_cpu_seconds(int(child)) or 0.0
    return total


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM if the benchmark dies (even SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """A server running in a child process; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str],
                 workdir: Path, capture_stdout: bool = False) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.url = ""
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # A session of its own: Ctrl-C in the terminal reaches the benchmark, which then
        # stops the server itself (instead of both racing to shut down).
        self.process = subprocess.Popen(
            list(argv), env=env, cwd=workdir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else self._log, stderr=self._log,
            start_new_session=True, preexec_fn=_die_with_parent if os.name == "posix" else None,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float | None:
        return _cpu_seconds(self.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} server exited with status {self.process.returncode}"
                               f":\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"{self.name} server did not stop within {STOP_TIMEOUT:.0f} s; killing it",
                      file=sys.stderr)
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def _wait_until_serving(server: ServerProcess) -> None:
    """Poll the URL until any HTTP answer comes back (an S3 error document is fine)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        server.check_alive()
        try:
            urllib.request.urlopen(server.url + "/", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not answer at {server.url} within "
                                   f"{START_TIMEOUT:.0f} s:\n{server.log_tail()}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def openmaker_server(profile: Path | None = None, profile_clock: str = "wall",
                     settings: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``openmaker server --home <fresh temp dir> --port 0``, found through server.json.

    With ``profile``, the server runs under cProfile on every thread (timed by
    ``profile_clock``: "wall" or "cpu") and the merged profile is written there when the
    server stops. ``settings`` are ``OPENMAKER_*`` environment
    variables for the server (``{"OPENMAKER_STORAGE_FSYNC": "false"}``).
    """
    workdir = Path(tempfile.mkdtemp(prefix="openmaker-bench-"))
    home = workdir / "home"
    openmaker_args = ["server", "--home", str(home), "--port", "0"]
    if profile is None:
        argv = [sys.executable, "-m", "openmaker", *openmaker_args]
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "profiled-server",
                str(Path(profile).resolve()), profile_clock, "--", *openmaker_args]
    server = None
    try:
        server = ServerProcess("openmaker", argv, _server_environment(**(settings or {})),
                               workdir)
        info_path = home / "server.json"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            server.check_alive()
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(info_path.read_text())
                if info.get("pid") == server.pid:
                    server.url = info["url"]
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"openmaker wrote no {info_path} within {START_TIMEOUT:.0f} s"
                                   f":\n{server.log_tail()}")
            time.sleep(0.02)
        _wait_until_serving(server)
        yield server
    finally:
        if server is not None:
            # SIGINT for a profiled server: the same clean shutdown, and the profile is saved
            server.stop(signal.SIGINT if profile is not None else signal.SIGTERM)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _scripted_server(name: str, code: str) -> Iterator[ServerProcess]:
    """A server from a ``python -c`` script that prints {"url": ...} once listening."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-bench-"))
    server = None
    try:
        server = ServerProcess(name, [sys.executable, "-c", code], _server_environment(),
                               workdir, capture_stdout=True)
        assert server.process.stdout is not None
        line = server.process.stdout.readline()
        if not line:
            server.process.wait(5)
            server.check_alive()
        server.url = json.loads(line)["url"]
        _wait_until_serving(server)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def moto_server() -> contextlib.AbstractContextManager[ServerProcess]:
    """moto's ThreadedMotoServer, in a process of its own, on a free loopback port."""
    return _scripted_server("moto", _MOTO_SERVER_CODE)


def null_server() -> contextlib.AbstractContextManager[ServerProcess]:
    """A server that does nothing but answer: the client's ceiling on this machine."""
    return _scripted_server("null", _NULL_SERVER_CODE)


SERVERS = {"openmaker": openmaker_server, "moto": moto_server, "null": null_server}


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (for peers that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# -- clients ------------------------------------------------------------------------------
def s3_client(url: str, max_pool_connections: int = 10):
    """A boto3 S3 client for ``url``: its own session (boto3 sessions are not thread-safe),
    fixed credentials, path-style addressing, no retries (a failure should show, not be
    hidden in a slower number). Otherwise boto3's defaults, checksums included."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )
    return session.client(
        "s3", endpoint_url=url,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                      max_pool_connections=max_pool_connections),
    )


def aws_client(service: str, url: str):
    """A boto3 client for any other service openmaker serves (``sagemaker``, ``logs``), with
    the same fixed credentials and no retries as :func:`s3_client`."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )
    return session.client(service, endpoint_url=url,
                          config=Config(retries={"total_max_attempts": 1}))


# -- training jobs ------------------------------------------------------------------------
TRAINING_ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
JOB_ENDED = ("Completed", "Failed", "Stopped")


def source_archive(script: str) -> bytes:
    """A ``sourcedir.tar.gz`` holding ``train.py`` (for ``sagemaker_submit_directory``)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    data = script.encode()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wait_for_training_job(sagemaker, name: str, *, poll: float = 0.1,
                          timeout: float = 600) -> dict:
    """DescribeTrainingJob every ``poll`` seconds until the job has ended; its description.
    RuntimeError unless it Completed (with the FailureReason)."""
    deadline = time.monotonic() + timeout
    while True:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in JOB_ENDED:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"training job {name} still {job['TrainingJobStatus']}/"
                               f"{job['SecondaryStatus']} after {timeout:.0f} s")
        time.sleep(poll)
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"training job {name} ended {job['TrainingJobStatus']}: "
                           f"{job.get('FailureReason')}")
    return job


def job_phases(job: dict) -> dict[str, float]:
    """Seconds spent in each SecondaryStatus (from SecondaryStatusTransitions), in order."""
    phases = {}
    for transition in job.get("SecondaryStatusTransitions", []):
        end = transition.get("EndTime")
        if end is not None:
            phases[transition["Status"]] = (end - transition["StartTime"]).total_seconds()
    return phases


def training_job_events(logs, name: str) -> list[dict]:
    """Every log event of the job's instances (all its log streams, oldest first):
    ``{"timestamp": ms since the epoch, "message": ...}``."""
    streams = logs.describe_log_streams(logGroupName=TRAINING_LOG_GROUP,
                                        logStreamNamePrefix=f"{name}/")["logStreams"]
    events = []
    for stream in streams:
        token = None
        while True:
            page = logs.get_log_events(
                logGroupName=TRAINING_LOG_GROUP, logStreamName=stream["logStreamName"],
                startFromHead=True, **({"nextToken": token} if token else {}))
            events += page["events"]
            if not page["events"] or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]
    return sorted(events, key=lambda event: event["timestamp"])


def training_job_log(logs, name: str) -> list[str]:
    """Every line the job's instances logged (all its log streams, oldest first)."""
    return [event["message"] for event in training_job_events(logs, name)]


# -- numbers ------------------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or not peer:
        return None
    return ours / peer


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return "" if value is None else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


_MACHINE: dict | None = None
_COMMIT: str | None = None


def record(benchmark: str, *, ours: float | None, peer: float | None, unit: str,
           target: str, met: bool | None, better: str = "higher",
           peer_name: str | None = None, details: dict | None = None) -> dict:
    """Append one result to ``benchmarks/results/results.jsonl`` and return it.

    ``ratio`` is always ours / peer; ``better`` says whether a higher or a lower ratio is
    the good direction for this benchmark.
    """
    global _MACHINE, _COMMIT
    if _MACHINE is None:
        _MACHINE, _COMMIT = machine(), git_commit()
    entry = {
        "benchmark": benchmark,
        "ours": ours,
        "peer": peer,
        "ratio": ratio(ours, peer),
        "unit": unit,
        "target": target,
        "met": met,
        "better": better,
        "peer_name": peer_name,
        "machine": _MACHINE,
        "commit": _COMMIT,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "details": details or {},
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return entry


def print_profile(path: Path, limit: int = 25) -> None:
    """The top functions of a saved profile, by cumulative and by self time."""
    import pstats

    if not Path(path).exists():
        print(f"(no profile was written to {path}; see the server log)")
        return
    for order in ("cumulative", "tottime"):
        print(f"\n--- server profile {path}: top {limit} by {order} ---")
        stats = pstats.Stats(str(path))
        stats.strip_dirs().sort_stats(order).print_stats(limit)


# -- the profiled server ------------------------------------------------------------------
def _profiled_server(out: str, clock: str, openmaker_argv: list[str]) -> int:
    """Run ``openmaker <argv>`` in this process with a cProfile profiler on every thread;
    merge them into ``out`` on exit. (``python -m cProfile`` profiles only the main thread,
    and openmaker handles requests in a thread pool.) ``clock`` is "wall" or "cpu"."""
    import cProfile
    import pstats

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    timer = {"wall": time.perf_counter, "cpu": time.thread_time}[clock]

    def start_thread_profile(frame, event, arg):
        sys.setprofile(None)
        profile = cProfile.Profile(timer)
        with lock:
            profiles.append(profile)
        profile.enable()

    threading.setprofile(start_thread_profile)
    main_profile = cProfile.Profile(timer)
    profiles.append(main_profile)
    from openmaker.cli.main import main

    main_profile.enable()
    try:
        status = main(openmaker_argv)
    finally:
        main_profile.disable()
        threading.setprofile(None)
        with lock:
            stats = pstats.Stats(main_profile)
            for profile in profiles[1:]:
                with contextlib.suppress(TypeError):  # a thread that recorded nothing
                    stats.add(profile)
        stats.dump_stats(out)
    return status


if __name__ == "__main__":
    if (len(sys.argv) >= 5 and sys.argv[1] == "profiled-server" and sys.argv[4] == "--"
            and sys.argv[3] in ("wall", "cpu")):
        raise SystemExit(_profiled_server(sys.argv[2], sys.argv[3], sys.argv[5:]))
    print("usage: python benchmarks/common.py profiled-server OUT.prof wall|cpu -- server "
          "[options]",
          file=sys.stderr)
    raise SystemExit(2)
