"""Tier stability on the demo base: how often accounts change tier from one monthly run to the
next, with each stability margin, against the generator's true probabilities read with the same
cut-offs; and the share of churners the unhealthy tier still catches.

    python benchmarks/bench_tier_stability.py [--accounts 2000] [--seed 7] [--margins 0 1 2 3 4 5 6]

Every as_of after the training slice is scored in date order, as a monthly job would, each run
seeing the tiers the previous run recorded. Figures go to stdout (docs/BENCHMARKS.md keeps them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from healthscore import build_dataset, load_config
from healthscore.demo import generate_demo
from healthscore.model.training import train


def monthly_tiers(model, frame: pd.DataFrame, dates: list, margin: float) -> pd.DataFrame:
    """Each account's tier at each date, every run seeing the tiers of the run before it."""
    policy = model.tier_policy
    model.tier_policy = policy.model_copy(update={"stability_margin": margin})
    try:
        previous: dict[str, str] = {}
        out = []
        for day in dates:
            rows = frame[frame["as_of"] == day]
            prior = rows["account_id"].map(previous)
            scores = model.score(rows, prior if margin > 0 else None)
            out.append(pd.DataFrame({"account_id": rows["account_id"], "as_of": day, "tier": scores["tier"], "churned": rows["churned"]}))
            previous = dict(zip(rows["account_id"], scores["tier"]))
        return pd.concat(out, ignore_index=True)
    finally:
        model.tier_policy = policy


def flip_rate(tiers: pd.DataFrame) -> float:
    """Share of accounts present in two consecutive runs whose tier changed between them."""
    wide = tiers.pivot(index="account_id", columns="as_of", values="tier")
    dates = list(wide.columns)
    both = [wide[[a, b]].dropna() for a, b in zip(dates, dates[1:])]
    return float(sum((p.iloc[:, 0] != p.iloc[:, 1]).sum() for p in both) / sum(len(p) for p in both))


def caught(tiers: pd.DataFrame) -> float:
    """Share of the labelled churners that sat in the unhealthy tier."""
    churners = tiers[tiers["churned"].fillna(False).astype(bool)]
    return float((churners["tier"] == "unhealthy").mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--margins", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "demo"
        generate_demo(folder, accounts=args.accounts, seed=args.seed)
        config = load_config(folder / "healthscore.yaml")
        dataset = build_dataset(config)
        result = train(dataset, config.model)
        truth = pd.read_parquet(folder / "ground_truth" / "churn_probability.parquet")
    truth["as_of"] = pd.to_datetime(truth["as_of"]).dt.date
    model, frame = result.model, dataset.frame
    trained_until = max(result.split.dates["train"])
    dates = sorted(d for d in frame["as_of"].unique() if d > trained_until)
    true_tiers = frame[frame["as_of"].isin(dates)][["account_id", "as_of", "churned"]].merge(truth, on=["account_id", "as_of"])
    true_tiers["tier"] = model.tiers_.assign(true_tiers["p_churn_90d"].to_numpy())

    print(f"demo: {args.accounts} accounts, seed {args.seed}; {len(dates)} monthly runs after training ({dates[0]} to {dates[-1]}); "
          f"cut-offs: unhealthy below {model.tiers_.scale.unhealthy_below:g}, healthy from {model.tiers_.scale.healthy_from:g}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    plain = monthly_tiers(model, frame, dates, 0)
    print(f"{'rule':<24}{'tier flip rate':>16}{'churners caught (unhealthy)':>30}")
    print(f"{'truth, same cut-offs':<24}{flip_rate(true_tiers):>16.1%}{caught(true_tiers):>30.1%}")
    for margin in args.margins:
        tiers = plain if margin == 0 else monthly_tiers(model, frame, dates, margin)
        print(f"{f'margin {margin:g} points':<24}{flip_rate(tiers):>16.1%}{caught(tiers):>30.1%}")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
