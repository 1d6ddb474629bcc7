"""MLflow: training runs, their figures, and the registered `customer-health` model.

The default store lives in the project folder (tracking `sqlite:///mlruns/mlflow.db`, artifacts
under `mlruns/<experiment id>/`); `MLFLOW_TRACKING_URI` points it at a team's own server instead.
A newly trained model is registered with the alias `challenger`; `promote` moves `champion`
to it only if it is at least as good on the same, latest labelled data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

import healthscore
from healthscore import pyfunc_model
from healthscore.dataset import Dataset
from healthscore.io import atomic_path
from healthscore.model.evaluation import comparison_table, evaluate
from healthscore.model.training import MODEL, TrainingResult
from healthscore.scoring.batch import ModelRef, load_model, score_rows, scored_now

EXPERIMENT = "healthscore"
CHALLENGER, CHAMPION = "challenger", "champion"
EXPORT_ROOT = Path("models")
PINNED = ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pydantic", "pyyaml", "duckdb", "pyarrow")


def tracking_uri() -> str:
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    store = Path("mlruns").resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def connect() -> MlflowClient:
    """Point MLflow at the store and make sure the experiment exists; returns a client."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    return MlflowClient(uri, uri)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    export_path: Path

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _flatten(prefix: str, value) -> dict[str, object]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flatten(f"{prefix}.{key}" if prefix else key, sub).items()}
    return {prefix: value}


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in PINNED]


def log_training(result: TrainingResult, dataset: Dataset, artefacts: Path, name: str | None = None) -> RegisteredModel:
    """Log params, metrics, artefacts and the pyfunc model; register it as the challenger."""
    name = name or result.config.registered_name
    client = connect()
    spec, summary = dataset.spec, result.split_summary
    with mlflow.start_run(run_name=f"train {name}") as run:
        mlflow.log_params(_flatten("", result.config.model_dump(exclude={"tiers": {"labels", "colors"}})))
        mlflow.log_params({
            "dataset.digest": result.dataset_digest, "dataset.origin": spec.origin, "dataset.features": len(spec.features),
            "dataset.horizon_days": spec.horizon_days, "model.best_iteration": result.model.booster_.best_iteration,
            "model.calibration": result.model.calibrator_.method,
            **{f"split.{s}.{k}": summary.loc[s, k] for s in summary.index for k in ("rows", "first_as_of", "last_as_of")},
        })
        mlflow.log_metrics({f"split.{s}.churn_rate": float(summary.loc[s, "churn_rate"]) for s in summary.index})
        for contender, row in result.comparison.iterrows():
            mlflow.log_metrics({f"{contender}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
        mlflow.log_artifacts(str(artefacts), artifact_path="report")

        example = result.test[[spec.id_column] + spec.feature_codes].head(5).reset_index(drop=True)
        # Metrics as doubles: a count may be missing at scoring time, which an integer schema rejects.
        numeric = [c for c in spec.feature_codes if c not in spec.categorical]
        example = example.astype({c: object for c in spec.categorical + [spec.id_column]} | {c: float for c in numeric})
        with tempfile.TemporaryDirectory() as tmp:
            model_row = result.comparison.loc[MODEL]
            saved = result.model.save(Path(tmp) / "health_model", extra={
                "model_name": name, "run_id": run.info.run_id,
                "trained_on": {s: [str(summary.loc[s, "first_as_of"]), str(summary.loc[s, "last_as_of"])] for s in summary.index},
                "test_metrics": {k: float(model_row[k]) for k in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")},
            })
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=pyfunc_model.__file__,
                artifacts={pyfunc_model.ARTIFACT: str(saved)},
                code_paths=[str(Path(healthscore.__file__).parent)],
                signature=infer_signature(example, score_rows(result.model, ModelRef(name, "", run.info.run_id), example, None, scored_now())),
                input_example=example,
                registered_model_name=name,
                pip_requirements=_requirements(),
            )
            version = str(info.registered_model_version)
            client.set_registered_model_alias(name, CHALLENGER, version)
            shutil.copytree(artefacts, saved / "report")
            export = _export(saved, name, version, run.info.run_id)
    return RegisteredModel(name, version, run.info.run_id, export)


def _export(saved: Path, name: str, version: str, run_id: str) -> Path:
    """A copy under models/<name>/v<version> for batch jobs without a tracking server."""
    target = EXPORT_ROOT / name / f"v{version}"
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}.", dir=_mkdir(EXPORT_ROOT / name)))
    shutil.copytree(saved, staging, dirs_exist_ok=True)
    (staging / "registration.json").write_text(json.dumps({"name": name, "version": version, "run_id": run_id}))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    _point_alias(name, CHALLENGER, version)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _point_alias(name: str, alias: str, version: str) -> None:
    with atomic_path(EXPORT_ROOT / name / f"{alias}.json") as tmp:
        tmp.write_text(json.dumps({"version": version, "path": f"v{version}"}))


@dataclass
class Promotion:
    comparison: pd.DataFrame  # challenger / champion x metrics on the same slice
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(dataset: Dataset, name: str = "customer-health", force: bool = False, latest_dates: int = 3) -> Promotion:
    """Compare challenger and champion on the latest labelled dates; move `champion` if not worse."""
    client = connect()
    challenger = _alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"model {name!r} has no '{CHALLENGER}' version: train one first")
    champion = _alias_version(client, name, CHAMPION)
    frame, spec = dataset.labelled, dataset.spec
    if spec.as_of_column:
        latest = sorted(frame[spec.as_of_column].unique())[-latest_dates:]
        frame = frame[frame[spec.as_of_column].isin(latest)]
    y = frame[spec.label_column].astype(int).to_numpy()
    results = {}
    for alias, version in ((CHALLENGER, challenger), (CHAMPION, champion)):
        if version is not None:
            model, _ = load_model(f"models:/{name}@{alias}")  # scores alone: no reason texts to compare on
            scores = model.score(frame)
            results[f"{alias} (v{version})"] = evaluate(y, scores["churn_probability"], scores["tier"])
    table = comparison_table(results)
    new, old = table.iloc[0], table.iloc[1] if champion else None
    if champion is None:
        promoted, reason = True, "no champion yet"
    elif champion == challenger:
        promoted, reason = False, "the challenger already is the champion"
    elif new["roc_auc"] >= old["roc_auc"] and new["brier"] <= old["brier"]:
        promoted, reason = True, "not worse on ROC-AUC and Brier"
    else:
        promoted, reason = force, "worse on ROC-AUC or Brier" + (", promoted anyway (--force)" if force else "")
    with mlflow.start_run(run_name=f"promote {name}"):
        mlflow.log_params({"challenger_version": challenger, "champion_version": champion, "promoted": promoted,
                           "reason": reason, "slice_rows": len(frame), "force": force})
        for label, row in table.iterrows():
            mlflow.log_metrics({f"{label.split(' ')[0]}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        _point_alias(name, CHAMPION, challenger)
    return Promotion(table, promoted, reason, challenger, champion)
