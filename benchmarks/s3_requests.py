"""Small-request rate: 1 KB PutObject + GetObject through boto3, openmaker vs moto.

Each server runs in its own process on loopback and the same client code drives each: N
threads, each with its own boto3 client, alternate PutObject and GetObject of a 1 KiB body
on the same key pattern, after a warm-up. The servers are measured in turn, round after
round, so that a burst of other work on the machine hits them alike; the median round is
reported. Prints requests/s for each server and the ratio ours/moto (target: at least 2x),
latencies, and the CPU time per request of the server and of the client.

A third server, "null", answers every request at once without doing anything: its
requests/s is the ceiling that the boto3 client itself sets on this machine, and so shows
the best ratio any server could reach here. Appends the results to
benchmarks/results/results.jsonl.

    python benchmarks/s3_requests.py [--requests 1000] [--threads 1 4] [--rounds 3]
                                     [--no-fsync] [--profile out.prof [--profile-clock cpu]]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from pathlib import Path

from common import (
    SERVERS,
    format_table,
    isolate_aws_environment,
    load_note,
    median,
    percentile,
    print_profile,
    ratio,
    record,
    run_main,
    s3_client,
)

BUCKET = "benchmark-requests"
BODY_SIZE = 1024
KEYS_PER_THREAD = 64
TARGET_RATIO = 2.0


def _key(thread: int, i: int) -> str:
    return f"requests/thread-{thread}/object-{i % KEYS_PER_THREAD:03d}"


def _put_get_loop(client, thread: int, pairs: int, body: bytes, latencies: dict | None,
                  stop: threading.Event) -> None:
    for i in range(pairs):
        if stop.is_set():
            return
        key = _key(thread, i)
        started = time.perf_counter()
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        middle = time.perf_counter()
        data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        ended = time.perf_counter()
        if len(data) != len(body):
            raise AssertionError(f"GetObject returned {len(data)} bytes, expected {len(body)}")
        if latencies is not None:
            latencies["put"].append(middle - started)
            latencies["get"].append(ended - middle)


def _run_threads(clients: list, pairs: int, body: bytes, measure: bool) -> dict:
    """Run the put/get loop on every client at once; return elapsed time and latencies."""
    threads_n = len(clients)
    barrier = threading.Barrier(threads_n + 1)
    stop = threading.Event()
    latencies = [{"put": [], "get": []} for _ in clients]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            _put_get_loop(clients[index], index, pairs, body,
                          latencies[index] if measure else None, stop)
        except BaseException as exc:  # noqa: B036 - reported by the main thread
            failures.append(exc)
            stop.set()

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads_n)]
    for worker in workers:
        worker.start()
    try:
        barrier.wait()
        started = time.perf_counter()
        cpu_started = time.process_time()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.2)
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_started
    finally:
        stop.set()
    if failures:
        raise failures[0]
    return {
        "elapsed": elapsed,
        "client_cpu": client_cpu,
        "put": [x for lat in latencies for x in lat["put"]],
        "get": [x for lat in latencies for x in lat["get"]],
    }


def measure(server, threads: int, requests: int, warmup: int) -> dict:
    body = os.urandom(BODY_SIZE)
    clients = [s3_client(server.url, max_pool_connections=2) for _ in range(threads)]
    pairs = max(1, requests // 2 // threads)
    _run_threads(clients, max(1, warmup // 2 // threads), body, measure=False)
    server.check_alive()
    cpu_before = server.cpu_seconds()
    run = _run_threads(clients, pairs, body, measure=True)
    cpu_after = server.cpu_seconds()
    total = 2 * pairs * threads
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    for client in clients:
        client.close()
    return {
        "threads": threads,
        "requests": total,
        "seconds": run["elapsed"],
        "rps": total / run["elapsed"],
        "put_p50_ms": 1000 * median(run["put"]),
        "get_p50_ms": 1000 * median(run["get"]),
        "put_p99_ms": 1000 * percentile(run["put"], 0.99),
        "get_p99_ms": 1000 * percentile(run["get"], 0.99),
        "server_cpu_ms_per_request": None if server_cpu is None else 1000 * server_cpu / total,
        "client_cpu_ms_per_request": 1000 * run["client_cpu"] / total,
    }


def _median_round(rounds: list[dict]) -> dict:
    """The round with the median requests/s (its latencies and CPU figures go with it)."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rps_rounds"] = [r["rps"] for r in rounds]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="timed requests per measurement (half puts, half gets)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="untimed requests before each measurement")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4],
                        help="client thread counts to measure")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per server and thread count, taken in turn "
                             "across the servers; the median is reported")
    parser.add_argument("--servers", nargs="+", choices=list(SERVERS),
                        default=list(SERVERS), help="which servers to measure ('null' answers "
                                                    "without doing anything: the client's "
                                                    "ceiling)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="run openmaker with OPENMAKER_STORAGE_FSYNC=false (not its "
                             "default; for seeing what fsync costs)")
    parser.add_argument("--profile", type=Path,
                        help="run openmaker under cProfile (all threads), save the profile "
                             "here and print its top functions (slows openmaker down, so "
                             "no ratio is recorded)")
    parser.add_argument("--profile-clock", choices=["wall", "cpu"], default="wall",
                        help="with --profile: time functions by wall clock (waits included) "
                             "or by each thread's CPU time")
    args = parser.parse_args()
    isolate_aws_environment()
    load = load_note()

    rounds: dict[str, dict[int, list[dict]]] = {
        name: {threads: [] for threads in args.threads} for name in args.servers}
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in args.servers:
            options: dict = {}
            if name == "openmaker":
                options = {"profile": args.profile, "profile_clock": args.profile_clock}
                if args.no_fsync:
                    options["settings"] = {"OPENMAKER_STORAGE_FSYNC": "false"}
            servers[name] = server = stack.enter_context(SERVERS[name](**options))
            s3_client(server.url).create_bucket(Bucket=BUCKET)
            print(f"{name}: {server.url} (pid {server.pid})", flush=True)
        for number in range(args.rounds):
            for threads in args.threads:
                for name, server in servers.items():
                    result = measure(server, threads, args.requests, args.warmup)
                    rounds[name][threads].append(result)
                    print(f"  round {number + 1}, {threads} thread(s), {name}: "
                          f"{result['rps']:,.0f} requests/s", flush=True)

    results = {name: {threads: _median_round(runs) for threads, runs in by_threads.items()}
               for name, by_threads in rounds.items()}
    rows = []
    for name, by_threads in results.items():
        for threads, r in by_threads.items():
            rows.append([name, threads, r["requests"], r["rps"], min(r["rps_rounds"]),
                         max(r["rps_rounds"]), r["put_p50_ms"], r["get_p50_ms"],
                         r["put_p99_ms"], r["get_p99_ms"], r["server_cpu_ms_per_request"],
                         r["client_cpu_ms_per_request"]])
    fsync_note = ", openmaker with OPENMAKER_STORAGE_FSYNC=false" if args.no_fsync else ""
    print(f"\n{BODY_SIZE} B PutObject + GetObject through boto3 (median of {args.rounds} "
          f"rounds{fsync_note})")
    print(format_table(
        ["server", "threads", "requests", "req/s", "min", "max", "put p50 ms", "get p50 ms",
         "put p99 ms", "get p99 ms", "server CPU ms/req", "client CPU ms/req"], rows))
    if load:
        print(load)

    if "openmaker" in results and "moto" in results and not args.profile:
        print(f"\nratio openmaker/moto (requests/s; higher is better; target >= "
              f"{TARGET_RATIO:g}x)")
        summary = []
        suffix = ".fsync_off" if args.no_fsync else ""
        for threads in args.threads:
            ours, peer = results["openmaker"][threads], results["moto"][threads]
            ceiling = results.get("null", {}).get(threads)
            value = ratio(ours["rps"], peer["rps"])
            met = value is not None and value >= TARGET_RATIO
            cpu_ratio = ratio(peer["server_cpu_ms_per_request"],
                              ours["server_cpu_ms_per_request"])
            best = ratio(ceiling["rps"], peer["rps"]) if ceiling else None
            summary.append([
                threads, ours["rps"], peer["rps"], f"{value:.2f}x", "met" if met else "NOT MET",
                None if cpu_ratio is None else f"{cpu_ratio:.2f}x",
                None if ceiling is None else ceiling["rps"],
                None if best is None else f"{best:.2f}x",
            ])
            record(f"s3_requests.put_get_1KB.threads_{threads}{suffix}", ours=ours["rps"],
                   peer=peer["rps"], unit="requests/s", target=f"ratio >= {TARGET_RATIO:g}",
                   met=met, peer_name="moto",
                   details={"openmaker": ours, "moto": peer, "null_ceiling": ceiling,
                            "rounds": args.rounds, "load": load})
        print(format_table(["threads", "openmaker req/s", "moto req/s", "ratio", "target",
                            "server CPU moto/ours", "null server req/s",
                            "best possible ratio"], summary))
        print("(server CPU moto/ours: how many times more CPU moto spends per request; null "
              "server: the client's own ceiling, so 'best possible ratio' is what a server "
              "costing nothing would score)")
        print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    if args.profile:
        print_profile(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
