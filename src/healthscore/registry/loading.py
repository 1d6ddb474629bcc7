"""Loading a model for scoring or a report: `models:/name@alias`, `models:/name/<version>`, or an
exported folder (see `export`); always with the `ModelRef` that says which model it is."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException

from healthscore.errors import ModelNotFound
from healthscore.model.estimator import HealthModel
from healthscore.registry.export import export_folder, load_export
from healthscore.registry.pyfunc import ARTIFACT
from healthscore.registry.store import connect
from healthscore.scores_file import ModelRef


def load_model(ref: str) -> tuple[HealthModel, ModelRef]:
    """The model `ref` names and which model it is."""
    if not ref.startswith("models:/"):
        return load_export(Path(ref))
    import mlflow

    client = connect()
    name, _, alias = ref.removeprefix("models:/").partition("@")
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = ref.removeprefix("models:/").partition("/")
            version = client.get_model_version(name, number)
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
    except MlflowException as exc:
        raise ModelNotFound(f"{ref}: no such model in the registry ({exc.message.splitlines()[0]})") from None
    return HealthModel.load(local / "artifacts" / ARTIFACT), ModelRef(name, str(version.version), version.run_id)


def load_version(name: str, version: str) -> tuple[HealthModel, ModelRef]:
    """One registered version: its exported folder when there is one (no tracking server
    needed), else the registry."""
    folder = export_folder(name, version)
    return load_model(str(folder) if folder.is_dir() else f"models:/{name}/{version}")
