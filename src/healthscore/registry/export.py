"""Exported models for batch jobs without a tracking server: the one place that writes and reads
the layout.

    models/<name>/v<version>/     the saved HealthModel (booster.txt, model.json), the training
                                  report, and registration.json (name, version, run id)
    models/<name>/<alias>.json    {"version": ..., "path": "v<version>"}: which version an alias names
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from healthscore.defaults import CHAMPION, EXPORT_ROOT
from healthscore.errors import ModelNotFound
from healthscore.io import atomic_path
from healthscore.model.estimator import HealthModel
from healthscore.scores_file import ModelRef

REGISTRATION = "registration.json"


def export_folder(name: str, version: str, root: Path = EXPORT_ROOT) -> Path:
    return root / name / f"v{version}"


def write_export(saved: Path, name: str, version: str, run_id: str, root: Path = EXPORT_ROOT) -> Path:
    """Copy a saved model to models/<name>/v<version>, whole or not at all."""
    target = export_folder(name, version, root)
    (root / name).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}.", dir=root / name))
    shutil.copytree(saved, staging, dirs_exist_ok=True)
    (staging / REGISTRATION).write_text(json.dumps({"name": name, "version": version, "run_id": run_id}))
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def point_alias(name: str, alias: str, version: str, root: Path = EXPORT_ROOT) -> None:
    with atomic_path(root / name / f"{alias}.json") as tmp:
        tmp.write_text(json.dumps({"version": version, "path": f"v{version}"}))


def load_export(folder: Path) -> tuple[HealthModel, ModelRef]:
    """An exported version folder, or models/<name> (its champion)."""
    folder = Path(folder)
    pointer = folder / f"{CHAMPION}.json"
    if pointer.exists():
        folder = folder / json.loads(pointer.read_text())["path"]
    if not folder.is_dir():
        raise ModelNotFound(f"{folder}: no exported model there (a models/<name> folder with a champion, or a version folder)")
    registration = json.loads((folder / REGISTRATION).read_text()) if (folder / REGISTRATION).exists() else {}
    model = HealthModel.load(folder)
    return model, ModelRef(registration.get("name", folder.parent.name), str(registration.get("version", "local")),
                           registration.get("run_id", ""))
