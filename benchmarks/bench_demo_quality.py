"""The model against the demo's ground truth over several seeds and base sizes.

For each (accounts, seed): generate the demo base (24 months), build the dataset from its raw
tables, train with the demo config, and compare with the oracle (the generator's true
probabilities) on the test slice. PASS/FAIL per run:

  AUC   model ROC-AUC >= oracle ROC-AUC - 0.02
  ECE   model ECE <= 0.015
  0/1   no probability of the shipped model, on every row of the dataset, is exactly 0 or 1

    python benchmarks/bench_demo_quality.py [--accounts 2000 5000] [--seeds 1 2 3 4 5] [--out data/bench_demo_quality]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

AUC_GAP, MAX_ECE = 0.02, 0.015


def run(accounts: int, seed: int) -> dict:
    from healthscore import build_dataset, load_config
    from healthscore.demo import ORACLE, generate_demo, truth_contender
    from healthscore.model.training import MODEL, train

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate_demo(folder, accounts=accounts, months=24, seed=seed)
        config = load_config(folder / "healthscore.yaml")
        dataset = build_dataset(config)
        start = time.perf_counter()
        result = train(dataset, config.model, [truth_contender(folder)])
        seconds = time.perf_counter() - start
    table = result.comparison
    p = result.model.predict_proba(dataset.frame)[:, 1]
    chosen = result.selection.index[result.selection["chosen"]][0]
    return {"accounts": accounts, "seed": seed, "train_seconds": round(seconds, 1), "chosen": chosen,
            "calibration": result.model.calibrator_.method, "test_rows": int(table.loc[MODEL, "rows"]),
            "model_auc": float(table.loc[MODEL, "roc_auc"]), "oracle_auc": float(table.loc[ORACLE, "roc_auc"]),
            "gap": float(table.loc[ORACLE, "roc_auc"] - table.loc[MODEL, "roc_auc"]),
            "model_ece": float(table.loc[MODEL, "ece"]), "oracle_ece": float(table.loc[ORACLE, "ece"]),
            "model_brier": float(table.loc[MODEL, "brier"]), "citl_z": result.calibration_check["z"],
            "exact_0_or_1": int(((p == 0) | (p == 1)).sum()), "scored_rows": len(p),
            "backtest_auc": [round(float(v), 4) for v in result.backtest.figures.get("roc_auc", [])]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--out", type=Path, default=Path("data/bench_demo_quality"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for accounts in args.accounts:
        for seed in args.seeds:
            row = run(accounts, seed)
            row["pass"] = {"auc": row["gap"] <= AUC_GAP, "ece": row["model_ece"] <= MAX_ECE, "no_0_1": row["exact_0_or_1"] == 0}
            rows.append(row)
            print(f"{accounts} accounts seed {seed}: AUC {row['model_auc']:.4f} vs oracle {row['oracle_auc']:.4f} "
                  f"(gap {row['gap']:+.4f}) ECE {row['model_ece']:.4f} 0/1 {row['exact_0_or_1']} "
                  f"[{row['chosen']}, {row['calibration']}, train {row['train_seconds']} s] "
                  + " ".join(f"{k}:{'PASS' if v else 'FAIL'}" for k, v in row["pass"].items()), flush=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    (args.out / "results.json").write_text(json.dumps({"machine": machine, "runs": rows}, indent=1, default=str))
    gaps = np.array([r["gap"] for r in rows])
    print(f"worst gap {gaps.max():+.4f}; worst ECE {max(r['model_ece'] for r in rows):.4f}; load {machine['load_average']}")


if __name__ == "__main__":
    main()
