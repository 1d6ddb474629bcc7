"""The scoring job: every account gets a calibrated score, a tier and the reasons behind it.

Input accounts = scored rows + rejected rows: a row that cannot be scored goes to a rejection
file beside the output with its reason. Rows are scored in chunks so memory follows the chunk,
and the output appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from healthscore.io import atomic_path
from healthscore.model.estimator import HealthModel
from healthscore.scoring.reasons import explain

DEFAULT_CHUNK = 50_000
REJECTION_COLUMNS = ["row", "account_id", "column", "value", "reason"]
ATTRIBUTES = ("account_name", "csm_owner")


@dataclass(frozen=True)
class ModelRef:
    """Which model scored: recorded beside every score so a model change is never mistaken for a
    change of behaviour."""

    name: str
    version: str
    run_id: str


def load_model(ref: str) -> tuple[HealthModel, ModelRef]:
    """A registered model (`models:/name@alias`, `models:/name/3`) or an export under models/."""
    if ref.startswith("models:/"):
        import mlflow

        from healthscore.pyfunc_model import ARTIFACT
        from healthscore.registry import connect

        client = connect()
        name, _, rest = ref.removeprefix("models:/").partition("@")
        if rest:
            version = client.get_model_version_by_alias(name, rest)
        else:
            name, _, number = ref.removeprefix("models:/").partition("/")
            version = client.get_model_version(name, number)
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
        return HealthModel.load(local / "artifacts" / ARTIFACT), ModelRef(name, str(version.version), version.run_id)
    folder = Path(ref)
    if (folder / "champion.json").exists():  # models/<name>: follow the champion pointer
        folder = folder / json.loads((folder / "champion.json").read_text())["path"]
    registration = json.loads((folder / "registration.json").read_text()) if (folder / "registration.json").exists() else {}
    model = HealthModel.load(folder)
    return model, ModelRef(registration.get("name", folder.parent.name), str(registration.get("version", "local")),
                           registration.get("run_id", ""))


def rejections(model: HealthModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that cannot be scored and why. Missing metric values are legal (LightGBM handles them)."""
    found = []
    ids = frame["account_id"] if "account_id" in frame else pd.Series(pd.NA, index=frame.index)
    missing_id = ids.isna() | (ids.astype("string").str.strip() == "")
    found.append(pd.DataFrame({"row": frame.index[missing_id], "column": "account_id", "value": None, "reason": "missing account id"}))
    dupes = ids.duplicated(keep=False) & ~missing_id
    found.append(pd.DataFrame({"row": frame.index[dupes], "column": "account_id", "value": ids[dupes].astype(str),
                               "reason": "duplicate account id"}))
    for f in model.features:
        if f.code not in frame:
            raise ValueError(f"input has no column {f.code!r} that the model needs")
        if f.kind == "numeric":
            raw = frame[f.code]
            numeric = pd.to_numeric(raw, errors="coerce")
            bad = (raw.notna() & numeric.isna()) | np.isinf(numeric.fillna(0).astype(float))
            found.append(pd.DataFrame({"row": frame.index[bad], "column": f.code, "value": raw[bad].astype(str),
                                       "reason": "not a finite number"}))
    out = pd.concat([f for f in found if len(f)], ignore_index=True) if any(len(f) for f in found) else pd.DataFrame(columns=REJECTION_COLUMNS)
    out = out.drop_duplicates("row", keep="first")
    out["account_id"] = ids.loc[out["row"]].to_numpy() if len(out) else []
    return out[REJECTION_COLUMNS].sort_values("row", kind="stable").reset_index(drop=True)


def score_rows(model: HealthModel, ref: ModelRef, rows: pd.DataFrame, as_of: dt.date | None, scored_at: str) -> pd.DataFrame:
    """The output contract for one chunk (see README, 'Scores')."""
    reasons = explain(model, rows)
    scores = model.score(rows, log_odds=reasons.pop("log_odds").to_numpy())
    out = pd.DataFrame({"account_id": rows["account_id"].astype(str).to_numpy()}, index=rows.index)
    out["as_of"] = as_of if as_of is not None else (rows["as_of"] if "as_of" in rows else None)
    for attribute in ATTRIBUTES:  # who the account is and who owns it, for reports and CRM imports
        out[attribute] = rows[attribute].astype("string") if attribute in rows else pd.NA
    out = pd.concat([out, scores[["churn_probability", "health_score", "health_percentile", "tier", "tier_color"]], reasons], axis=1)
    out["model_name"], out["model_version"], out["model_run_id"], out["scored_at"] = ref.name, ref.version, ref.run_id, scored_at
    return out


@dataclass
class ScoreRun:
    output: Path
    rejected_path: Path | None
    metadata: dict
    rejected: pd.DataFrame = field(repr=False)


class TooManyRejected(RuntimeError):
    """More rows than allowed could not be scored: the input is probably broken."""


def rejected_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".rejected" + output.suffix)


def metadata_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".meta.json")


class _ChunkWriter:
    """Appends chunks to a temporary Parquet or CSV file that replaces `path` only on success."""

    def __init__(self, path: Path):
        self.path, self.csv = path, path.suffix.lower() == ".csv"
        self._context = atomic_path(path)
        self.tmp = self._context.__enter__()
        self._parquet: pq.ParquetWriter | None = None
        self._first = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.csv:
            frame.to_csv(self.tmp, index=False, mode="w" if self._first else "a", header=self._first)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._first = False

    def close(self, ok: bool) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._context.__exit__(None if ok else RuntimeError, None, None)


def read_scores(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_csv(path, usecols=columns) if path.suffix.lower() == ".csv" else pd.read_parquet(path, columns=columns)


def _write(frame: pd.DataFrame, path: Path) -> None:
    writer = _ChunkWriter(path)
    try:
        writer.write(frame)
    except BaseException:
        writer.close(ok=False)
        raise
    writer.close(ok=True)


def score_frame(
    model: HealthModel,
    ref: ModelRef,
    frame: pd.DataFrame,
    output: Path,
    as_of: dt.date | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    max_rejected_share: float = 0.01,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreRun:
    """Score every row of `frame` (metrics as built for training) into `output` (.parquet/.csv)."""
    started = time.perf_counter()
    scored_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    frame = frame.reset_index(drop=True)
    frame.index = frame.index + 1  # rejection rows are 1-based input rows
    rejected = rejections(model, frame)
    good = frame.drop(index=rejected["row"])
    total, tiers = len(good), dict.fromkeys(("healthy", "at_risk", "unhealthy"), 0)
    writer = _ChunkWriter(output)
    try:
        for start in range(0, max(total, 1), chunk_size):
            chunk = score_rows(model, ref, good.iloc[start:start + chunk_size], as_of, scored_at)
            writer.write(chunk)
            for tier, n in chunk["tier"].value_counts().items():
                tiers[tier] += int(n)
            if progress:
                progress(min(start + chunk_size, total), total)
    except BaseException:
        writer.close(ok=False)
        raise
    writer.close(ok=True)
    reject_file = rejected_path_for(output)
    if len(rejected):
        _write(rejected, reject_file)
    elif reject_file.exists():
        reject_file.unlink()
    metadata = {
        "model": ref.__dict__, "as_of": str(as_of) if as_of else None, "scored_at": scored_at,
        "input_rows": len(frame), "scored_rows": total, "rejected_rows": len(rejected), "tiers": tiers,
        "seconds": round(time.perf_counter() - started, 2), "output": str(output),
    }
    with atomic_path(metadata_path_for(output)) as tmp:
        tmp.write_text(json.dumps(metadata, indent=1, default=str))
    run = ScoreRun(output, reject_file if len(rejected) else None, metadata, rejected)
    if len(frame) and len(rejected) / len(frame) > max_rejected_share:
        raise TooManyRejected(
            f"{len(rejected)} of {len(frame)} rows ({len(rejected) / len(frame):.1%}) could not be scored, more than the "
            f"allowed {max_rejected_share:.1%}; see {reject_file}"
        )
    return run
