"""The outer split: a test slice that no step of training sees, and the development rows before it.

With observation dates, the latest labelled dates are the test slice and every earlier date
whose label horizon has closed before the test starts (with `purge`) is development: otherwise
development labels would already know churn that happens during the test period. Without dates
(a plain snapshot table), a stratified share of accounts with a fixed seed is the test slice.
The development rows are then cross-fitted (`crossfit`), and the shipped model is refitted on
every labelled row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from healthscore.dataset import Dataset
from healthscore.errors import SplitError
from healthscore.settings import SplitConfig

SLICES = ("develop", "test", "shipped")  # shipped: every labelled row, what the registered model learned from


@dataclass
class Split:
    develop: pd.Index
    test: pd.Index
    dates: dict[str, list[dt.date]]  # empty for a dateless snapshot

    def summary(self, dataset: Dataset) -> pd.DataFrame:
        """Rows, churn rate and date range of each slice."""
        labelled = dataset.labelled
        label = labelled[dataset.spec.label_column].astype(float)
        rows = []
        for name in SLICES:
            idx = labelled.index if name == "shipped" else getattr(self, name)
            dates = self.dates.get(name, [])
            rows.append({"slice": name, "rows": len(idx), "churn_rate": float(label.loc[idx].mean()),
                         "first_as_of": min(dates) if dates else None, "last_as_of": max(dates) if dates else None})
        return pd.DataFrame(rows).set_index("slice")


def split_dataset(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    config = config or SplitConfig()
    frame, spec = dataset.labelled, dataset.spec
    if is_dated(dataset):
        return _by_time(frame[spec.as_of_column], spec.horizon_days or 0, config)
    return _stratified(frame[spec.id_column], frame[spec.label_column].astype(int), config)


def is_dated(dataset: Dataset) -> bool:
    spec = dataset.spec
    return bool(spec.as_of_column) and dataset.labelled[spec.as_of_column].nunique() > 1


def purge_gap(horizon_days: int | None, config: SplitConfig) -> dt.timedelta:
    return dt.timedelta(days=(horizon_days or 0) if config.purge else 0)


def _by_time(as_of: pd.Series, horizon: int, config: SplitConfig) -> Split:
    dates = sorted(as_of.unique())
    gap = purge_gap(horizon, config)
    test = dates[-config.test_dates:]
    develop = [d for d in dates if d + gap <= test[0] and d < test[0]]
    if len(develop) < config.folds:
        raise SplitError(
            f"{len(dates)} labelled as_of dates ({dates[0]} .. {dates[-1]}) are too few for {config.test_dates} test dates, "
            f"a {gap.days}-day purge and {config.folds} cross-fitting folds of earlier dates; {_advice(dates, horizon, config)}"
        )
    pick = lambda ds: as_of.index[as_of.isin(ds)]  # noqa: E731
    return Split(pick(develop), pick(test), {"develop": develop, "test": test, "shipped": dates})


def _developed(dates: list, gap_days: int, test_dates: int) -> int:
    """How many dates are left to cross-fit on before `test_dates` test dates and a purge."""
    if len(dates) <= test_dates:
        return 0
    first, gap = dates[-test_dates], dt.timedelta(days=gap_days)
    return sum(d + gap <= first and d < first for d in dates)


def _advice(dates: list, horizon: int, config: SplitConfig) -> str:
    """Settings that do split these dates, with the numbers for them."""
    gap = horizon if config.purge else 0
    options = []
    if fewer := next((t for t in range(config.test_dates - 1, 0, -1) if _developed(dates, gap, t) >= config.folds), None):
        options.append(f"model.split.test_dates: {fewer}")
    if (developed := _developed(dates, gap, config.test_dates)) >= 2:
        options.append(f"model.split.folds: {developed}")
    if config.purge:
        shorter = next((h for h in range(horizon - 1, 0, -1) if _developed(dates, h, config.test_dates) >= config.folds), None)
        if shorter:
            options.append(f"a churn horizon of at most {shorter} days (churn.horizon_days or a shorter horizon_months)")
        if _developed(dates, 0, config.test_dates) >= config.folds:
            options.append("model.split.purge: false (training labels then overlap the test period)")
    options.append(f"more history: {config.test_dates} test dates, a {gap}-day purge and {config.folds} folds need "
                   f"{config.folds - _developed(dates, gap, config.test_dates)} more labelled as_of dates")
    return "what would fit: " + "; or ".join(options)


def _stratified(ids: pd.Series, y: pd.Series, config: SplitConfig) -> Split:
    """A stratified share of accounts as the test slice: an account never spans both slices."""
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / config.test_share)), shuffle=True, random_state=config.seed)
    _, test_idx = next(folds.split(np.zeros(len(y)), y, groups=ids))
    test = np.zeros(len(y), dtype=bool)
    test[test_idx] = True
    return Split(y.index[~test], y.index[test], {})
