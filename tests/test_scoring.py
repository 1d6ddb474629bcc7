"""Batch scoring: exact reason points, plain-language reasons, rejections, chunks, atomic output."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from healthscore.dataset import Dataset, FeatureSpec
from healthscore.errors import TooManyRejected
from healthscore.model.estimator import FeatureDistribution
from healthscore.model.reasons import explain, rank_phrase, scores_with_reasons, text_for
from healthscore.model.training import train
from healthscore.scores_file import ModelRef, rejected_path_for, scored_now
from healthscore.scoring import batch
from healthscore.scoring.batch import score_frame, score_input
from healthscore.scoring.drift import ACT, drift_report
from healthscore.scoring.inputs import FrameInput, open_table
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

REF = ModelRef("customer-health", "7", "run123")
AS_OF = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def trained():
    data = synthetic_dataset(accounts=1000, months=12)
    data.frame.loc[data.frame.index[::37], "usage"] = np.nan  # missing values are legal input
    config = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20),
                            split=SplitConfig(test_dates=2))
    return train(data, config), data


def test_baseline_plus_points_is_the_health_score_for_every_account(trained):
    result, data = trained
    X = data.frame
    reasons, scores = explain(result.model, X), result.model.score(X)
    total = reasons["baseline_score"] + reasons["contributions"].map(lambda c: sum(json.loads(c).values()))
    clipped = (total < 0) | (total > 100)
    assert (total - scores["health_score"])[~clipped].abs().max() < 1e-6  # exact, the score being linear in the log-odds
    assert (scores["health_score"][clipped] == total[clipped].clip(0, 100)).all() and clipped.mean() < 0.1
    # the baseline is one number: the score of the model's expected value
    assert reasons["baseline_score"].nunique() == 1
    # reasons pull down (negative points, most negative first), strengths hold up
    assert (reasons["reason_1_points"].dropna() < 0).all() and (reasons["strength_1_points"].dropna() > 0).all()
    assert (reasons["reason_1_points"] <= reasons["reason_2_points"]).where(reasons["reason_2_points"].notna(), True).all()


def test_scores_and_tiers_are_the_models_own_predictions(trained):
    """Not recomputed from the SHAP sum, which may differ in the last bit and flip a cut-off row."""
    result, data = trained
    rows = data.frame
    out = scores_with_reasons(result.model, REF, rows, AS_OF, scored_now())
    np.testing.assert_array_equal(out["churn_probability"], result.model.predict_proba(rows)[:, 1])
    assert list(out["tier"]) == list(result.model.predict(rows))


def test_reason_codes_and_texts_speak_plainly(trained):
    result, data = trained
    reasons = explain(result.model, data.frame)
    codes = set(reasons["reason_1_code"].dropna()) | set(reasons["reason_2_code"].dropna())
    assert codes <= {"USAGE_LOW", "USAGE_HIGH", "USAGE_MISSING", "TICKETS_LOW", "TICKETS_HIGH",
                     "PLAN_STARTER", "PLAN_PRO", "PLAN_ENTERPRISE"}
    heavy = reasons[reasons["reason_1_code"] == "TICKETS_HIGH"]["reason_1_text"].iloc[0]
    assert heavy.startswith("Support tickets (90d) ") and "(higher than " in heavy and heavy.endswith(" points")
    plan = reasons[reasons["reason_1_code"] == "PLAN_STARTER"]["reason_1_text"].iloc[0]
    assert plan.startswith("Plan: starter: -")
    texts = pd.concat([reasons[f"{side}_{k}_{part}"] for side in ("reason", "strength") for k in (1, 2, 3)
                       for part in ("text",)])
    codes_all = pd.concat([reasons[f"{side}_{k}_code"] for side in ("reason", "strength") for k in (1, 2, 3)])
    missing = texts[codes_all.to_numpy() == "USAGE_MISSING"]
    assert len(missing) and missing.str.startswith("Active days (30d): none on record: ").all()


def test_rank_phrases_and_missing_text():
    ref = FeatureDistribution(missing_share=0.0, quantiles=[0.0] * 40 + list(np.linspace(0.1, 1.0, 61)))
    assert rank_phrase(0.0, ref) == "lower than 60% of accounts"  # 40% share the value 0
    assert rank_phrase(0.55, ref) == "higher than 69% of accounts"  # (40 zeros + 30 below) / 101
    nps = FeatureSpec(code="nps_latest", label="Latest NPS answer", format="integer", missing_text="no NPS response on record")
    assert text_for(nps, np.nan, FeatureDistribution(missing_share=1.0), -3.2) == "Latest NPS answer: no NPS response on record: -3 points"
    util = FeatureSpec(code="licence_utilisation_30d", label="Licence utilisation", format="percent")
    assert text_for(util, 0.34, FeatureDistribution(missing_share=0.0, quantiles=list(np.linspace(0.2, 0.9, 101))), -7.0) == \
        "Licence utilisation 34% (lower than 79% of accounts): -7 points"  # 80 of 101 quantiles above


def test_every_input_row_is_scored_or_rejected(trained, tmp_path):
    result, data = trained
    frame = data.frame[data.frame.as_of == data.frame.as_of.max()].copy().reset_index(drop=True)
    frame["usage"] = frame["usage"].astype(object)
    frame.loc[3, "account_id"] = None
    frame.loc[5, "account_id"] = frame.loc[699, "account_id"]  # a duplicate seven chunks later
    frame.loc[9, "usage"] = "lots"
    out = tmp_path / "scores.parquet"
    with pytest.raises(TooManyRejected, match=r"4 of 1000 rows \(0.4%\) could not be scored") as failed:
        score_frame(result.model, REF, frame, out, AS_OF, max_rejected_share=0.001)
    assert list(tmp_path.iterdir()) == []  # a failed run writes no output, scores and rejections alike
    assert len(pd.read_parquet(failed.value.diagnostics / "scores.rejected.parquet")) == 4  # they are where it says
    assert str(failed.value.diagnostics) in str(failed.value)
    run = score_frame(result.model, REF, frame, out, AS_OF, chunk_size=100)
    scored, rejected = pd.read_parquet(out), pd.read_parquet(rejected_path_for(out))
    assert len(scored) + len(rejected) == len(frame)
    assert dict(zip(rejected["row"], rejected["reason"])) == {
        4: "missing account id", 6: "duplicate account id", 10: "not a finite number", 700: "duplicate account id"}
    assert rejected.loc[rejected.row == 10, "column"].item() == "usage" and rejected.loc[rejected.row == 10, "value"].item() == "lots"
    meta = json.loads(out.with_name("scores.meta.json").read_text())
    assert meta["input_rows"] == 1000 and meta["scored_rows"] == 996 and meta["rejected_rows"] == 4
    assert sum(meta["tiers"].values()) == 996 and run.metadata["model"]["version"] == "7"
    assert set(scored["model_version"]) == {"7"} and set(scored["as_of"]) == {AS_OF}
    lowest = scored.nsmallest(5, "health_score")
    assert [r["account_id"] for r in meta["riskiest"]] == list(lowest["account_id"])
    assert [r["reason_1_text"] for r in meta["riskiest"]] == list(lowest["reason_1_text"])


def test_a_given_as_of_makes_an_account_twice_a_duplicate(trained, tmp_path):
    """The as_of given to the run is every row's: two dates of one account become one key."""
    result, data = trained
    before, last = sorted(data.frame.as_of.unique())[-2:]
    latest = data.frame[data.frame.as_of == last]
    earlier = data.frame[(data.frame.as_of == before) & data.frame.account_id.isin(latest.account_id.head(20))]
    frame = pd.concat([earlier, latest])  # 20 accounts at two dates
    path = Dataset(frame.copy(), data.spec).write(tmp_path / "features.parquet")
    for source in (FrameInput(frame), open_table(path, None, result.model.features)):
        assert source.duplicate_keys() == set()
        out = tmp_path / "scores.parquet"
        with pytest.raises(TooManyRejected):
            score_input(result.model, REF, source, out, AS_OF)
        score_input(result.model, REF, source, out, AS_OF, max_rejected_share=0.5)
        rejected = pd.read_parquet(rejected_path_for(out))
        assert len(rejected) == 40 and set(rejected["reason"]) == {"duplicate account id"}
        scored = pd.read_parquet(out)
        assert len(scored) == len(latest) - 20 and scored["account_id"].is_unique and set(scored["as_of"]) == {AS_OF}


def test_a_run_where_nothing_can_be_scored_writes_no_scores(trained, tmp_path):
    result, data = trained
    frame = data.frame.drop_duplicates("account_id").assign(account_id=None)
    out = tmp_path / "scores.parquet"
    with pytest.raises(TooManyRejected, match=f"none of its {len(frame):,} rows could be scored") as failed:
        score_frame(result.model, REF, frame, out, AS_OF)
    assert not out.exists() and not rejected_path_for(out).exists()
    assert len(pd.read_parquet(failed.value.diagnostics / rejected_path_for(out).name)) == len(frame)


def test_a_dataset_file_is_read_in_batches_and_scored_like_the_frame(trained, tmp_path):
    result, data = trained
    frame = data.frame[data.frame.as_of == data.frame.as_of.max()]
    path = Dataset(frame.copy(), data.spec).write(tmp_path / "features.parquet")
    source = open_table(path, None, result.model.features)
    assert source.rows == len(frame) and [len(c.rows) for c in source.chunks(300)] == [300, 300, 300, len(frame) - 900]
    from_file = score_input(result.model, REF, source, tmp_path / "file.parquet", AS_OF, chunk_size=300)
    score_frame(result.model, REF, frame, tmp_path / "frame.parquet", AS_OF, chunk_size=len(frame))
    a, b = pd.read_parquet(tmp_path / "file.parquet"), pd.read_parquet(tmp_path / "frame.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))
    whole = drift_report(result.model, frame, b["churn_probability"].to_numpy())
    assert from_file.metadata["drift"]["metrics"] == pytest.approx(whole["metrics"])
    assert from_file.metadata["input"] == str(path)


def test_chunked_output_equals_one_chunk_and_csv_works(trained, tmp_path):
    result, data = trained
    frame = data.frame.drop_duplicates("account_id")
    score_frame(result.model, REF, frame, tmp_path / "one.parquet", AS_OF, chunk_size=10_000)
    score_frame(result.model, REF, frame, tmp_path / "many.csv", AS_OF, chunk_size=97)
    one, many = pd.read_parquet(tmp_path / "one.parquet"), pd.read_csv(tmp_path / "many.csv")
    assert len(many) == len(one) == len(frame)
    np.testing.assert_allclose(many["health_score"], one["health_score"])
    assert list(many["reason_1_code"].fillna("")) == list(one["reason_1_code"].fillna(""))


def test_a_chunk_without_any_third_reason_still_writes_text_columns(trained, tmp_path):
    """One row per chunk: chunks whose optional columns are all empty must not fix the file's schema."""
    result, data = trained
    frame = data.frame.drop_duplicates("account_id").head(60).reset_index(drop=True)
    frame.loc[[0, 30], "account_id"] = None  # a rejection chunk of its own, twice
    score_frame(result.model, REF, frame, tmp_path / "one.parquet", AS_OF, chunk_size=1, max_rejected_share=0.5)
    score_frame(result.model, REF, frame, tmp_path / "all.parquet", AS_OF, chunk_size=100, max_rejected_share=0.5)
    one, whole = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "all.parquet")
    assert one["reason_3_code"].isna().any() and len(one) == 58
    pd.testing.assert_frame_equal(one.drop(columns="scored_at"), whole.drop(columns="scored_at"))
    assert pd.read_parquet(tmp_path / "one.rejected.parquet")["row"].tolist() == [1, 31]


def test_an_interrupted_run_leaves_no_partial_output(trained, tmp_path, monkeypatch):
    result, data = trained
    frame = data.frame.drop_duplicates("account_id")
    out = tmp_path / "scores.parquet"
    real, calls = batch.scores_with_reasons, []

    def crash_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "scores_with_reasons", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        score_frame(result.model, REF, frame, out, AS_OF, chunk_size=100)
    assert list(tmp_path.iterdir()) == []


def test_drift_flags_a_shifted_base(trained):
    result, data = trained
    X = result.test
    same = drift_report(result.model, X, result.model.predict_proba(X)[:, 1])
    assert same["act"] == [] and same["score_psi"] < 0.1
    shifted = X.assign(usage=X["usage"] * 0.2)
    moved = drift_report(result.model, shifted, result.model.predict_proba(shifted)[:, 1])
    assert moved["metrics"]["usage"] > ACT and "usage" in moved["act"] and moved["score_psi"] > ACT
