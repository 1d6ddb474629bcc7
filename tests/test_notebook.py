"""The data scientist's notebook runs top to bottom on a small demo base."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "train_and_evaluate.ipynb"


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_notebook_executes_on_a_small_base(tmp_path, monkeypatch):
    monkeypatch.setenv("HEALTHSCORE_NB_ACCOUNTS", "1200")
    monkeypatch.setenv("HEALTHSCORE_NB_DIR", str(tmp_path / "demo"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Model test ROC-AUC" in outputs
    assert (tmp_path / "demo" / "training_report" / "scorecard.csv").exists()
