"""Random Cut Forest scoring throughput: records/s of the built-in ``randomcutforest``'s
scoring (flat-array trees, numpy, every tree at once), next to rrcf's (insert the point,
``codisp``, forget it, in each tree) on the same forest size: ``--trees`` trees of
``--samples`` records each, drawn from the same data (both forests use the same samples).

Each side scores in ``--rounds`` rounds, one after the other, and the median round is
reported; rrcf scores fewer records (``--peer-records``) because it is slow, which does not
change its records/s. Ours is timed twice: ``Forest.score`` on an array, and the endpoint
path (``Predictor.predict``, a CSV request answered as JSON). Target: ours ≥ 20× rrcf's
records/s. Appends the result to benchmarks/results/results.jsonl.

    python benchmarks/random_cut_forest.py [--trees 100] [--samples 256] [--features 10]
        [--records 10000] [--peer-records 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from pathlib import Path

import numpy as np
from common import format_table, load_note, median, ratio, record, run_main

TARGET_RATIO = 20.0


def rrcf_scores(trees, points: np.ndarray) -> np.ndarray:
    out = np.zeros(len(points))
    for tree in trees:
        for row, point in enumerate(points):
            tree.insert_point(point, index="q")
            out[row] += tree.codisp("q")
            tree.forget_point("q")
    return out / len(trees)


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--samples", type=int, default=256, help="records per tree")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--records", type=int, default=10000, help="records ours scores")
    parser.add_argument("--peer-records", type=int, default=60, help="records rrcf scores")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    note = load_note()
    if note:
        print(note)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rrcf

    from openmaker.algorithms.random_cut_forest import RandomCutForestPredictor, build_forest
    from openmaker.formats import write_csv

    rng = np.random.default_rng(0)
    data = np.round(rng.normal(size=(20000, args.features)), 4).astype(np.float32)
    samples = [data[rng.choice(len(data), args.samples, replace=False)]
               for _ in range(args.trees)]
    queries = np.round(rng.normal(scale=1.5, size=(args.records, args.features)),
                       4).astype(np.float32)
    forest = build_forest(samples)
    peer_trees = [rrcf.RCTree(sample.astype(np.float64), random_state=index)
                  for index, sample in enumerate(samples)]
    predictor = RandomCutForestPredictor(forest, environ={})
    buffer = io.BytesIO()
    write_csv(buffer, queries)
    body = buffer.getvalue()
    peer_points = queries[:args.peer_records].astype(np.float64)

    forest.score(queries[:100])  # warm-up
    ours, endpoint, peer = [], [], []
    for number in range(1, args.rounds + 1):
        seconds, _ = timed(lambda: forest.score(queries))
        ours.append(args.records / seconds)
        seconds, _ = timed(lambda: predictor.predict(body, "text/csv", "application/json"))
        endpoint.append(args.records / seconds)
        seconds, _ = timed(lambda: rrcf_scores(peer_trees, peer_points))
        peer.append(args.peer_records / seconds)
        print(f"round {number}: ours {ours[-1]:,.0f} records/s, endpoint path "
              f"{endpoint[-1]:,.0f}, rrcf {peer[-1]:,.1f}", flush=True)

    # both estimate the same mean codisp; rrcf's is one random insertion per tree
    correlation = float(np.corrcoef(forest.score(queries[:args.peer_records]),
                                    rrcf_scores(peer_trees, peer_points))[0, 1])
    ours_rate, endpoint_rate, peer_rate = median(ours), median(endpoint), median(peer)
    print(f"\nRandom Cut Forest scoring, {args.trees} trees x {args.samples} records, "
          f"{args.features} features (median of {args.rounds} rounds)")
    print(format_table(["scorer", "records/s", "x rrcf"], [
        ["openmaker Forest.score", ours_rate, ratio(ours_rate, peer_rate)],
        ["openmaker Predictor (CSV -> JSON)", endpoint_rate, ratio(endpoint_rate, peer_rate)],
        ["rrcf insert/codisp/forget", peer_rate, 1.0],
    ]))
    met = (ratio(ours_rate, peer_rate) or 0) >= TARGET_RATIO
    print(f"\nratio ours/rrcf {ratio(ours_rate, peer_rate):,.1f}x (target >= {TARGET_RATIO:.0f}x: "
          f"{'met' if met else 'NOT MET'}); score correlation with rrcf {correlation:.3f}")
    record("random_cut_forest.scoring", ours=ours_rate, peer=peer_rate, unit="records/s",
           target=f"ours/rrcf >= {TARGET_RATIO:.0f}x", met=met, better="higher",
           peer_name="rrcf 0.4 insert_point/codisp/forget_point",
           details={"trees": args.trees, "samples_per_tree": args.samples,
                    "features": args.features, "records": args.records,
                    "peer_records": args.peer_records, "rounds": args.rounds,
                    "endpoint_records_per_s": endpoint_rate,
                    "score_correlation_with_rrcf": correlation, "load_note": note})
    print(f"(appended to {Path('benchmarks/results/results.jsonl')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
