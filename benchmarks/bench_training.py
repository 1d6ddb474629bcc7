"""Benchmark: `train` on the dataset written by bench_dataset.py (50,000 accounts x 24 as_of).

Runs in a child process so its peak memory (RSS) is its own. Baseline, in the same process: a
plain LightGBM fit on the same training slice for the same number of rounds, with no early
stopping, calibration, baselines or SHAP weights; `train` is reported as a multiple of it.

    python benchmarks/bench_dataset.py --accounts 50000 --months 24   # first, writes the dataset
    python benchmarks/bench_training.py [--dataset data/bench/50000x24/dataset.parquet]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys, time
import lightgbm as lgb
from pathlib import Path
from healthscore import read_dataset
from healthscore.model.training import train

path = Path(sys.argv[1])
t = time.perf_counter()
dataset = read_dataset(path)
read_s = time.perf_counter() - t
t = time.perf_counter()
result = train(dataset, truth=path.parent / "ground_truth" / "churn_probability.parquet")
train_s = time.perf_counter() - t
model = result.model
X = dataset.labelled.loc[result.split.train]
t = time.perf_counter()
lgb.train(model.params.lightgbm([0] * len(model.features)),
          lgb.Dataset(model.matrix(X), X[dataset.spec.label_column].astype(int)),
          num_boost_round=model.booster_.current_iteration())
plain_s = time.perf_counter() - t
c = result.comparison
print(f"rows {len(dataset.frame)} labelled {len(dataset.labelled)} train {len(result.split.train)} "
      f"valid {len(result.split.valid)} test {len(result.split.test)} rounds {model.booster_.current_iteration()}")
print(f"read {read_s:.1f}s train {train_s:.1f}s plain-lightgbm {plain_s:.1f}s ratio {train_s / plain_s:.1f}x")
print(c.loc[:, ["roc_auc", "brier", "ece"]].round(4).to_string())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/bench/50000x24/dataset.parquet"))
    args = parser.parse_args()
    if not args.dataset.exists():
        raise SystemExit(f"{args.dataset} not found: run benchmarks/bench_dataset.py --accounts 50000 first")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(args.dataset)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"training failed with status {status}")
    print(out.strip())
    print(f"wall {time.perf_counter() - start:.1f}s (incl. imports), peak RSS {usage.ru_maxrss / 2**20:.2f} GiB, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
