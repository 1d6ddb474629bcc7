"""Train / validation / test slices that respect time, so the test measures the future.

With observation dates, the latest labelled dates are the test slice, the ones before it the
validation slice (early stopping, calibration) and the rest training. With `purge`, a slice only
uses dates whose label horizon has closed before the next slice starts: otherwise training
labels would already know churn that happens during the test period.
Without dates (a plain snapshot table), a stratified split by account with a fixed seed.
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

SLICES = ("train", "valid", "test")


@dataclass
class Split:
    train: pd.Index
    valid: pd.Index
    test: pd.Index
    dates: dict[str, list[dt.date]]  # empty for a dateless snapshot

    def summary(self, dataset: Dataset) -> pd.DataFrame:
        """Rows, churn rate and date range of each slice."""
        label = dataset.frame[dataset.spec.label_column].astype(float)
        rows = []
        for name in SLICES:
            idx = getattr(self, name)
            dates = self.dates.get(name, [])
            rows.append({"slice": name, "rows": len(idx), "churn_rate": float(label.loc[idx].mean()),
                         "first_as_of": min(dates) if dates else None, "last_as_of": max(dates) if dates else None})
        return pd.DataFrame(rows).set_index("slice")


def split_dataset(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    config = config or SplitConfig()
    frame, spec = dataset.labelled, dataset.spec
    if spec.as_of_column and frame[spec.as_of_column].nunique() > 1:
        return _by_time(frame[spec.as_of_column], spec.horizon_days or 0, config)
    return _stratified(frame[spec.id_column], frame[spec.label_column].astype(int), config)


def _by_time(as_of: pd.Series, horizon: int, config: SplitConfig) -> Split:
    dates = sorted(as_of.unique())
    gap = dt.timedelta(days=horizon if config.purge else 0)
    test = dates[-config.test_dates:]
    before_test = [d for d in dates if d + gap <= test[0] and d < test[0]]
    valid = before_test[-config.valid_dates:]
    train = [d for d in before_test if valid and d + gap <= valid[0] and d < valid[0]]
    if not valid or not train:
        raise SplitError(
            f"{len(dates)} labelled as_of dates ({dates[0]} .. {dates[-1]}) are too few for {config.test_dates} test and "
            f"{config.valid_dates} validation dates with a {gap.days}-day purge; {config.advice(dates, horizon)}"
        )
    pick = lambda ds: as_of.index[as_of.isin(ds)]  # noqa: E731
    return Split(pick(train), pick(valid), pick(test), {"train": train, "valid": valid, "test": test})


def _stratified(ids: pd.Series, y: pd.Series, config: SplitConfig) -> Split:
    """60/20/20 by account, stratified on the label: an account never spans two slices."""
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=config.seed)
    fold = np.empty(len(y), dtype=int)
    for i, (_, test_idx) in enumerate(folds.split(np.zeros(len(y)), y, groups=ids)):
        fold[test_idx] = i
    return Split(y.index[fold >= 2], y.index[fold == 1], y.index[fold == 0], {})
