"""Built-in Linear Learner against scikit-learn's SGDClassifier: wall time to fit at equal
accuracy, and what 32 parallel models cost against one.

Data: a seeded ``make_classification`` set, ``--rows`` x ``--columns`` float32 (default
1,000,000 x 100, 20 informative features, 2% label noise), plus 100,000 held-out rows for
accuracy, saved once as ``.npy``. Each side runs as a fresh ``python -c`` process that
``numpy.load``s the arrays and times only the fit (imports happen before the clock):

* ours: ``openmaker.algorithms.linear_learner.fit_arrays`` (the code a training job runs
  after reading its channels) with ``predictor_type=binary_classifier`` and the job
  defaults (``mini_batch_size`` 1000, ``epochs`` 15, adam, early stopping, normalisation),
  ``num_models`` 1 and then 32, with no validation channel (the training sample picks the
  model and its threshold, as a job without one does);
* peer: ``sklearn.linear_model.SGDClassifier(loss="log_loss", random_state=0)`` (its
  defaults: ``max_iter`` 1000, ``tol`` 1e-3, early stop on the training loss).

Targets: num_models=1 <= 1.5x the peer's time with held-out accuracy within 0.5 points;
num_models=32 <= 4x num_models=1. Appends both results to benchmarks/results/results.jsonl.

    python benchmarks/linear_learner.py [--rounds 1] [--rows 1000000] [--columns 100]
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

TARGET_RATIO = 1.5
TARGET_MODELS_RATIO = 4.0
ACCURACY_TOLERANCE = 0.005

SIDES = {
    "ours": """
import contextlib, io, json, sys, time
import numpy as np
import torch, scipy.stats, scipy.sparse, sklearn.linear_model  # before the clock, as the peer
from openmaker.algorithms.linear_learner import fit_arrays
X, y, TX, ty = (np.load(path) for path in sys.argv[1:5])
started = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()) as log:
    model = fit_arrays(X, y, {"predictor_type": "binary_classifier", "num_models": sys.argv[5]})
seconds = time.perf_counter() - started
accuracy = float(np.mean(model.labels(model.scores(TX)) == ty))
epochs = sum("train" in l and "epoch=" in l for l in log.getvalue().splitlines())
print(json.dumps({"seconds": seconds, "accuracy": accuracy, "epochs": epochs}))
""",
    "peer": """
import json, sys, time
import numpy as np
from sklearn.linear_model import SGDClassifier
X, y, TX, ty = (np.load(path) for path in sys.argv[1:5])
started = time.perf_counter()
model = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "accuracy": float(model.score(TX, ty)),
                  "epochs": int(model.n_iter_)}))
""",
}


def make_data(folder: Path, rows: int, columns: int) -> list[Path]:
    import numpy as np
    from sklearn.datasets import make_classification

    features, labels = make_classification(rows + 100_000, columns, n_informative=20,
                                           n_redundant=10, flip_y=0.02, random_state=0)
    features = features.astype(np.float32)
    labels = labels.astype(np.float32)
    paths = [folder / name for name in ("x.npy", "y.npy", "tx.npy", "ty.npy")]
    for path, array in zip(paths, (features[:rows], labels[:rows], features[rows:],
                                   labels[rows:]), strict=True):
        np.save(path, array)
    return paths


def run_side(side: str, paths: list[Path], num_models: int = 1) -> dict:
    completed = subprocess.run([sys.executable, "-c", SIDES[side], *map(str, paths),
                                str(num_models)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=100)
    args = parser.parse_args()
    load = load_note()
    if load:
        print(load)
    scratch = Path(tempfile.mkdtemp(prefix="openmaker-linear-learner-bench-"))
    runs: dict[str, list[dict]] = {"ours": [], "ours32": [], "peer": []}
    try:
        paths = make_data(scratch, args.rows, args.columns)
        print(f"{args.rows:,} x {args.columns} float32, binary", flush=True)
        for number in range(args.rounds):
            runs["ours"].append(run_side("ours", paths, 1))
            runs["peer"].append(run_side("peer", paths))
            runs["ours32"].append(run_side("ours", paths, 32))
            print(f"  round {number + 1}: " + ", ".join(
                f"{side} {runs[side][-1]['seconds']:.2f} s" for side in runs), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    seconds = {side: median([r["seconds"] for r in found]) for side, found in runs.items()}
    accuracy = {side: median([r["accuracy"] for r in found]) for side, found in runs.items()}
    epochs = {side: median([r["epochs"] for r in found]) for side, found in runs.items()}
    value = ratio(seconds["ours"], seconds["peer"])
    models_value = ratio(seconds["ours32"], seconds["ours"])
    met = (value is not None and value <= TARGET_RATIO
           and accuracy["ours"] >= accuracy["peer"] - ACCURACY_TOLERANCE)
    models_met = models_value is not None and models_value <= TARGET_MODELS_RATIO
    print(f"\nlinear learner, {args.rows:,} x {args.columns}; median of {args.rounds}")
    print(format_table(["side", "fit seconds", "held-out accuracy", "epochs"], [
        ["openmaker linear-learner, num_models=1 (ours)", seconds["ours"],
         f"{accuracy['ours']:.4f}", epochs["ours"]],
        ["openmaker linear-learner, num_models=32", seconds["ours32"],
         f"{accuracy['ours32']:.4f}", epochs["ours32"]],
        ["sklearn SGDClassifier (peer)", seconds["peer"], f"{accuracy['peer']:.4f}",
         epochs["peer"]]]))
    print(f"\nnum_models=1 / SGDClassifier: {value:.3f} (target <= {TARGET_RATIO:g}, accuracy "
          f"within {ACCURACY_TOLERANCE:.1%}): {'met' if met else 'NOT MET'}")
    print(f"num_models=32 / num_models=1: {models_value:.3f} (target <= "
          f"{TARGET_MODELS_RATIO:g}): {'met' if models_met else 'NOT MET'}")
    if load:
        print(load)
    name = f"{args.rows}x{args.columns}"
    record(f"linear_learner.fit_{name}", ours=seconds["ours"], peer=seconds["peer"], unit="s",
           target=f"ratio <= {TARGET_RATIO:g} and accuracy within {ACCURACY_TOLERANCE:.1%}",
           met=met, better="lower", peer_name="sklearn.linear_model.SGDClassifier",
           details={"accuracy": accuracy, "epochs": epochs, "runs": runs, "load": load})
    record(f"linear_learner.num_models_32_vs_1_{name}", ours=seconds["ours32"],
           peer=seconds["ours"], unit="s", target=f"ratio <= {TARGET_MODELS_RATIO:g}",
           met=models_met, better="lower", peer_name="openmaker linear-learner num_models=1",
           details={"accuracy": accuracy, "epochs": epochs, "load": load})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
