"""Built-in PCA's training computation next to scikit-learn's randomized PCA, in one process
on the same in-memory array.

Data: a seeded 1,000,000 x 100 float32 matrix with a decaying spectrum (Gaussian rows times
a random 100 x 100 mixing matrix scaled by 1/(1+i)), plus an offset, so centring matters.
Ours: ``openmaker.algorithms.pca.fit`` with ``algorithm_mode=randomized`` over mini-batches
of ``--mini-batch-size`` rows: the statistics every training host accumulates (ΣX, ΣXᵀX in
float64) and the randomized decomposition, exactly what a job runs once its channel is
parsed. Peer: ``sklearn.decomposition.PCA(n_components, svd_solver="randomized",
random_state=0).fit(X)``. Reading the channel (CSV or RecordIO-protobuf parsing) is not
timed: at this size it is the formats' cost, not PCA's, and the peer has none. Each side
runs once untimed, then ``--rounds`` times in turn; medians are reported, with the largest
relative difference of the explained variances. Target: ours ≤ 1.2x the peer's wall time.
Appends the result to benchmarks/results/results.jsonl.

    python benchmarks/pca.py [--rounds 3] [--rows 1000000] [--columns 100] [--components 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import format_table, load_note, median, ratio, record, run_main

TARGET = 1.2


def make_data(rows: int, columns: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((columns, columns)) / (1 + np.arange(columns))[:, None]
    data = np.empty((rows, columns), dtype=np.float32)
    for start in range(0, rows, 100_000):  # in blocks: keeps the float64 temporaries small
        block = rng.standard_normal((min(100_000, rows - start), columns)) @ mixing
        data[start:start + len(block)] = block + 3.0
    return data


def ours(data: np.ndarray, components: int, mini_batch_size: int) -> tuple[float, np.ndarray]:
    from openmaker.algorithms.pca import fit, mini_batches

    started = time.perf_counter()
    model = fit(mini_batches(data, mini_batch_size), data.shape[1], components,
                algorithm_mode="randomized")
    seconds = time.perf_counter() - started
    return seconds, (model.s.astype(np.float64) ** 2 / (len(data) - 1))[::-1]


def peer(data: np.ndarray, components: int) -> tuple[float, np.ndarray]:
    from sklearn.decomposition import PCA

    started = time.perf_counter()
    model = PCA(n_components=components, svd_solver="randomized", random_state=0).fit(data)
    seconds = time.perf_counter() - started
    return seconds, model.explained_variance_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--mini-batch-size", type=int, default=10_000)
    args = parser.parse_args()
    note = load_note()
    if note:
        print(note)
    print(f"data: {args.rows:,} x {args.columns} float32, {args.components} components, "
          f"mini-batches of {args.mini_batch_size:,}", flush=True)
    data = make_data(args.rows, args.columns)
    ours(data, args.components, args.mini_batch_size)  # untimed warm-up
    peer(data, args.components)
    our_times, peer_times = [], []
    difference = 0.0
    for round_number in range(1, args.rounds + 1):
        seconds, ours_variance = ours(data, args.components, args.mini_batch_size)
        our_times.append(seconds)
        seconds, peer_variance = peer(data, args.components)
        peer_times.append(seconds)
        difference = max(difference,
                         float(np.max(np.abs(ours_variance / peer_variance - 1))))
        print(f"round {round_number}: ours {our_times[-1]:.3f} s, scikit-learn "
              f"{peer_times[-1]:.3f} s", flush=True)
    ours_s, peer_s = median(our_times), median(peer_times)
    result_ratio = ratio(ours_s, peer_s)
    met = result_ratio is not None and result_ratio <= TARGET
    print()
    print(format_table(["system", "median s", "min s", "max s"], [
        ["openmaker pca (randomized)", ours_s, min(our_times), max(our_times)],
        ["sklearn PCA(svd_solver=randomized)", peer_s, min(peer_times), max(peer_times)]]))
    print(f"\nratio ours/scikit-learn {result_ratio:.3f} (target <= {TARGET}: "
          f"{'met' if met else 'NOT MET'}; lower is better); explained variance differs by "
          f"at most {difference:.2e} (relative)")
    record(f"pca.randomized_{args.rows}x{args.columns}", ours=ours_s, peer=peer_s, unit="s",
           target=f"ratio <= {TARGET}", met=met, better="lower",
           peer_name='sklearn PCA(svd_solver="randomized")',
           details={"rows": args.rows, "columns": args.columns,
                    "components": args.components, "mini_batch_size": args.mini_batch_size,
                    "rounds": args.rounds, "seconds": {"ours": our_times, "peer": peer_times},
                    "max_relative_explained_variance_difference": difference,
                    "load": note})
    print("(appended to benchmarks/results/results.jsonl)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
