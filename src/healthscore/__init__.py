"""healthscore: calibrated customer health scores learned from churned-vs-retained history.

The pipeline, one package per step, each importing only those below it:
config/catalogue -> build -> model -> registry -> scoring -> history -> report, with the public
Python API (`healthscore.pipeline`, re-exported here) and the CLI (`healthscore.cli`) on top.
See docs/ARCHITECTURE.md.

Names are loaded on first use, so that importing one low layer (the MLflow pyfunc loads
`healthscore.model`) does not import the whole package.
"""

from importlib import import_module

_API = {
    "load_dataset": "healthscore.pipeline", "train_and_register": "healthscore.pipeline", "TrainingOutcome": "healthscore.pipeline",
    "promote": "healthscore.pipeline", "score_accounts": "healthscore.pipeline", "write_report": "healthscore.pipeline",
    "build_dataset": "healthscore.build.raw", "build_snapshot_dataset": "healthscore.build.snapshot",
    "Config": "healthscore.config", "load_config": "healthscore.config",
    "Dataset": "healthscore.dataset", "DatasetSpec": "healthscore.dataset", "read_dataset": "healthscore.dataset",
    "ConfigError": "healthscore.errors", "DataError": "healthscore.errors", "UserError": "healthscore.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'healthscore' has no attribute {name!r}")
