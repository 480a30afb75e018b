"""Serving one XGBoost booster: openmaker's endpoint against MLflow, BentoML and Ray Serve.

The booster (50 features, 100 trees, depth 6, ``reg:squarederror``) is trained here on
generated data and served by each system in turn, one at a time:

- ``openmaker``: CreateModel (built-in ``sagemaker-xgboost:1.7-1`` image, a model.tar.gz
  holding ``xgboost-model``), CreateEndpointConfig, CreateEndpoint; requests are SageMaker
  Runtime's ``POST /endpoints/<name>/invocations`` through the server's router, each signed
  with botocore's ``SigV4Auth`` as boto3 would sign it (the signing is timed and reported).
- ``openmaker-presigned``: the same endpoint, every request carrying one Authorization
  header signed once up front. A server without access keys configured checks no signature
  (the header only names the service), so this shows the server without the client's
  ~0.1 ms of signing per request.
- ``mlflow``: ``mlflow models serve --env-manager local`` of an ``mlflow.xgboost`` model
  (its stock pyfunc scoring server; CSV with a header row, as it requires).
- ``bentoml``: a ``@bentoml.service`` whose API takes JSON rows (BentoML's API functions take
  typed JSON fields, not a raw CSV body).
- ``rayserve``: a Ray Serve deployment taking the raw CSV body, over HTTP on loopback.
- ``null``: a server that answers at once without any work: the load generator's ceiling.

The BentoML and Ray Serve wrappers predict as openmaker's predictor does (``inplace_predict``
on one thread), so the comparison is of the serving stacks. Every server gets one worker
process. Each peer runs from a virtual environment of its own,
``benchmarks/.peers-venvs/<peer>``, created on first use (``--peers-venvs``); they are not
openmaker dependencies.

The load generator is one asyncio (uvloop) process with a hand-written HTTP/1.1 keep-alive
client (one connection per concurrent caller, requests pre-encoded), which costs far less
CPU per request than aiohttp or httpx; each concurrency level runs ``--warmup`` seconds,
then ``--duration`` seconds measured. Latency is from writing the request to reading the
whole answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

FEATURES = 50
TREES = 100
SYSTEMS = ("null", "openmaker", "openmaker-presigned", "mlflow", "bentoml", "rayserve")
PEERS = ("mlflow", "bentoml", "rayserve")
# One virtual environment per peer: installed together, pip's resolver settles the three's
# conflicting pins by falling back to a years-old BentoML.
PEER_PACKAGES = {"mlflow": ("mlflow", "xgboost", "pandas"),
                 "bentoml": ("bentoml>=1.4", "xgboost"),
                 "rayserve": ("ray[serve]", "xgboost")}
DEFAULT_PEERS_VENVS = common.BENCHMARKS_DIR / ".peers-venvs"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "serving-benchmark"
ENDPOINT = "serving-benchmark"
MAX_ERROR_RATE = 0.01


# -- the model ------------------------------------------------------------------------------
def train_booster(workdir: Path) -> tuple[Path, list[float]]:
    """Train the booster; its UBJSON file and one row of features."""
    import numpy as np
    import xgboost

    rng = np.random.default_rng(0)
    features = rng.normal(size=(10_000, FEATURES)).astype(np.float32)
    labels = features @ rng.normal(size=FEATURES) + rng.normal(size=10_000)
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 6, "nthread": 2},
                            xgboost.DMatrix(features, label=labels), TREES)
    path = workdir / "model.ubj"  # the suffix tells the peers' xgboost the format
    path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    return path, [float(f"{v:.6g}") for v in features[0]]


def model_tarball(model: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(model, arcname="xgboost-model")
    return buffer.getvalue()


# -- the load generator ---------------------------------------------------------------------
class Target:
    """Where requests go and how each one is encoded (``make_request`` returns the bytes of
    a whole HTTP/1.1 request; it is called once per request, so signing is paid per request)."""

    def __init__(self, name: str, host: str, port: int,
                 make_request: Callable[[], bytes], expect: bytes, server_pid: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.make_request, self.expect = make_request, expect
        self.server_pid = server_pid


def http_request(host: str, port: int, path: str, body: bytes,
                 headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length) if length else b""
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size + 2)
        if size == 0:  # the last chunk's CRLF ends the body (no trailers expected)
            return status, body


async def _caller(target: Target, until: float, warm_until: float,
                  latencies: list[float], errors: list[str], sent: list[int]) -> None:
    reader = writer = None
    while time.perf_counter() < until:
        if writer is None:
            reader, writer = await asyncio.open_connection(target.host, target.port)
        request = target.make_request()
        sent[0] += 1
        started = time.perf_counter()
        try:
            writer.write(request)
            status, body = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            writer.close()
            reader = writer = None
            if started >= warm_until:
                errors.append(f"{type(error).__name__}: {error}")
            continue
        elapsed = time.perf_counter() - started
        if started < warm_until:
            continue
        if status == 200 and target.expect in body:
            latencies.append(elapsed)
        else:
            errors.append(f"{status}: {body[:200]!r}")
    if writer is not None:
        writer.close()


def drive(target: Target, concurrency: int, duration: float, warmup: float) -> dict:
    """``concurrency`` callers, each sending its next request as soon as the previous
    answer is read, for ``warmup`` then ``duration`` seconds; the measured window's figures."""
    latencies: list[float] = []
    errors: list[str] = []
    sent = [0]  # warm-up included, for the client's CPU per request

    async def run() -> tuple[float, float]:
        start = time.perf_counter()
        warm_until = start + warmup
        until = warm_until + duration
        await asyncio.gather(*(_caller(target, until, warm_until, latencies, errors, sent)
                               for _ in range(concurrency)))
        return warm_until, time.perf_counter()

    cpu_before = time.process_time()
    server_before = common.tree_cpu_seconds(target.server_pid)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    measured_from, ended = asyncio.run(run())
    client_cpu = time.process_time() - cpu_before
    server_after = common.tree_cpu_seconds(target.server_pid)
    server_cpu = (server_after - server_before
                  if server_before is not None and server_after is not None else None)
    window = ended - measured_from
    total = len(latencies) + len(errors)
    return {
        "concurrency": concurrency,
        "requests": total,
        "ok": len(latencies),
        "errors": len(errors),
        "error_rate": len(errors) / total if total else 1.0,
        "first_error": errors[0] if errors else None,
        "requests_per_s": len(latencies) / window,
        "p50_ms": common.percentile(latencies, 0.50) * 1e3,
        "p99_ms": common.percentile(latencies, 0.99) * 1e3,
        "client_cpu_ms_per_request": client_cpu / max(1, sent[0]) * 1e3,
        "server_cpu_ms_per_request": (server_cpu / max(1, sent[0]) * 1e3
                                      if server_cpu is not None else None),
        "window_start": measured_from,
        "window_seconds": window,
    }


# -- servers --------------------------------------------------------------------------------
def wait_for_http(server: common.ServerProcess, url: str, timeout: float = 180) -> None:
    """Poll ``url`` (GET) until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer {url} within {timeout:.0f} s:\n"
                               f"{server.log_tail()}")
        time.sleep(0.25)


def ensure_peer_venv(venvs: Path, peer: str) -> Path:
    """The peer's Python, creating its virtual environment on first use."""
    venv = venvs.resolve() / peer
    packages = PEER_PACKAGES[peer]
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with {', '.join(packages)} (first run only; minutes)",
              flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       check=True)
        # grpcio (ray's) only as a wheel: an sdist needs a build toolchain
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--prefer-binary",
                        "--only-binary", "grpcio", *packages], check=True)
    return python


def csv_row(row: list[float]) -> bytes:
    return (",".join(repr(v) for v in row) + "\n").encode()


@contextlib.contextmanager
def openmaker_target(model: Path, row: list[float], presigned: bool,
                     profile: Path | None = None, profile_clock: str = "wall"
                     ) -> Iterator[tuple[Target, Callable[[float, float], float | None], dict]]:
    """An openmaker endpoint serving the booster; the target, a function giving the router's
    OverheadLatency p50 (ms) between two epoch times, and facts about the client side."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    with common.openmaker_server(profile, profile_clock) as server:
        s3 = common.s3_client(server.url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=model_tarball(model))
        sagemaker = common.aws_client("sagemaker", server.url)
        sagemaker.create_model(ModelName=ENDPOINT, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/xgb/model.tar.gz"})
        sagemaker.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[{
            "VariantName": "primary", "ModelName": ENDPOINT, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
        deadline = time.monotonic() + 120
        while (status := sagemaker.describe_endpoint(EndpointName=ENDPOINT)
               ["EndpointStatus"]) != "InService":
            if status == "Failed" or time.monotonic() > deadline:
                raise RuntimeError(f"endpoint {status}: {server.log_tail()}")
            time.sleep(0.2)
        host, port = server.url.split("//", 1)[1].split(":")
        path = f"/endpoints/{ENDPOINT}/invocations"
        body = csv_row(row)
        signer = SigV4Auth(Credentials(common.ACCESS_KEY_ID, common.SECRET_ACCESS_KEY),
                           "sagemaker", common.REGION)

        def signed_headers() -> dict[str, str]:
            request = AWSRequest(method="POST", url=server.url + path, data=body,
                                 headers={"Content-Type": "text/csv", "Accept": "text/csv"})
            signer.add_auth(request)
            return {k: v for k, v in request.headers.items()}

        fixed = http_request(host, int(port), path, body, signed_headers())

        def make_request() -> bytes:
            if presigned:
                return fixed
            return http_request(host, int(port), path, body, signed_headers())

        started = time.perf_counter()
        for _ in range(500):
            signed_headers()
        sign_ms = (time.perf_counter() - started) / 500 * 1e3
        cloudwatch = common.aws_client("cloudwatch", server.url)

        def overhead_p50(start: float, end: float) -> float | None:
            """The median of the per-second OverheadLatency p50s in the window, in ms."""
            answer = cloudwatch.get_metric_statistics(
                Namespace="AWS/SageMaker", MetricName="OverheadLatency",
                Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT},
                            {"Name": "VariantName", "Value": "primary"}],
                StartTime=datetime.fromtimestamp(start, UTC),
                EndTime=datetime.fromtimestamp(end, UTC) + timedelta(seconds=1),
                Period=1, ExtendedStatistics=["p50"])
            values = [point["ExtendedStatistics"]["p50"] for point in answer["Datapoints"]]
            return common.median(values) / 1e3 if values else None

        name = "openmaker-presigned" if presigned else "openmaker"
        yield (Target(name, host, int(port), make_request, b".", server.pid), overhead_p50,
               {"sigv4_sign_ms_per_request": None if presigned else sign_ms})


_MLFLOW_SAVE = """
import sys, mlflow.xgboost, xgboost
booster = xgboost.Booster()
booster.load_model(sys.argv[1])
mlflow.xgboost.save_model(booster, sys.argv[2])
"""

_BENTO_SERVICE = """
import os
import bentoml
import numpy as np
import xgboost


@bentoml.service(workers=1)
class XGBoostModel:
    def __init__(self) -> None:
        self.booster = xgboost.Booster()
        self.booster.load_model(os.environ["BENCH_MODEL"])
        self.booster.set_param({"nthread": 1})

    @bentoml.api
    def predict(self, rows: list[list[float]]) -> list[float]:
        features = np.asarray(rows, dtype=np.float32)
        return self.booster.inplace_predict(features, validate_features=False).tolist()
"""

_RAY_SERVER = """
import json, os, signal, sys, threading
import numpy as np
import ray
import xgboost
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


@serve.deployment(num_replicas=1, max_ongoing_requests=256)
class XGBoostModel:
    def __init__(self, path: str) -> None:
        self.booster = xgboost.Booster()
        self.booster.load_model(path)
        self.booster.set_param({"nthread": 1})

    async def __call__(self, request: Request) -> Response:
        text = (await request.body()).decode()
        rows = [line.split(",") for line in text.splitlines() if line.strip()]
        features = np.array(rows, dtype=np.float32)
        scores = self.booster.inplace_predict(features, validate_features=False)
        return Response("".join(f"{s}\\n" for s in scores.tolist()), media_type="text/csv")


port = int(sys.argv[2])
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": port})
serve.run(XGBoostModel.bind(sys.argv[1]), route_prefix="/")
print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
while not stop.wait(1):
    pass
serve.shutdown()
ray.shutdown()
"""


@contextlib.contextmanager
def peer_target(name: str, python: Path, model: Path, row: list[float]
                ) -> Iterator[Target]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-serving-"))
    port = common.free_port()
    host = common.LOOPBACK
    env = common._server_environment(BENCH_MODEL=str(model), RAY_USAGE_STATS_ENABLED="0",
                                     BENTOML_DO_NOT_TRACK="true",
                                     MLFLOW_TRACKING_URI=f"file://{workdir}/mlruns")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
    server = None
    try:
        if name == "mlflow":
            model_dir = workdir / "model"
            subprocess.run([str(python), "-c", _MLFLOW_SAVE, str(model), str(model_dir)],
                           check=True, env=env, cwd=workdir)
            argv = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir),
                    "--env-manager", "local", "-h", host, "-p", str(port), "-w", "1"]
            health = f"http://{host}:{port}/ping"
            header = ",".join(f"f{i}" for i in range(FEATURES))
            body = (header + "\n").encode() + csv_row(row)
            request = http_request(host, port, "/invocations", body,
                                   {"Content-Type": "text/csv"})
            expect = b"predictions"
        elif name == "bentoml":
            (workdir / "service.py").write_text(_BENTO_SERVICE)
            argv = [str(python.parent / "bentoml"), "serve", "service:XGBoostModel",
                    "--host", host, "--port", str(port)]
            health = f"http://{host}:{port}/readyz"
            body = json.dumps({"rows": [row]}).encode()
            request = http_request(host, port, "/predict", body,
                                   {"Content-Type": "application/json"})
            expect = b"["
        elif name == "rayserve":
            (workdir / "ray_server.py").write_text(_RAY_SERVER)
            argv = [str(python), str(workdir / "ray_server.py"), str(model), str(port)]
            health = f"http://{host}:{port}/-/healthz"
            request = http_request(host, port, "/", csv_row(row), {"Content-Type": "text/csv"})
            expect = b"."
        else:
            raise ValueError(name)
        server = common.ServerProcess(name, argv, env, workdir)
        wait_for_http(server, health)
        yield Target(name, host, port, lambda: request, expect, server.pid)
    finally:
        if server is not None:
            server.stop()
        if name == "rayserve":  # a Ray cluster left behind would skew the next system
            subprocess.run([str(python.parent / "ray"), "stop", "--force"],
                           capture_output=True, env=env, check=False)


@contextlib.contextmanager
def null_target(row: list[float]) -> Iterator[Target]:
    with common.null_server() as server:
        host, port = server.url.split("//", 1)[1].split(":")
        request = http_request(host, int(port), "/", csv_row(row), {"Content-Type": "text/csv"})
        yield Target("null", host, int(port), lambda: request, b"", server.pid)


# -- main -----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="measured seconds per concurrency level (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--peers-venvs", type=Path, default=DEFAULT_PEERS_VENVS,
                        help="where each peer's virtual environment is (made on first use)")
    parser.add_argument("--profile", type=Path, help="run openmaker's server under cProfile "
                        "on every thread and print the top functions (records no results)")
    parser.add_argument("--profile-clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    common.isolate_aws_environment()
    note = common.load_note()
    if note:
        print(note)
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    model, row = train_booster(workdir)
    pythons = {peer: ensure_peer_venv(args.peers_venvs, peer)
               for peer in PEERS if peer in args.systems}
    results: dict[str, dict] = {}
    for system in args.systems:
        print(f"--- {system}", flush=True)
        extra: dict = {}
        overhead = None
        try:
            if system.startswith("openmaker"):
                context = openmaker_target(model, row, system == "openmaker-presigned",
                                           args.profile, args.profile_clock)
            elif system == "null":
                context = null_target(row)
            else:
                context = peer_target(system, pythons[system], model, row)
            with context as served:
                if system.startswith("openmaker"):
                    target, overhead, extra = served
                else:
                    target = served
                levels = {}
                for concurrency in args.concurrency:
                    cell = drive(target, concurrency, args.duration, args.warmup)
                    if overhead is not None:
                        start = time.time() - (time.perf_counter() - cell["window_start"])
                        cell["overhead_latency_p50_ms"] = overhead(
                            start, start + cell["window_seconds"])
                    levels[concurrency] = cell
                    print(f"  c={concurrency}: {cell['requests_per_s']:.0f} req/s p50 "
                          f"{cell['p50_ms']:.2f} ms p99 {cell['p99_ms']:.2f} ms errors "
                          f"{cell['error_rate']:.2%}"
                          + (f" ({cell['first_error']})" if cell["first_error"] else ""),
                          flush=True)
                results[system] = {"levels": levels, **extra}
        except Exception as error:  # one peer failing to start must not lose the others
            print(f"  {system} failed: {error}", flush=True)
            results[system] = {"failed": str(error)[-2000:]}
    if args.profile is not None:
        common.print_profile(args.profile)
        return 0
    report(results, args, note)
    return 0


def report(results: dict[str, dict], args, note: str | None) -> None:
    rows = []
    for system, result in results.items():
        for concurrency, cell in result.get("levels", {}).items():
            rows.append([system, concurrency, cell["p50_ms"], cell["p99_ms"],
                         cell["requests_per_s"], f"{cell['error_rate']:.2%}",
                         cell["server_cpu_ms_per_request"], cell["client_cpu_ms_per_request"],
                         cell.get("overhead_latency_p50_ms")])
        if "failed" in result:
            rows.append([system, "-", None, None, None, "failed", None, None, None])
    print()
    print(common.format_table(["system", "conc", "p50 ms", "p99 ms", "req/s", "errors",
                               "server CPU ms/req", "client CPU ms/req",
                               "router overhead p50 ms"], rows))
    for system in ("openmaker", "openmaker-presigned"):
        if "sigv4_sign_ms_per_request" in results.get(system, {}):
            sign = results[system]["sigv4_sign_ms_per_request"]
            if sign is not None:
                print(f"botocore SigV4 signing on the client: {sign:.3f} ms per request")
    peers = [p for p in PEERS if "levels" in results.get(p, {})]
    for system in ("openmaker", "openmaker-presigned"):
        ours = results.get(system, {}).get("levels")
        if not ours:
            continue
        for concurrency, cell in ours.items():
            good = cell["error_rate"] <= MAX_ERROR_RATE
            for metric, better in (("p50_ms", "lower"), ("p99_ms", "lower"),
                                   ("requests_per_s", "higher")):
                for peer in peers:
                    other = results[peer]["levels"].get(concurrency)
                    if other is None:
                        continue
                    usable = other["error_rate"] <= MAX_ERROR_RATE
                    won = (cell[metric] < other[metric] if better == "lower"
                           else cell[metric] > other[metric])
                    common.record(
                        f"serving.xgboost_csv.{system}.{metric}.c{concurrency}",
                        ours=cell[metric], peer=other[metric],
                        unit="requests/s" if metric == "requests_per_s" else "ms",
                        target=f"openmaker {better} than {peer}, <= 1% errors",
                        met=bool(good and (won or not usable)), better=better,
                        peer_name=peer,
                        details={"ours": cell, "peer": other, "load": note,
                                 "duration_s": args.duration,
                                 "sigv4_sign_ms": results[system].get(
                                     "sigv4_sign_ms_per_request"),
                                 "null_ceiling": results.get("null", {}).get(
                                     "levels", {}).get(concurrency)})
            overhead = cell.get("overhead_latency_p50_ms")
            common.record(f"serving.xgboost_csv.{system}.overhead_latency_p50.c{concurrency}",
                          ours=overhead, peer=None, unit="ms", target="< 1 ms",
                          met=overhead is not None and overhead < 1.0, better="lower",
                          details={"load": note})
    print(f"\nresults appended to {common.RESULTS_FILE}")


if __name__ == "__main__":
    raise SystemExit(common.run_main(main))
