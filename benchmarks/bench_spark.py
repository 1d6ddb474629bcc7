"""Benchmark: scoring with reasons on Spark (`local[2]`) against the local job, in the same run.

Prepares a model (trained on a 2,000-account demo base) and a feature table of N accounts (demo
rows drawn with replacement under new ids), then scores it with the local job (`score_input`,
chunks in one process) and with `score_on_spark` (mapInPandas over the partitions), the same
model and file, and checks that both scored and rejected the same number of rows.

    python benchmarks/bench_spark.py [--accounts 1000000] [--master local[2]] [--out data/bench/spark]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np

from healthscore import build_dataset, load_config
from healthscore.build.spark import spark_session
from healthscore.dataset import Dataset
from healthscore.demo import generate_demo
from healthscore.model.training import train
from healthscore.scores_file import ModelRef
from healthscore.scoring.batch import score_input
from healthscore.scoring.inputs import open_table
from healthscore.scoring.spark import score_on_spark

AS_OF = dt.date(2026, 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=Path("data/bench/spark"))
    args = parser.parse_args()
    folder, n = args.out, args.accounts
    folder.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    generate_demo(folder / "demo", accounts=2000, months=24, start=dt.date(2024, 1, 1), seed=7)
    config = load_config(folder / "demo" / "healthscore.yaml")
    dataset = build_dataset(config)
    model = train(dataset, config.model).model
    rows = dataset.frame.iloc[np.random.default_rng(0).integers(0, len(dataset.frame), n)].reset_index(drop=True)
    rows["account_id"] = [f"B{i:08d}" for i in range(n)]
    features = Dataset(rows, dataset.spec).write(folder / f"features_{n}.parquet")
    ref = ModelRef("bench", "1", "")

    start = time.perf_counter()
    local = score_input(model, ref, open_table(features, None, model.features), folder / f"scores_{n}.parquet", AS_OF)
    local_seconds = time.perf_counter() - start

    start = time.perf_counter()
    spark = spark_session(args.master, {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "8"})
    startup = time.perf_counter() - start
    start = time.perf_counter()
    on_spark = score_on_spark(spark, model, ref, features, folder / f"scores_{n}_spark.parquet", AS_OF, 50_000, 0.01)
    spark_seconds = time.perf_counter() - start
    spark.stop()

    for key in ("input_rows", "scored_rows", "rejected_rows", "tiers"):
        assert local.metadata[key] == on_spark.metadata[key], key
    print(f"{n:,} accounts scored with reasons, load average now {os.getloadavg()[0]:.1f}")
    print(f"  local job:          {local_seconds:8.1f} s  {n / local_seconds:10,.0f} rows/s  {local.metadata['timings']}")
    print(f"  Spark {args.master}:   {spark_seconds:8.1f} s  {n / spark_seconds:10,.0f} rows/s  (+{startup:.1f} s session start; "
          f"{on_spark.metadata['partitions']} partitions; wall {on_spark.metadata['timings']}; "
          f"executors {on_spark.metadata['executor_seconds']})")


if __name__ == "__main__":
    main()
