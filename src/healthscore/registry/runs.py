"""Training runs in MLflow: params, metrics, artefacts and the pyfunc model.

A model that passed the quality gate is registered under the config's name with the alias
`challenger` and exported (see `export`); one that failed it is logged as a rejected run, with
its figures and the reason, and never registered: no alias can point at it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from healthscore.dataset import Dataset
from healthscore.defaults import CHALLENGER
from healthscore.model.estimator import Provenance
from healthscore.model.reasons import scores_with_reasons
from healthscore.model.training import MODEL, TrainingResult
from healthscore.registry import pyfunc
from healthscore.registry.export import point_alias, write_export
from healthscore.registry.store import connect
from healthscore.scores_file import ModelRef, scored_now

PACKAGE = Path(__file__).resolve().parents[1]  # shipped with the model as its code
PINNED = ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pydantic", "pyyaml", "duckdb", "pyarrow")


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


def _log_run(result: TrainingResult, dataset: Dataset, artefacts: Path) -> None:
    """What every training run records, registered or not."""
    spec, summary = dataset.spec, result.split_summary
    mlflow.log_params(_flatten("", result.config.model_dump(exclude={"tiers": {"labels", "colors"}})))
    mlflow.log_params({
        "dataset.digest": result.dataset_digest, "dataset.origin": spec.origin, "dataset.features": len(spec.features),
        "dataset.horizon_days": spec.horizon_days, "model.best_iteration": result.model.best_iteration_,
        "model.calibration": result.model.calibrator_.method, "model.family": result.model.family,
        "model.contender": result.selection.index[result.selection["chosen"]][0],
        **{f"split.{s}.{k}": summary.loc[s, k] for s in summary.index for k in ("rows", "first_as_of", "last_as_of")},
    })
    mlflow.log_metrics({f"split.{s}.churn_rate": float(summary.loc[s, "churn_rate"]) for s in summary.index})
    for contender, row in result.comparison.iterrows():
        mlflow.log_metrics({f"{contender}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
    for contender, row in result.selection.iterrows():
        mlflow.log_metrics({f"contender.{contender}.{k}": float(row[k]) for k in ("oof_log_loss", "oof_roc_auc")})
    mlflow.log_metrics({f"calibration_in_the_large.{k}": v for k, v in result.calibration_check.items()}
                       | {f"gate.auc_vs_logistic.{k}": v for k, v in result.gate.items()})
    # one step per backtest date, in date order: MLflow draws each figure as a line over the dates
    figures = result.backtest.figures
    for step, row in enumerate(figures.to_dict("records")):
        mlflow.log_metrics({f"backtest.{k}": float(v) for k, v in row.items() if k != "as_of" and pd.notna(v)}, step=step)
    if len(figures):
        mlflow.log_param("backtest.dates", ",".join(str(d) for d in figures["as_of"]))
    mlflow.log_artifacts(str(artefacts), artifact_path="report")
    if dataset.coverage is not None:  # the metric QA of the data it learned from
        mlflow.log_text(dataset.coverage.to_csv(index=False), "report/coverage.csv")


def log_rejected(result: TrainingResult, dataset: Dataset, artefacts: Path, reason: str, name: str | None = None) -> str:
    """Log a model that failed the quality gate: its figures and why, no model, no registration.
    Returns the run id."""
    name = name or result.config.registered_name
    connect()
    with mlflow.start_run(run_name=f"train {name} (rejected)") as run:
        _log_run(result, dataset, artefacts)
        mlflow.set_tags({"healthscore.gate": "rejected", "healthscore.gate_reason": reason})
    return run.info.run_id


def log_training(result: TrainingResult, dataset: Dataset, artefacts: Path, name: str | None = None) -> RegisteredModel:
    """Log params, metrics, artefacts and the pyfunc model of a model that passed the quality
    gate; register it as the challenger and export it."""
    name = name or result.config.registered_name
    client = connect()
    spec, summary = dataset.spec, result.split_summary
    with mlflow.start_run(run_name=f"train {name}") as run:
        _log_run(result, dataset, artefacts)
        mlflow.set_tag("healthscore.gate", "passed")

        example = result.test[[spec.id_column] + spec.feature_codes].head(5).reset_index(drop=True)
        # Metrics as doubles: a count may be missing at scoring time, which an integer schema rejects.
        numeric = [c for c in spec.feature_codes if c not in spec.categorical]
        example = example.astype({c: object for c in spec.categorical + [spec.id_column]} | {c: float for c in numeric})
        with tempfile.TemporaryDirectory() as tmp:
            model_row = result.comparison.loc[MODEL]
            saved = result.model.save(Path(tmp) / "health_model", Provenance(
                model_name=name, run_id=run.info.run_id, horizon_days=spec.horizon_days,
                trained_on={s: [str(summary.loc[s, "first_as_of"]), str(summary.loc[s, "last_as_of"])] for s in summary.index},
                trained_until=None if pd.isna(summary.loc["shipped", "last_as_of"]) else str(summary.loc["shipped", "last_as_of"]),
                test_metrics={k: float(model_row[k]) for k in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift")},
                backtest=[{k: str(v) if k == "as_of" else None if pd.isna(v) else float(v) for k, v in row.items()}
                          for row in result.backtest.figures.to_dict("records")],
            ))
            output = scores_with_reasons(result.model, ModelRef(name, "", run.info.run_id), example, None, scored_now())
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=pyfunc.__file__,
                artifacts={pyfunc.ARTIFACT: str(saved)},
                code_paths=[str(PACKAGE)],
                signature=infer_signature(example, output),
                input_example=example,
                registered_model_name=name,
                pip_requirements=_requirements(),
            )
            version = str(info.registered_model_version)
            client.set_registered_model_alias(name, CHALLENGER, version)
            shutil.copytree(artefacts, saved / "report")
            export = write_export(saved, name, version, run.info.run_id)
            point_alias(name, CHALLENGER, version)
    return RegisteredModel(name, version, run.info.run_id, export)
