"""CLI start-up: wall time of ``openmaker --help``, next to ``python -c pass`` (the floor
any Python CLI pays) and ``python -m awscli --version`` (the AWS CLI, the peer).

Each command runs as a fresh subprocess, once to warm the file cache and then ``--runs``
times; the median is reported (target for openmaker: under 0.5 s). The ratio is
openmaker / awscli, where lower is better. The heaviest imports of ``openmaker --help``
(from ``python -X importtime``) follow, to show where its start-up goes. Appends the result
to benchmarks/results/results.jsonl.

    python benchmarks/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    format_table,
    isolate_aws_environment,
    median,
    ratio,
    record,
    run_main,
)

TARGET_SECONDS = 0.5


def openmaker_command() -> list[str]:
    """The ``openmaker`` script installed next to this Python, else ``python -m openmaker``."""
    script = Path(sys.executable).parent / "openmaker"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "openmaker"]


def time_command(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


def heaviest_imports(argv: list[str], limit: int = 12) -> list[tuple[str, float, float]]:
    """Top-level imports of ``argv`` (a ``python -m`` command) by cumulative time:
    (module, cumulative ms, self ms)."""
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                            text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        if name[1:2] != " ":  # nested imports are indented by two spaces per level
            rows.append((name.strip(), int(cumulative_us) / 1000, int(self_us) / 1000))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    args = parser.parse_args()
    isolate_aws_environment()
    os.environ.pop("OPENMAKER_URL", None)

    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "openmaker --help (ours)": [*openmaker_command(), "--help"],
        "python -m awscli --version (peer)": [sys.executable, "-m", "awscli", "--version"],
    }
    times = {}
    for label, argv in commands.items():
        times[label] = time_command(argv, args.runs)
        print(f"{label}: median {median(times[label]):.3f} s", flush=True)

    baseline = median(times["python -c pass (baseline)"])
    rows = [[label, median(t), min(t), max(t), median(t) - baseline]
            for label, t in times.items()]
    print(f"\nCLI start-up, wall time of a fresh process ({args.runs} runs after one warm-up)")
    print(format_table(["command", "median s", "min s", "max s", "over baseline s"], rows))

    ours = median(times["openmaker --help (ours)"])
    peer = median(times["python -m awscli --version (peer)"])
    met = ours < TARGET_SECONDS
    print(f"\nopenmaker --help: {ours:.3f} s (target < {TARGET_SECONDS} s: "
          f"{'met' if met else 'NOT MET'}); ratio openmaker/awscli {ratio(ours, peer):.2f}x "
          "(lower is better)")
    record("cli_startup.help", ours=ours, peer=peer, unit="s",
           target=f"ours < {TARGET_SECONDS} s", met=met, better="lower",
           peer_name="python -m awscli --version",
           details={"baseline_python_c_pass_s": baseline, "runs": args.runs,
                    "seconds": {label: t for label, t in times.items()}})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")

    print("\nheaviest top-level imports of `python -m openmaker --help` (-X importtime)")
    print(format_table(["module", "cumulative ms", "self ms"],
                       heaviest_imports(["-m", "openmaker", "--help"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
