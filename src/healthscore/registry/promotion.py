"""Promotion: the `champion` alias moves to the challenger only if it is not worse on data
neither model saw.

Only models that passed the quality gate are registered (see `runs`), so only they can be
challengers. A registry with no champion yet promotes its challenger as the first champion.
Otherwise both are scored on the labelled dates after the later of the two models' training
data (their provenance says up to which as_of each learned); with none, nothing can be judged
and only `force` promotes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import mlflow
import pandas as pd

from healthscore.dataset import Dataset
from healthscore.defaults import CHALLENGER, CHAMPION, MODEL_NAME
from healthscore.errors import DataError, ModelNotFound
from healthscore.model.estimator import HealthModel
from healthscore.model.evaluation import comparison_table, evaluate, paired_auc_difference
from healthscore.registry.export import point_alias
from healthscore.registry.loading import load_model
from healthscore.registry.store import alias_version, connect


@dataclass
class Promotion:
    comparison: pd.DataFrame  # challenger / champion x metrics on the unseen rows (empty: none)
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    dates: list[dt.date] = field(default_factory=list)  # the unseen labelled dates compared on
    rows: int = 0
    auc_difference: dict[str, float] = field(default_factory=dict)  # challenger - champion, 95% paired bootstrap


def trained_until(model: HealthModel) -> dt.date | None:
    """The last as_of a saved model learned from (older models: the latest date of its slices)."""
    prov = model.provenance_
    stated = [prov.trained_until] if prov.trained_until else [last for _, last in prov.trained_on.values()]
    dates = [dt.date.fromisoformat(d) for d in stated if d and d != "None"]
    return max(dates) if dates else None


def promote(dataset: Dataset, name: str = MODEL_NAME, force: bool = False) -> Promotion:
    """Compare challenger and champion on labelled dates after both models' training data; move
    `champion` if the challenger is not worse (or with `force`)."""
    spec = dataset.spec
    if not spec.label_column or spec.label_column not in dataset.frame or dataset.frame[spec.label_column].isna().all():
        raise DataError(f"the dataset has no churn labels ({spec.label_column or 'no label column'}): promote judges the "
                        "challenger on labelled rows; give the dataset it was trained from, or a later labelled one")
    client = connect()
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ModelNotFound(f"model {name!r} has no '{CHALLENGER}' version: train one that passes the quality gate first")
    champion = alias_version(client, name, CHAMPION)
    models = {alias: load_model(f"models:/{name}@{alias}")[0]
              for alias, version in ((CHALLENGER, challenger), (CHAMPION, champion)) if version is not None}
    frame, dates, after = _unseen(dataset, models.values())
    y = frame[dataset.spec.label_column].astype(int).to_numpy()
    results, p = {}, {}
    if len(frame):
        for alias, model in models.items():
            scores = model.score(frame)
            p[alias] = scores["churn_probability"].to_numpy()
            results[f"{alias} (v{challenger if alias == CHALLENGER else champion})"] = evaluate(y, p[alias], scores["tier"])
    table = comparison_table(results)
    where = f"{len(frame):,} rows on {len(dates)} labelled date(s) {dates[0]} .. {dates[-1]}" if dates else ""
    difference = paired_auc_difference(y, p[CHALLENGER], p[CHAMPION]) if len(p) == 2 else {}
    if champion is None:
        promoted, reason = True, "no champion yet"
    elif champion == challenger:
        promoted, reason = False, "the challenger already is the champion"
    elif not len(frame):
        seen = f"after {after}" if after else "with observation dates"
        promoted, reason = force, (f"no labelled data {seen}, which neither model trained on: nothing to judge the challenger on"
                                   + (", promoted anyway (--force)" if force else "; retrain later or use --force"))
    elif difference["high"] >= 0 and table.iloc[0]["brier"] <= table.iloc[1]["brier"]:
        promoted, reason = True, f"not worse on ROC-AUC (beyond its 95% interval) and Brier, on {where}"
    else:
        promoted, reason = force, (f"worse on ROC-AUC or Brier, on {where}" + (", promoted anyway (--force)" if force else ""))
    with mlflow.start_run(run_name=f"promote {name}"):
        mlflow.log_params({"challenger_version": challenger, "champion_version": champion, "promoted": promoted,
                           "reason": reason[:500], "slice_rows": len(frame), "force": force,
                           "slice_dates": ",".join(map(str, dates))[:500]})
        for label, row in table.iterrows():
            mlflow.log_metrics({f"{label.split(' ')[0]}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
        mlflow.log_metrics({f"auc_difference.{k}": v for k, v in difference.items()})
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger)
        point_alias(name, CHAMPION, challenger)
    return Promotion(table, promoted, reason, challenger, champion, dates, len(frame), difference)


def _unseen(dataset: Dataset, models) -> tuple[pd.DataFrame, list[dt.date], dt.date | None]:
    """Labelled rows dated after every model's training data, those dates, and that last training date."""
    frame, spec = dataset.labelled, dataset.spec
    if not spec.as_of_column:
        return frame.iloc[:0], [], None
    ends = [trained_until(m) for m in models]
    after = max((d for d in ends if d is not None), default=None)
    as_of = pd.to_datetime(frame[spec.as_of_column]).dt.date
    keep = as_of > after if after is not None else pd.Series(False, index=frame.index)
    return frame[keep], sorted(as_of[keep].unique()), after
