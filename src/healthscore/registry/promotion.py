"""Promotion: the `champion` alias moves to the challenger only if it is not worse.

Only models that passed the quality gate are registered (see `runs`), so only they can be
challengers. A registry with no champion yet promotes its challenger as the first champion.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd

from healthscore.dataset import Dataset
from healthscore.defaults import CHALLENGER, CHAMPION, MODEL_NAME
from healthscore.errors import ModelNotFound
from healthscore.model.evaluation import comparison_table, evaluate
from healthscore.registry.export import point_alias
from healthscore.registry.loading import load_model
from healthscore.registry.store import alias_version, connect


@dataclass
class Promotion:
    comparison: pd.DataFrame  # challenger / champion x metrics on the same slice
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None


def promote(dataset: Dataset, name: str = MODEL_NAME, force: bool = False, latest_dates: int = 3) -> Promotion:
    """Compare challenger and champion on the latest labelled dates; move `champion` if not worse."""
    client = connect()
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ModelNotFound(f"model {name!r} has no '{CHALLENGER}' version: train one that passes the quality gate first")
    champion = alias_version(client, name, CHAMPION)
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
        point_alias(name, CHAMPION, challenger)
    return Promotion(table, promoted, reason, challenger, champion)
