"""Benchmark: batch scoring with reason codes for 100,000 and 1,000,000 accounts.

Prepares a model (trained on the default demo base) and a feature table of N accounts (a dataset
file of demo rows drawn with replacement under new ids). Then, per size, in child processes so
that peak memory is each one's own: the scoring job reading that file in chunks (scores, tiers,
reasons, contributions JSON, drift, Parquet output), and, on the same rows loaded whole, the
model's plain predict and shap.TreeExplainer, reported as ratios to the job.

    python benchmarks/bench_scoring.py [--sizes 100000 1000000] [--out data/bench/scoring]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PREPARE = """
import datetime as dt, sys
import numpy as np
from pathlib import Path
from healthscore import build_dataset, load_config
from healthscore.dataset import Dataset
from healthscore.demo import generate_demo
from healthscore.model.training import train
folder = Path(sys.argv[1])
generate_demo(folder / "demo", accounts=2000, months=24, start=dt.date(2024, 1, 1), seed=7)
config = load_config(folder / "demo" / "healthscore.yaml")
dataset = build_dataset(config)
train(dataset, config.model).model.save(folder / "model")
rng = np.random.default_rng(0)
for n in map(int, sys.argv[2:]):
    rows = dataset.frame.iloc[rng.integers(0, len(dataset.frame), n)].reset_index(drop=True)
    rows["account_id"] = [f"B{i:08d}" for i in range(n)]
    Dataset(rows, dataset.spec).write(folder / f"features_{n}.parquet")
"""
JOB = """
import datetime as dt, sys, time
from pathlib import Path
from healthscore.model.estimator import HealthModel
from healthscore.scores_file import ModelRef
from healthscore.scoring.batch import score_input
from healthscore.scoring.inputs import open_table
folder, n = Path(sys.argv[1]), int(sys.argv[2])
model = HealthModel.load(folder / "model")
t = time.perf_counter()
score_input(model, ModelRef("bench", "1", ""), open_table(folder / f"features_{n}.parquet", None, model.features),
            folder / f"scores_{n}.parquet", dt.date(2026, 1, 1))
print(f"{time.perf_counter() - t:.2f}")
"""
BASELINES = """
import sys, time
import pandas as pd, shap
from pathlib import Path
from healthscore.model.estimator import HealthModel
folder, n = Path(sys.argv[1]), int(sys.argv[2])
model = HealthModel.load(folder / "model")
frame = pd.read_parquet(folder / f"features_{n}.parquet")
t = time.perf_counter(); model.predict_proba(frame); plain = time.perf_counter() - t
t = time.perf_counter(); contrib = model.booster_.predict(model.matrix(frame), pred_contrib=True); native = time.perf_counter() - t
t = time.perf_counter(); shap.TreeExplainer(model.booster_).shap_values(model.matrix(frame)); explainer = time.perf_counter() - t
print(f"{plain:.2f} {native:.2f} {explainer:.2f}")
"""


def child(code: str, *args) -> tuple[float, float, str]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"child failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=Path("data/bench/scoring"))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    prep_s, _, _ = child(PREPARE, args.out, *args.sizes)
    print(f"prepared model and feature tables in {prep_s:.0f}s")
    print(f"{'accounts':>10} {'job s':>8} {'acc/s':>9} {'job peak GiB':>13} {'predict s':>10} {'TreeSHAP(lgb) s':>16} "
          f"{'shap.TreeExplainer s':>21} {'baselines peak GiB':>19} {'job/predict':>12} {'job/explainer':>14}")
    for n in args.sizes:
        _, job_gib, out = child(JOB, args.out, n)
        job = float(out)
        _, base_gib, out = child(BASELINES, args.out, n)
        plain, native, explainer = map(float, out.split())
        print(f"{n:>10,} {job:>8.1f} {n / job:>9,.0f} {job_gib:>13.2f} {plain:>10.1f} {native:>16.1f} {explainer:>21.1f} "
              f"{base_gib:>19.2f} {job / plain:>12.1f} {job / explainer:>14.2f}")


if __name__ == "__main__":
    main()
