"""Pipe mode throughput: a training job reading a 1 GiB Pipe-mode channel from its FIFO,
next to ``cat`` reading the same bytes from a local file.

Peer: ``cat FILE > /dev/null``, timed from process start to exit. Ours: a script-mode
training job (TrainingInputMode ``Pipe``) on a real openmaker server whose ``train.py`` reads
``/opt/ml/input/data/train_0`` to end of file in 1 MiB ``readinto`` calls and prints the
bytes and seconds it measured (from just before ``open``, so the wait for the first byte
counts); the benchmark reads that line back from the job's CloudWatch log.

The target compares with ``cat`` reading the file *from disk*, so by default (``--cache
cold``) both files -- the local one and the object store's file behind the object -- are
evicted from the page cache before every timed read (``posix_fadvise(DONTNEED)`` after an
``fsync``; no root needed). ``--cache warm`` reads both from the page cache instead (each is
read once, untimed, first): that measures the FIFO path itself, which on Linux tops out
well below a ``cat`` to ``/dev/null`` (a pipe costs the reader one more copy per byte, and a
1 MiB pipe one wake-up per MiB). Rounds alternate the two sides; the median round is
reported in MB/s (10^6 bytes/s), target: ours at least 80% of ``cat``'s. Appends the result
to benchmarks/results/results.jsonl.

    python benchmarks/pipe_mode.py [--size-mb 1024] [--rounds 3] [--cache cold|warm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from common import (
    TRAINING_ROLE,
    aws_client,
    format_table,
    isolate_aws_environment,
    job_phases,
    load_note,
    median,
    openmaker_server,
    ratio,
    record,
    run_main,
    s3_client,
    source_archive,
    training_job_log,
    wait_for_training_job,
)

BUCKET = "benchmark-pipe"
DATA_KEY = "pipe/train/data.bin"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
MIB = 1024 * 1024
MB = 1_000_000
TARGET_RATIO = 0.8
RESULT_PREFIX = "pipe-read "

# The job: read the epoch-0 FIFO to the end into one reused 1 MiB buffer (no allocation per
# read), then print what it measured as one JSON line: all of it, the wait in ``open`` for
# the writer, and the wait from the last byte to end of file (the writer's close).
READER = '''
import json, os, time
path = os.path.join(os.path.dirname(os.environ["SM_CHANNEL_TRAIN"]), "train_0")
buffer = bytearray(1024 * 1024)
total = 0
started = time.perf_counter()
with open(path, "rb", buffering=0) as fifo:
    opened = last = time.perf_counter()
    while count := fifo.readinto(buffer):
        total += count
        last = time.perf_counter()
ended = time.perf_counter()
print(RESULT_PREFIX + json.dumps({"bytes": total, "seconds": ended - started,
                          "open_seconds": opened - started,
                          "eof_seconds": ended - last}), flush=True)
'''.replace("RESULT_PREFIX", repr(RESULT_PREFIX))


def make_file(path: Path, size: int) -> None:
    """``size`` random bytes (incompressible, so no layer can shortcut them)."""
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 8 * MIB))
            out.write(chunk)
            remaining -= len(chunk)


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache, so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def time_cat(path: Path) -> float:
    """Seconds for a fresh ``cat path > /dev/null``, process start to exit."""
    with open(os.devnull, "wb") as devnull:
        started = time.perf_counter()
        subprocess.run(["cat", str(path)], stdout=devnull, check=True)
        return time.perf_counter() - started


def run_pipe_job(sagemaker, logs, source_uri: str) -> dict:
    """One Pipe-mode job reading the channel; what its script measured, plus job timings."""
    name = f"pipe-{uuid.uuid4().hex[:10]}"
    created = time.perf_counter()
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        RoleArn=TRAINING_ROLE,
        HyperParameters={"sagemaker_program": json.dumps("train.py"),
                         "sagemaker_submit_directory": json.dumps(source_uri)},
        InputDataConfig=[{
            "ChannelName": "train", "ContentType": "application/octet-stream",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/{DATA_KEY}"}},
        }],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    job = wait_for_training_job(sagemaker, name, poll=0.1)
    job_seconds = time.perf_counter() - created
    lines = [line for line in training_job_log(logs, name) if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"job {name} logged no {RESULT_PREFIX.strip()!r} line")
    measured = json.loads(lines[-1][len(RESULT_PREFIX):])
    return {**measured, "job": name, "job_seconds": job_seconds, "phases": job_phases(job)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024,
                        help="channel size in MiB (default 1024: 1 GiB)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (cat, Pipe-mode job); the median is reported")
    parser.add_argument("--cache", choices=("cold", "warm"), default="cold",
                        help="cold (default): both sides read from disk, as the target says; "
                             "warm: both read from the page cache")
    args = parser.parse_args()
    isolate_aws_environment()

    load = load_note()
    size = args.size_mb * MIB
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-bench-pipe-"))
    cat_seconds: list[float] = []
    jobs: list[dict] = []
    try:
        source = scratch / "data.bin"
        print(f"writing {args.size_mb} MiB of random bytes to {source}", flush=True)
        make_file(source, size)
        with openmaker_server() as server:
            print(f"openmaker: {server.url} (pid {server.pid})", flush=True)
            s3 = s3_client(server.url)
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(source), BUCKET, DATA_KEY)
            s3.put_object(Bucket=BUCKET, Key="pipe/source/sourcedir.tar.gz",
                          Body=source_archive(READER))
            source_uri = f"s3://{BUCKET}/pipe/source/sourcedir.tar.gz"
            sagemaker = aws_client("sagemaker", server.url)
            logs = aws_client("logs", server.url)
            stored = server.workdir / "home" / "storage" / BUCKET / DATA_KEY
            cold = args.cache == "cold"
            time_cat(source)  # warm: the page cache now holds the file, as it holds the object
            for number in range(args.rounds):
                if cold:
                    evict(source)
                cat_seconds.append(time_cat(source))
                if cold:
                    evict(stored)
                job = run_pipe_job(sagemaker, logs, source_uri)
                if job["bytes"] != size:
                    raise RuntimeError(f"job {job['job']} read {job['bytes']} bytes of {size}")
                jobs.append(job)
                print(f"  round {number + 1}: cat {size / cat_seconds[-1] / MB:,.0f} MB/s, "
                      f"pipe {size / job['seconds'] / MB:,.0f} MB/s (job {job['job']}, "
                      f"{job['job_seconds']:.2f} s end to end)", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    peer = size / median(cat_seconds) / MB
    ours = size / median([job["seconds"] for job in jobs]) / MB
    waits = [job["open_seconds"] + job["eof_seconds"] for job in jobs]
    streaming = size / median([job["seconds"] - wait for job, wait in
                               zip(jobs, waits, strict=True)]) / MB
    value = ratio(ours, peer)
    met = value is not None and value >= TARGET_RATIO
    where = "from disk (page cache dropped)" if args.cache == "cold" else \
        "from the page cache"
    print(f"\nreading {args.size_mb} MiB {where} on both sides, median of {args.rounds} "
          "(MB/s = 10^6 bytes/s)")
    print(format_table(
        ["reader", "MB/s", "seconds", "what is timed"],
        [["cat FILE > /dev/null (peer)", peer, median(cat_seconds), "process start to exit"],
         ["Pipe-mode job (ours)", ours, median([j["seconds"] for j in jobs]),
          "open() to end of file, in the job"],
         ["  waiting in open()", None, median([j["open_seconds"] for j in jobs]),
          "until the server opens the FIFO"],
         ["  last byte to EOF", None, median([j["eof_seconds"] for j in jobs]),
          "until the server closes the FIFO"],
         ["  the bytes alone", streaming, median([j["seconds"] - w for j, w in
                                                  zip(jobs, waits, strict=True)]),
          "first byte to last byte"],
         ["  whole job", None, median([j["job_seconds"] for j in jobs]),
          "CreateTrainingJob to Completed"]]))
    print(f"\nratio ours/cat: {value:.2f} (target >= {TARGET_RATIO:g}): "
          f"{'met' if met else 'NOT MET'}")
    if load:
        print(load)
    record(f"pipe_mode.read_{args.size_mb}MiB_{args.cache}", ours=ours, peer=peer, unit="MB/s",
           target=f"ratio >= {TARGET_RATIO:g}", met=met, peer_name="cat",
           details={"size_bytes": size, "cat_seconds": cat_seconds,
                    "jobs": jobs, "streaming_mb_s": streaming, "load": load,
                    "cache": args.cache})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
