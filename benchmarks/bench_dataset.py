"""Benchmark: generate a demo customer base and build the dataset over 24 monthly as_of dates.

Each step runs in its own child process so that its wall time and peak memory (RSS) are its own.
Baseline, in the same run: a plain DuckDB scan of the events table (count and sum per account),
the least any metric computation must do; the build is reported as a multiple of it.

    python benchmarks/bench_dataset.py --accounts 50000 --months 24   # the scale target
    python benchmarks/bench_dataset.py                                 # the default demo
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

GENERATE = """
import datetime as dt, sys
from healthscore.demo import generate_demo
generate_demo(sys.argv[1], accounts=int(sys.argv[2]), months=int(sys.argv[3]), start=dt.date(2024, 1, 1), seed=7)
"""
BUILD = """
import sys, yaml
from pathlib import Path
from healthscore import build_dataset, load_config
folder = Path(sys.argv[1])
raw = yaml.safe_load((folder / "healthscore.yaml").read_text())
raw["schedule"]["start"] = sys.argv[2]  # 24 monthly as_of dates, up to the data end
(folder / "bench.yaml").write_text(yaml.safe_dump(raw))
dataset = build_dataset(load_config(folder / "bench.yaml"))
dataset.write(folder / "dataset.parquet")
print(len(dataset.frame), dataset.frame["as_of"].nunique(), dataset.timings)
"""
BASELINE = """
import sys, duckdb
print(duckdb.sql(f"SELECT count(*) FROM (SELECT account_id, count(*), sum(quantity) FROM read_parquet('{sys.argv[1]}/events.parquet') GROUP BY account_id)").fetchall())
"""


def run(code: str, *args: str) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GiB, and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"step failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    folder = args.out / f"{args.accounts}x{args.months}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}")

    gen_s, gen_gib, _ = run(GENERATE, folder, args.accounts, args.months)
    import pyarrow.parquet as pq

    events = pq.ParquetFile(folder / "events.parquet").metadata.num_rows
    first_as_of = "2024-02-01"  # with --start 2024-01-01: month starts up to the data end
    build_s, build_gib, build_out = run(BUILD, folder, first_as_of)
    base_s, base_gib, _ = run(BASELINE, folder)
    size_gib = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**30

    print(f"\n{args.accounts:,} accounts x {args.months} months: {events:,} event rows ({size_gib:.2f} GiB of Parquet)")
    print(f"dataset: rows, as_of dates, timings = {build_out}")
    print(f"{'step':<28}{'wall s':>9}{'peak GiB':>10}")
    for name, secs, gib in (("generate", gen_s, gen_gib), ("build-dataset", build_s, build_gib), ("baseline: scan events", base_s, base_gib)):
        print(f"{name:<28}{secs:>9.1f}{gib:>10.2f}")
    print(f"build-dataset / baseline scan: {build_s / base_s:.1f}x   event rows per second built: {events / build_s:,.0f}")


if __name__ == "__main__":
    main()
