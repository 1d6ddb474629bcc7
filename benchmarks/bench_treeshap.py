"""Benchmark: exact TreeSHAP (healthscore.model.treeshap) against LightGBM and shap.

For each model shape (trees x leaves) it trains a binary LightGBM model on synthetic data of
46 features (numeric with NaNs and exact zeros, and pandas categoricals), then, in this one
process and on the same rows (a DataFrame as the project passes it), measures:

* plain ``booster.predict(X, raw_score=True)``,
* ``booster.predict(X, pred_contrib=True)`` (LightGBM's own TreeSHAP),
* ``shap.TreeExplainer(booster).shap_values(X)`` (for LightGBM it calls ``pred_contrib``);
  these two on the first ``--contrib-rows``/``--shap-rows`` rows, their rates scaled,
* ``TreeExplainer(booster).contributions(X)`` (the new kernel, warm),

and prints rows per CPU-second (``time.process_time``, all threads) and wall time, the ratios,
the max abs difference against ``pred_contrib``, the table memory, the load average, and the
first-call cost in a fresh process (import, build, first call; numba's cache warm or cold).

    python benchmarks/bench_treeshap.py [--rows 200000] [--shapes 300x15 400x31]
                                        [--contrib-rows 20000] [--shap-rows 5000] [--no-cold]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd

N_NUMERIC, N_CATEGORICAL = 40, 6
TARGETS = {"300x15": (20.0, 3.0), "400x31": (15.0, None)}

FIRST_CALL = """
import sys, time
t0 = time.perf_counter()
import lightgbm as lgb, numpy as np
from healthscore.model.treeshap import TreeExplainer
t1 = time.perf_counter()
booster = lgb.Booster(model_file=sys.argv[1])
X = np.load(sys.argv[2])
t2 = time.perf_counter()
explainer = TreeExplainer(booster)
t3 = time.perf_counter()
explainer.contributions(X)
t4 = time.perf_counter()
print(f"{t1 - t0:.3f} {t3 - t2:.3f} {t4 - t3:.3f}")
"""


def make_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(N_NUMERIC):
        x = rng.normal(size=n) * (1 + i % 5)
        if i % 4 == 0:
            x[rng.random(n) < 0.15] = np.nan
        if i % 6 == 1:
            x[rng.random(n) < 0.25] = 0.0
        if i % 7 == 2:
            x = np.round(np.abs(x) * 3)  # counts
        cols[f"num_{i:02d}"] = x
    for j in range(N_CATEGORICAL):
        levels = [f"L{k}" for k in range(4 + 2 * j)]
        codes = rng.integers(-1, len(levels), size=n)  # -1: missing
        cols[f"cat_{j}"] = pd.Categorical.from_codes(codes, categories=levels)
    return pd.DataFrame(cols)


def make_label(X: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    num = X[[c for c in X if c.startswith("num_")]].fillna(0.0).to_numpy()
    score = num[:, 0] - 0.5 * num[:, 1] + np.sin(num[:, 2]) + 0.3 * num[:, 3] * num[:, 4] - 0.2 * np.abs(num[:, 5])
    score += 0.4 * (X["cat_0"].cat.codes.to_numpy() % 2) - 0.3 * (X["cat_3"].cat.codes.to_numpy() == 2)
    score += rng.normal(scale=1.0, size=len(X))
    return (score > 0).astype(float)


def train(trees: int, leaves: int, train_rows: int) -> lgb.Booster:
    X = make_frame(train_rows, seed=1)
    y = make_label(X, seed=2)
    params = {
        "objective": "binary",
        "num_leaves": leaves,
        "learning_rate": 0.03,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 5.0,
        "seed": 7,
        "deterministic": True,
        "verbosity": -1,
    }
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=trees)


class Meter:
    """CPU seconds (all threads), wall seconds and the 1-minute load average over one call."""

    def __init__(self):
        self.loads = []

    def __call__(self, fn, *args, **kwargs):
        self.loads.append(os.getloadavg()[0])
        c, w = time.process_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        cpu, wall = time.process_time() - c, time.perf_counter() - w
        self.loads.append(os.getloadavg()[0])
        return out, cpu, wall


def first_call(booster: lgb.Booster, X: np.ndarray, cold: bool) -> str:
    """Import, build and first ``contributions`` call in a fresh process: with numba's cache as
    this process left it (warm), or with an empty cache directory (cold: everything compiles)."""
    with tempfile.TemporaryDirectory() as tmp:
        model, rows = Path(tmp) / "model.txt", Path(tmp) / "rows.npy"
        booster.save_model(str(model))
        np.save(rows, X[:1000])
        env = dict(os.environ)
        if cold:
            env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba-cache")
        out = subprocess.run([sys.executable, "-c", FIRST_CALL, str(model), str(rows)], capture_output=True, text=True, check=True, env=env)
    imp, build, call = map(float, out.stdout.split())
    return f"import {imp:.2f}s, TreeExplainer(booster) {build:.2f}s, first contributions (1,000 rows) {call:.2f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows to explain (default 200,000)")
    parser.add_argument("--shapes", nargs="+", default=["300x15", "400x31"], help="TREESxLEAVES (default 300x15 400x31)")
    parser.add_argument("--train-rows", type=int, default=30_000)
    parser.add_argument("--contrib-rows", type=int, default=20_000, help="first rows given to pred_contrib (rate scaled)")
    parser.add_argument("--shap-rows", type=int, default=5_000, help="first rows given to shap.TreeExplainer (rate scaled)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache first call (it compiles, ~10 s)")
    args = parser.parse_args()

    import shap

    from healthscore.model.treeshap import TreeExplainer

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"lightgbm {lgb.__version__}, shap {shap.__version__}, numba threads {numba.get_num_threads()}"
    )
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    X = make_frame(args.rows, seed=3)
    print(f"rows: {len(X):,} x {X.shape[1]} features ({N_CATEGORICAL} pandas categoricals), as a DataFrame")
    for shape in args.shapes:
        trees, leaves = map(int, shape.split("x"))
        booster = train(trees, leaves, args.train_rows)
        meter = Meter()
        print(f"\n== {booster.num_trees()} trees x {leaves} leaves ==")
        explainer, build_cpu, build_wall = meter(TreeExplainer, booster)
        explainer.contributions(X.iloc[:256])  # compiled, or loaded from numba's cache
        matrix = explainer.ensemble.matrix(X.iloc[:1000])
        print("first call, fresh process, warm cache:", first_call(booster, matrix, cold=False))
        if not args.no_cold:
            print("first call, fresh process, cold cache:", first_call(booster, matrix, cold=True))

        _, plain_cpu, plain_wall = meter(booster.predict, X, raw_score=True)
        ours, ours_cpu, ours_wall = meter(explainer.contributions, X)
        nc = min(args.contrib_rows or len(X), len(X))
        native, native_cpu, native_wall = meter(booster.predict, X.iloc[:nc], pred_contrib=True)
        ns = min(args.shap_rows or len(X), len(X))
        shap_explainer = shap.TreeExplainer(booster)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, shap_cpu, shap_wall = meter(shap_explainer.shap_values, X.iloc[:ns])
        diff = float(np.max(np.abs(ours[:nc] - native)))

        rows = {
            "predict(raw_score)": (len(X), plain_cpu, plain_wall),
            "pred_contrib": (nc, native_cpu, native_wall),
            "shap.TreeExplainer": (ns, shap_cpu, shap_wall),
            "new TreeExplainer": (len(X), ours_cpu, ours_wall),
        }
        print(f"{'method':<20} {'rows':>9} {'CPU s':>8} {'wall s':>8} {'rows/CPU-s':>12} {'rows/wall-s':>12}")
        for name, (n, cpu, wall) in rows.items():
            print(f"{name:<20} {n:>9,} {cpu:>8.2f} {wall:>8.2f} {n / cpu:>12,.0f} {n / wall:>12,.0f}")
        rate = {name: n / cpu for name, (n, cpu, _) in rows.items()}
        vs_shap = rate["new TreeExplainer"] / rate["shap.TreeExplainer"]
        vs_contrib = rate["new TreeExplainer"] / rate["pred_contrib"]
        vs_plain = rate["predict(raw_score)"] / rate["new TreeExplainer"]
        print(
            f"new kernel: {vs_shap:.1f}x shap.TreeExplainer, {vs_contrib:.1f}x pred_contrib (rows per CPU-second); "
            f"CPU time {vs_plain:.2f}x that of plain predict"
        )
        target_shap, target_plain = TARGETS.get(f"{trees}x{leaves}", (None, None))
        if target_shap:
            print(f"  target >= {target_shap:.0f}x shap.TreeExplainer: {'met' if vs_shap >= target_shap else 'NOT met'}")
        if target_plain:
            print(f"  target CPU time within {target_plain:.0f}x of plain predict: {'met' if vs_plain <= target_plain else 'NOT met'}")
        print(f"max |new - pred_contrib| over {nc:,} rows: {diff:.2e}")
        print(
            f"tables: {explainer.table_bytes / 2**20:.1f} MiB in {explainer.n_groups:,} tables covering "
            f"{explainer.table_leaves:,} leaves ({explainer.direct_leaves:,} computed per row); "
            f"TreeExplainer(booster) {build_wall:.2f}s wall"
        )
        print(f"load average (1 min) during the runs: {min(meter.loads):.2f} - {max(meter.loads):.2f}")


if __name__ == "__main__":
    main()
