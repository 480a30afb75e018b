"""Built-in K-Means against scikit-learn's KMeans: wall time to fit at equal inertia.

Data: a seeded ``make_blobs`` set, 1,000,000 x 50 float32, 10 centres with
``cluster_std=4`` (the clusters overlap a little), saved once as ``.npy``. Both sides run as
fresh ``python -c`` processes that ``numpy.load`` the array and time only the fit:

* ours: ``openmaker.algorithms.kmeans.fit`` with the job's defaults for ``k=10``
  (``mini_batch_size`` 5000, 1 epoch, ``extra_center_factor`` auto, local Lloyd
  k-means++, the same code a training job runs after reading its channel);
* peer: ``sklearn.cluster.KMeans(n_clusters=10, random_state=0)`` (k-means++, ``n_init``
  auto = 1, Lloyd, every core).

Inertia (sum of squared distances to the closest centre) is computed for both with the
same code after the clock stops; imports (numpy, scipy, scikit-learn) happen before the
clock starts on both sides. Each side runs ``--rounds`` times, in turn; medians are
reported. Target: ours <= 1.0x the peer's time with inertia within 1%. Reading the channel
(CSV or RecordIO-protobuf parsing in a job) is not part of the time on either side.
Appends the result to benchmarks/results/results.jsonl.

    python benchmarks/kmeans.py [--rounds 3] [--rows 1000000] [--columns 50] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import format_table, load_note, median, ratio, record, run_main

TARGET_RATIO = 1.0
INERTIA_TOLERANCE = 0.01

SIDES = {
    "ours": """
import json, sys, time
import numpy as np
import scipy.sparse, sklearn.cluster  # imported before the clock, as on the peer's side
from openmaker.algorithms.kmeans import KMeansConfig, fit, _closest
X = np.load(sys.argv[1]); k = int(sys.argv[2])
started = time.perf_counter()
centers = fit(X, KMeansConfig(feature_dim=X.shape[1], k=k))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "inertia": float(_closest(X, centers)[1].sum())}))
""",
    "peer": """
import json, sys, time
import numpy as np
from sklearn.cluster import KMeans
from openmaker.algorithms.kmeans import _closest
X = np.load(sys.argv[1]); k = int(sys.argv[2])
started = time.perf_counter()
model = KMeans(n_clusters=k, random_state=0).fit(X)
seconds = time.perf_counter() - started
inertia = float(_closest(X, model.cluster_centers_)[1].sum())
print(json.dumps({"seconds": seconds, "inertia": inertia, "n_iter": int(model.n_iter_)}))
""",
}


def make_data(path: Path, rows: int, columns: int, k: int) -> None:
    import numpy as np
    from sklearn.datasets import make_blobs

    features, _ = make_blobs(rows, columns, centers=k, cluster_std=4.0, random_state=0)
    np.save(path, features.astype(np.float32))


def run_side(side: str, path: Path, k: int) -> dict:
    completed = subprocess.run([sys.executable, "-c", SIDES[side], str(path), str(k)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    load = load_note()
    if load:
        print(load)
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-kmeans-bench-"))
    runs: dict[str, list[dict]] = {"ours": [], "peer": []}
    try:
        path = scratch / "blobs.npy"
        make_data(path, args.rows, args.columns, args.k)
        print(f"{args.rows:,} x {args.columns} float32, k={args.k}", flush=True)
        for number in range(args.rounds):
            for side in ("ours", "peer"):
                runs[side].append(run_side(side, path, args.k))
            print(f"  round {number + 1}: ours {runs['ours'][-1]['seconds']:.2f} s, peer "
                  f"{runs['peer'][-1]['seconds']:.2f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ours = median([r["seconds"] for r in runs["ours"]])
    peer = median([r["seconds"] for r in runs["peer"]])
    ours_inertia = median([r["inertia"] for r in runs["ours"]])
    peer_inertia = median([r["inertia"] for r in runs["peer"]])
    inertia_ratio = ours_inertia / peer_inertia
    value = ratio(ours, peer)
    met = (value is not None and value <= TARGET_RATIO
           and abs(inertia_ratio - 1) <= INERTIA_TOLERANCE)
    print(f"\nk-means, {args.rows:,} x {args.columns}, k={args.k}; median of {args.rounds}")
    print(format_table(["side", "fit seconds", "inertia"],
                       [["openmaker kmeans (ours)", ours, f"{ours_inertia:.6g}"],
                        ["sklearn KMeans (peer)", peer, f"{peer_inertia:.6g}"]]))
    print(f"\nours {ours:.2f} s, peer {peer:.2f} s: ratio {value:.3f} (target <= "
          f"{TARGET_RATIO:g}); inertia ours/peer {inertia_ratio:.4f} (target within "
          f"{INERTIA_TOLERANCE:.0%}): {'met' if met else 'NOT MET'}")
    if load:
        print(load)
    record(f"kmeans.fit_{args.rows}x{args.columns}_k{args.k}", ours=ours, peer=peer,
           unit="s", target=f"ratio <= {TARGET_RATIO:g} and inertia within "
           f"{INERTIA_TOLERANCE:.0%}", met=met, better="lower",
           peer_name="sklearn.cluster.KMeans",
           details={"inertia_ratio": inertia_ratio, "ours_inertia": ours_inertia,
                    "peer_inertia": peer_inertia, "runs": runs, "load": load})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
