"""Young accounts and short histories: a window only partly covered is read by the metric's rule
and the reason text says so."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import rawbase
from healthscore import build_dataset, load_config
from healthscore.catalogue import Metric
from healthscore.dataset import Dataset, DatasetSpec, FeatureSpec
from healthscore.model.estimator import FeatureDistribution
from healthscore.model.reasons import partial_note, text_for

D = dt.date
MISSING_RULE = [  # the same counts, left missing while their window is only partly covered
    {"code": "logins_30d_whole", "label": "Logins (30 days, whole windows)", "source": "events", "aggregation": "sum",
     "value": "quantity", "filter": "event_kind = 'login'", "window_days": 30, "partial_window": "missing", "family": "usage_decline"},
    {"code": "days_since_login_whole", "label": "Days since login (whole look-back)", "format": "days", "source": "events",
     "aggregation": "days_since_last", "filter": "event_kind = 'login'", "window_days": 90, "partial_window": "missing",
     "family": "usage_decline"},
]


@pytest.fixture(scope="module")
def young(tmp_path_factory):
    """The hand-made base, with A3 (opened Feb 15) logging in 3 times a day from Feb 20."""
    frames = rawbase.tables()
    logins = pd.DataFrame([("A3", "U5", d.date(), "login", 3.0) for d in pd.date_range("2024-02-20", "2024-05-31")],
                          columns=frames["events"].columns)
    frames["events"] = pd.concat([frames["events"], logins], ignore_index=True)
    config = rawbase.config_dict() | {"metrics": {"unusable": "drop", "add": MISSING_RULE}}
    return build_dataset(load_config(rawbase.write(tmp_path_factory.mktemp("young"), frames, config)))


def value(ds, account, as_of, code):
    frame = ds.frame
    return frame.loc[(frame.account_id == account) & (frame.as_of == as_of), code].item()


def test_a_young_accounts_counts_are_its_rate_over_the_days_it_could_act(young):
    # Mar 1: A3 is 15 days old; 10 days of 3 logins = 30 logins in its 15 days, 60 over 30 days
    assert value(young, "A3", D(2024, 3, 1), "account_age_days") == 15
    assert value(young, "A3", D(2024, 3, 1), "logins_30d") == pytest.approx(30 * 30 / 15)
    assert value(young, "A3", D(2024, 3, 1), "active_days_30d") == pytest.approx(10 * 30 / 15)
    assert value(young, "A3", D(2024, 3, 1), "active_users_30d") == 1  # distinct users do not add up over days: as is
    assert np.isnan(value(young, "A3", D(2024, 3, 1), "logins_30d_whole"))
    # Apr 1: 46 days old, the window is whole: plain counts, the same under either rule
    assert value(young, "A3", D(2024, 4, 1), "logins_30d") == value(young, "A3", D(2024, 4, 1), "logins_30d_whole") == 90
    # the previous window (Feb 1 - Mar 1) holds A3's first 16 days, 11 of them with logins: 33 scale
    # to 62 (61.9), so the trend compares like with like
    assert value(young, "A3", D(2024, 4, 1), "login_trend_30d") == pytest.approx(90 / 62 - 1)


def test_days_since_metrics_read_their_look_back_when_nothing_is_found(young):
    # A4 never logs in: 90 days or more, at every date (no drift from the data start)
    assert {value(young, "A4", d, "days_since_last_login") for d in (D(2024, 2, 1), D(2024, 5, 1))} == {90}
    # with `missing`: unknown while the look-back reaches before the data start (Jan 1), then 90
    assert np.isnan(value(young, "A4", D(2024, 2, 1), "days_since_login_whole"))
    assert value(young, "A4", D(2024, 5, 1), "days_since_login_whole") == 90
    assert value(young, "A1", D(2024, 2, 1), "days_since_login_whole") == 1  # a login found is always known


def test_the_dataset_carries_age_and_days_of_data_as_attributes(young):
    spec = young.spec
    assert {"account_age_days", "days_of_data_events", "days_of_data_tickets"} <= set(spec.attributes)
    assert not {"account_age_days", "days_of_data_events"} & set(spec.feature_codes)
    assert value(young, "A1", D(2024, 3, 1), "days_of_data_events") == 60  # events from Jan 1
    assert value(young, "A1", D(2024, 3, 1), "account_age_days") == (D(2024, 3, 1) - D(2023, 1, 10)).days
    by_code = {f.code: f for f in spec.features}
    assert (by_code["logins_30d"].partial_window, by_code["login_trend_30d"].window_days) == ("scale", 60)
    assert (by_code["days_since_last_escalation"].cap, by_code["days_since_last_escalation"].window_source) == (365, "tickets")


LOGINS = FeatureSpec(code="logins_30d", label="Logins (30 days)", format="integer", window_days=30, window_source="events",
                     partial_window="scale")
RANKS = FeatureDistribution(missing_share=0.0, quantiles=list(np.linspace(0, 100, 101)))


def test_reason_texts_say_when_a_window_is_only_partly_covered():
    young_note = partial_note(LOGINS, 8, 400)
    assert young_note == "new account, 8 days"
    assert text_for(LOGINS, 0.0, RANKS, -4.0, young_note) == \
        "Logins (30 days) 0 (new account, 8 days, scaled to 30 days; lower than 99% of accounts): -4 points"
    early = partial_note(LOGINS.model_copy(update={"window_days": 90}), 400, 45)
    assert early == "before the data starts: 45 of 90 days on record"
    assert partial_note(LOGINS, 31, 31) == ""  # a whole window says nothing
    assert partial_note(LOGINS, None, None) == ""  # rows without the attributes (a snapshot, the pyfunc)
    whole = LOGINS.model_copy(update={"partial_window": "missing", "missing_text": "no logins"})
    assert text_for(whole, np.nan, RANKS, -1.0, young_note) == "Logins (30 days): not measured (new account, 8 days): -1 point"
    since = FeatureSpec(code="d", label="Days since last login", format="days", window_days=90, cap=90, partial_window="as_is")
    assert text_for(since, 90.0, RANKS, -6.0).startswith("Days since last login 90 days or more (")
    assert text_for(since, 90.0, RANKS, 2.0, young_note) == "Days since last login: none on record (new account, 8 days): +2 points"
    assert text_for(since, 5.0, RANKS, 1.0, young_note) == "Days since last login 5 days (lower than 94% of accounts): +1 point"


def test_partial_window_rules_are_checked():
    base = {"label": "x", "family": "f", "source": "tickets"}
    with pytest.raises(ValidationError, match="only .* scale to the window"):
        Metric(code="m", aggregation="mean", value="csat", window_days=90, partial_window="scale", **base)
    with pytest.raises(ValidationError, match="partial_window needs window_days"):
        Metric(code="m", aggregation="count", partial_window="missing", **base)
    assert Metric(code="m", aggregation="count", window_days=90, **base).partial_rule == "scale"
    assert Metric(code="m", aggregation="mean", value="csat", window_days=90, **base).partial_rule == "as_is"
    assert Metric(code="m", aggregation="count", **base).partial_rule is None


def monthly(n: int) -> Dataset:
    """n labelled monthly as_of dates of 20 accounts, with a 90-day horizon."""
    dates = [D(2024, 1 + i, 1) for i in range(n)]
    frame = pd.DataFrame([{"account_id": f"A{a}", "as_of": d, "x": float(a), "churned": a % 4 == 0}
                          for d in dates for a in range(20)])
    return Dataset(frame, DatasetSpec(origin="catalogue", horizon_days=90, features=[FeatureSpec(code="x", label="x")]))
