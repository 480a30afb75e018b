"""Large-object throughput: a 100 MiB upload_file and download_file through boto3 with its
default TransferConfig (multipart above 8 MiB, 8 MiB parts, 10 threads), openmaker vs moto.

Each server runs in its own process on loopback. Each round uploads the file, downloads it
to a new path, checks the size (and, in the first round, the SHA-256), then deletes the
object; the median round is reported in MiB/s each way (target for openmaker: at least
200 MB/s each way; 1 MiB/s is 1.05 MB/s, so MiB/s is the stricter reading). moto's numbers
are there for context. Appends the results to benchmarks/results/results.jsonl.

    python benchmarks/s3_throughput.py [--size-mib 100] [--rounds 3] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import (
    SERVERS,
    format_table,
    isolate_aws_environment,
    load_note,
    median,
    print_profile,
    ratio,
    record,
    run_main,
    s3_client,
)

BUCKET = "benchmark-throughput"
MIB = 1024 * 1024
TARGET_MB_PER_S = 200.0  # from the issue; in MB/s, we compare MiB/s against it (stricter)


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * MIB))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def prepare(server, scratch: Path):
    """A client for ``server``, its bucket, and one small multipart round trip, so that
    connections and code paths are warm."""
    client = s3_client(server.url)
    client.create_bucket(Bucket=BUCKET)
    warm = scratch / "warm.bin"
    if not warm.exists():
        make_file(warm, 9 * MIB)
    client.upload_file(str(warm), BUCKET, "warm-up")
    client.download_file(BUCKET, "warm-up", str(scratch / "warm.out"))
    client.delete_object(Bucket=BUCKET, Key="warm-up")
    return client


def one_round(server, client, source: Path, source_sha256: str, number: int,
              scratch: Path) -> dict:
    """Upload ``source``, download it again, check it, delete it: seconds and server CPU."""
    size = source.stat().st_size
    key = f"throughput/round-{number}.bin"
    target = scratch / f"download-{server.name}-{number}.bin"
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    client.upload_file(str(source), BUCKET, key)
    uploaded = time.perf_counter()
    cpu_uploaded = server.cpu_seconds()
    client.download_file(BUCKET, key, str(target))
    downloaded = time.perf_counter()
    cpu_downloaded = server.cpu_seconds()
    if target.stat().st_size != size:
        raise AssertionError(f"{server.name}: downloaded {target.stat().st_size} bytes, "
                             f"uploaded {size}")
    if number == 0 and sha256_of(target) != source_sha256:
        raise AssertionError(f"{server.name}: the downloaded file differs from the upload")
    target.unlink()
    client.delete_object(Bucket=BUCKET, Key=key)
    known = None not in (cpu, cpu_uploaded, cpu_downloaded)
    return {
        "upload_s": uploaded - started,
        "download_s": downloaded - uploaded,
        "upload_cpu_s": cpu_uploaded - cpu if known else None,
        "download_cpu_s": cpu_downloaded - cpu_uploaded if known else None,
    }


def summarize(rounds: list[dict], size: int) -> dict:
    mib = size / MIB
    up = median([r["upload_s"] for r in rounds])
    down = median([r["download_s"] for r in rounds])
    up_cpu = [r["upload_cpu_s"] for r in rounds if r["upload_cpu_s"] is not None]
    down_cpu = [r["download_cpu_s"] for r in rounds if r["download_cpu_s"] is not None]
    return {
        "size_mib": mib,
        "rounds": len(rounds),
        "upload_seconds": [r["upload_s"] for r in rounds],
        "download_seconds": [r["download_s"] for r in rounds],
        "upload_mib_s": mib / up,
        "download_mib_s": mib / down,
        "upload_server_cpu_s_per_gib": median(up_cpu) * 1024 / mib if up_cpu else None,
        "download_server_cpu_s_per_gib": median(down_cpu) * 1024 / mib if down_cpu else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=100, help="object size in MiB")
    parser.add_argument("--rounds", type=int, default=3,
                        help="upload+download rounds per server, taken in turn across the "
                             "servers (the median is reported)")
    parser.add_argument("--servers", nargs="+", choices=["openmaker", "moto"],
                        default=["openmaker", "moto"], help="which servers to measure")
    parser.add_argument("--no-fsync", action="store_true",
                        help="run openmaker with OPENMAKER_STORAGE_FSYNC=false (not its "
                             "default; for seeing what fsync costs)")
    parser.add_argument("--profile", type=Path,
                        help="run openmaker under cProfile (all threads), save the profile "
                             "here and print its top functions (slows openmaker down)")
    parser.add_argument("--profile-clock", choices=["wall", "cpu"], default="wall",
                        help="with --profile: time functions by wall clock (waits included) "
                             "or by each thread's CPU time")
    args = parser.parse_args()
    isolate_aws_environment()

    load = load_note()
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-bench-throughput-"))
    rounds: dict[str, list[dict]] = {name: [] for name in args.servers}
    try:
        source = scratch / "source.bin"
        source_sha256 = make_file(source, args.size_mib * MIB)
        with contextlib.ExitStack() as stack:
            servers, clients = {}, {}
            for name in args.servers:
                options: dict = {}
                if name == "openmaker":
                    options = {"profile": args.profile, "profile_clock": args.profile_clock}
                    if args.no_fsync:
                        options["settings"] = {"OPENMAKER_STORAGE_FSYNC": "false"}
                servers[name] = server = stack.enter_context(SERVERS[name](**options))
                clients[name] = prepare(server, scratch)
                print(f"{name}: {server.url} (pid {server.pid})", flush=True)
            for number in range(args.rounds):
                for name, server in servers.items():
                    result = one_round(server, clients[name], source, source_sha256, number,
                                       scratch)
                    rounds[name].append(result)
                    print(f"  round {number + 1}, {name}: upload "
                          f"{args.size_mib / result['upload_s']:,.0f} MiB/s, download "
                          f"{args.size_mib / result['download_s']:,.0f} MiB/s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {name: summarize(runs, args.size_mib * MIB) for name, runs in rounds.items()}

    fsync_note = " (openmaker with OPENMAKER_STORAGE_FSYNC=false)" if args.no_fsync else ""
    print(f"\n{args.size_mib} MiB upload_file / download_file through boto3, default "
          f"TransferConfig, median of {args.rounds}{fsync_note}")
    print(format_table(
        ["server", "upload MiB/s", "download MiB/s", "upload s", "download s",
         "server CPU s/GiB up", "server CPU s/GiB down"],
        [[name, r["upload_mib_s"], r["download_mib_s"], median(r["upload_seconds"]),
          median(r["download_seconds"]), r["upload_server_cpu_s_per_gib"],
          r["download_server_cpu_s_per_gib"]] for name, r in results.items()]))
    if load:
        print(load)

    if "openmaker" in results and not args.profile:
        ours = results["openmaker"]
        peer = results.get("moto")
        suffix = ".fsync_off" if args.no_fsync else ""
        summary = []
        for direction in ("upload", "download"):
            value = ours[f"{direction}_mib_s"]
            peer_value = peer[f"{direction}_mib_s"] if peer else None
            met = value >= TARGET_MB_PER_S
            summary.append([direction, value, peer_value,
                            None if peer is None else f"{ratio(value, peer_value):.2f}x",
                            f">= {TARGET_MB_PER_S:g}", "met" if met else "NOT MET"])
            record(f"s3_throughput.{direction}_{args.size_mib}MiB{suffix}", ours=value,
                   peer=peer_value, unit="MiB/s", target=f"ours >= {TARGET_MB_PER_S:g} MB/s",
                   met=met, peer_name="moto" if peer else None,
                   details={"openmaker": ours, "moto": peer, "load": load})
        print("\nopenmaker vs target (MiB/s; higher is better; moto for context)")
        print(format_table(["direction", "openmaker", "moto", "ratio", "target", ""], summary))
        print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    if args.profile:
        print_profile(args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
