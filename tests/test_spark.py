"""The Spark engine on a real local Spark session (`local[2]`): scoring gives the local job's scores,
rejections, counts and drift; the history records a Spark run; the CLI runs it; and
`mlflow.pyfunc.spark_udf` over the registered model returns the scores-file columns."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healthscore import registry
from healthscore.build.spark import spark_session
from healthscore.cli import app
from healthscore.model.artefacts import write_training_artefacts
from healthscore.model.training import train
from healthscore.pipeline import score_accounts
from healthscore.scores_file import SCORE_COLUMNS, metadata_path_for, rejected_path_for
from healthscore.scoring.spark import SCORES, scores_schema
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

CONFIG = TrainingConfig(params=ModelParams(learning_rate=0.2, max_rounds=60, early_stopping_rounds=10),
                        split=SplitConfig(test_dates=2, valid_dates=2))


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    """One dataset file with bad rows, scored by the local job and on Spark, each into its own history."""
    folder = tmp_path_factory.mktemp("spark-scoring")
    data = synthetic_dataset(accounts=300, months=12)
    result = train(data, CONFIG)
    model = folder / "models" / "customer-health" / "v1"
    result.model.save(model)
    frame = data.frame[data.frame["as_of"] >= dt.date(2023, 11, 1)].reset_index(drop=True)
    frame.loc[3, "account_id"] = None  # missing id
    frame.loc[10, "usage"] = np.inf  # not a finite number
    frame = pd.concat([frame, frame.iloc[[20]]], ignore_index=True)  # an account twice on one date
    frame.loc[frame.index[::50], "plan"] = "legacy"  # a category training never saw
    table = folder / "dataset.parquet"
    data.__class__(frame, data.spec).write(table)
    runs = {}
    for engine, out in (("local", folder / "local" / "scores.parquet"), ("spark", folder / "spark" / "scores.parquet")):
        out.parent.mkdir()
        run = score_accounts(out, str(model), table=table, history=out.parent / "scores.duckdb", chunk_size=150, engine=engine)
        runs[engine] = (run, out)
    return runs, frame, folder


def _read(path) -> pd.DataFrame:
    """A scores or rejections file, or a folder of Spark's Parquet parts."""
    return pd.read_parquet(path)


def test_spark_scores_equal_the_local_job_in_every_column_but_scored_at(scored):
    runs, frame, _ = scored
    local, spark = (_read(runs[e][1]) for e in ("local", "spark"))
    assert runs["spark"][1].is_dir() and len(list(runs["spark"][1].glob("*.parquet"))) >= 2  # parts, one per partition
    assert list(spark.columns) == list(local.columns)
    # an attribute the input lacks is all-null in both; the local writer leaves it untyped, Spark types it as text
    absent = [c for c in local if local[c].isna().all() and spark[c].isna().all()]
    assert absent == ["account_name", "csm_owner"]
    assert dict(spark.drop(columns=absent).dtypes) == dict(local.drop(columns=absent).dtypes)
    assert set(SCORE_COLUMNS) <= set(spark.columns)
    key = ["account_id", "as_of"]
    local, spark = (f.drop(columns=["scored_at", *absent]).sort_values(key).reset_index(drop=True) for f in (local, spark))
    assert len(spark) == len(frame) - 4  # missing id, infinite usage, the duplicated account's two rows
    pd.testing.assert_frame_equal(spark, local, check_exact=True)


def test_spark_rejections_and_counts_equal_the_local_job(scored):
    runs, frame, _ = scored
    local, spark = (_read(rejected_path_for(runs[e][1])) for e in ("local", "spark"))
    pd.testing.assert_frame_equal(spark.reset_index(drop=True), local.reset_index(drop=True), check_exact=True)
    assert set(spark["code"]) == {"missing_id", "not_a_number", "duplicate_id"} and len(spark) == 4
    meta = {e: json.loads(metadata_path_for(runs[e][1]).read_text()) for e in runs}
    assert meta["spark"]["input_rows"] == len(frame) == meta["spark"]["scored_rows"] + meta["spark"]["rejected_rows"]
    for key in ("input_rows", "scored_rows", "rejected_rows", "tiers", "riskiest", "unseen_categories"):
        assert meta["spark"][key] == meta["local"][key], key
    assert meta["spark"]["unseen_categories"]["plan"]["legacy"] > 0
    # drift from the partitions' bin counts: the local job's PSI, to rounding
    for code, psi in meta["local"]["drift"]["metrics"].items():
        assert meta["spark"]["drift"]["metrics"][code] == pytest.approx(psi, abs=1e-12)
    assert meta["spark"]["drift"]["score_psi"] == pytest.approx(meta["local"]["drift"]["score_psi"], abs=1e-12)
    assert meta["spark"]["engine"] == "spark" and meta["spark"]["partitions"] >= 2


def test_the_history_records_a_spark_run_from_its_parquet_parts(scored):
    runs, _, _ = scored
    tables = {}
    for engine, (_, out) in runs.items():
        with duckdb.connect(str(out.parent / "scores.duckdb"), read_only=True) as con:
            tables[engine] = (con.execute("SELECT * EXCLUDE (scored_at) FROM scores ORDER BY account_id, as_of").df(),
                              con.execute("SELECT accounts, healthy, at_risk, unhealthy, rejected FROM runs ORDER BY as_of").fetchall())
    pd.testing.assert_frame_equal(tables["spark"][0], tables["local"][0])
    assert tables["spark"][1] == tables["local"][1]


@pytest.fixture(scope="module")
def registered(project):
    """A model trained and registered (alias challenger) in the project's own MLflow store."""
    data = synthetic_dataset(accounts=300, months=12, seed=5)
    result = train(data, CONFIG)
    write_training_artefacts(result, project / "artefacts")
    return data, registry.log_training(result, data, project / "artefacts")


def test_spark_udf_over_the_registered_model_returns_the_scores_file_columns(spark, registered):
    data, model = registered
    uri = "models:/customer-health@challenger"
    names = mlflow.models.get_model_info(uri).signature.inputs.input_names()  # spark_udf passes columns in this order
    rows = data.frame[data.frame["as_of"] == data.frame["as_of"].max()].head(120).reset_index(drop=True)[names]
    expected = mlflow.pyfunc.load_model(uri).predict(rows)
    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=scores_schema(dates="string"), env_manager="local")
    got = spark.createDataFrame(rows.astype({"plan": object})).select(udf(*names).alias("s")).select("s.*").toPandas()
    assert list(got.columns) == SCORES
    expected["as_of"] = expected["as_of"].astype(str)  # spark_udf returns primitive types only: the date as ISO text
    assert (got["model_version"] == model.version).all() and (got["model_run_id"] == model.run_id).all()
    compare = [c for c in SCORES if c != "scored_at" and expected[c].notna().any()]
    got, expected = (f[compare].sort_values("account_id").reset_index(drop=True) for f in (got, expected))
    # MLflow's spark_udf casts every text field of a struct result with astype(str): a missing reason arrives as 'nan'
    text = [c for c in compare if SCORE_COLUMNS.get(c) in ("VARCHAR", "JSON")]
    missing = expected[text].isna()
    assert missing.to_numpy().any() and set(got[text].to_numpy()[missing.to_numpy()]) == {"nan"}
    got[text] = got[text].where(~missing, None).astype(object)
    expected[text] = expected[text].astype(object).where(~missing, None)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=True)


def test_the_score_command_runs_on_spark_and_refuses_a_file_output_in_one_line(scored):
    _, frame, folder = scored
    model, table = folder / "models" / "customer-health" / "v1", folder / "dataset.parquet"
    base = ["score", "--engine", "spark", "--table", str(table), "--model", str(model), "--history", str(folder / "cli.duckdb")]
    done = CliRunner().invoke(app, [*base, "--out", str(folder / "cli" / "scores.parquet"), "--max-rejected", "0.01"])
    assert done.exit_code == 0, done.output
    assert f"Scored {len(frame) - 4:,} of {len(frame):,} accounts" in done.output and "4 rows rejected" in done.output
    assert len(pd.read_parquet(folder / "cli" / "scores.parquet")) == len(frame) - 4
    refused = CliRunner().invoke(app, [*base, "--out", str(folder / "cli" / "scores.csv")])
    message = " ".join(refused.output.split())  # one line, wrapped by the console's width only
    assert refused.exit_code == 2 and message.startswith("error: --out") and message.endswith("end the name in .parquet")
    assert "Traceback" not in refused.output
