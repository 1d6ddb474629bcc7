"""The demo base: reproducible bytes, exact schemas, referential integrity, time rules, and a
ground truth that is consistent with the churn it generated, knows nothing of the realised future
and shows in the observables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from healthscore import load_config
from healthscore.demo import DRIVER_FAMILIES, DemoSummary, generate_demo
from healthscore.demo import churn_model as cm
from healthscore.demo import generator as gen

START = dt.date(2024, 1, 1)
LARGE_END = dt.date(2026, 1, 1)
S, D, TS = pa.string(), pa.date32(), pa.timestamp("us")
SCHEMAS = {
    "accounts": [("account_id", S), ("name", S), ("segment", S), ("industry", S), ("region", S),
                 ("created_at", D), ("csm_owner", S)],
    "subscriptions": [("subscription_id", S), ("account_id", S), ("plan", S), ("seats", pa.int64()),
                      ("mrr", pa.float64()), ("term", S), ("start_date", D), ("renewal_date", D),
                      ("end_date", D)],
    "users": [("user_id", S), ("account_id", S), ("created_at", D), ("deactivated_at", D)],
    "events": [("account_id", S), ("user_id", S), ("event_date", D), ("event_type", S),
               ("quantity", pa.float64())],
    "tickets": [("ticket_id", S), ("account_id", S), ("opened_at", TS), ("closed_at", TS), ("priority", S),
                ("topic", S), ("escalated", pa.bool_()), ("solved_on_first_contact", pa.bool_()),
                ("csat", pa.int64())],
    "invoices": [("invoice_id", S), ("account_id", S), ("issued_at", D), ("due_at", D), ("paid_at", D),
                 ("reminder_sent_at", D), ("amount", pa.float64())],
    "surveys": [("survey_id", S), ("account_id", S), ("user_id", S), ("responded_at", D), ("nps", pa.int64())],
    "engagements": [("engagement_id", S), ("account_id", S), ("occurred_at", D), ("channel", S),
                    ("responded", pa.bool_())],
    "ground_truth/churn_probability": [("account_id", S), ("as_of", D), ("p_churn_90d", pa.float64())],
    "ground_truth/drivers": [("account_id", S), ("as_of", D), ("driver", S), ("contribution", pa.float64())],
}
KEYS = {"accounts": "account_id", "subscriptions": "subscription_id", "users": "user_id",
        "tickets": "ticket_id", "invoices": "invoice_id", "surveys": "survey_id", "engagements": "engagement_id"}


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> tuple[Path, DemoSummary]:
    out = tmp_path_factory.mktemp("demo_a")
    return out, generate_demo(out, accounts=300, months=12, start=START, seed=7)


@pytest.fixture(scope="session")
def large(tmp_path_factory) -> Path:
    """Big enough for stable churn rates and AUC (about 20k account-months)."""
    out = tmp_path_factory.mktemp("demo_large")
    generate_demo(out, accounts=1500, months=24, start=START, seed=11)
    return out


def _db(root: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name in SCHEMAS:
        con.execute(f"CREATE VIEW {name.split('/')[-1]} AS SELECT * FROM read_parquet('{root / name}.parquet')")
    return con


def _one(con, sql: str):
    return con.execute(sql).fetchone()[0]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_other_seed_differs(small, tmp_path):
    root, _ = small
    generate_demo(tmp_path / "again", accounts=300, months=12, start=START, seed=7)
    generate_demo(tmp_path / "other", accounts=300, months=12, start=START, seed=8)
    first, again, other = _files(root), _files(tmp_path / "again"), _files(tmp_path / "other")
    assert len(first) == len(SCHEMAS) + 1
    assert first == again
    assert all(first[name] != other[name] for name in first if name.endswith(".parquet"))


def test_schemas_and_summary(small):
    root, summary = small
    for name, columns in SCHEMAS.items():
        schema = pq.read_schema(root / f"{name}.parquet")
        assert [(f.name, f.type) for f in schema] == columns, name
        assert pq.ParquetFile(root / f"{name}.parquet").metadata.num_rows == getattr(summary, name.split("/")[-1])
    assert summary.out_dir == root
    assert summary.accounts == 300
    assert list(summary.row_counts) == [name.split("/")[-1] for name in SCHEMAS]


def test_config_is_ready_for_the_tables_it_sits_beside(small):
    """The written config loads and points at every demo table, its schedule at the data's span."""
    config = load_config(small[0] / "healthscore.yaml")
    assert {name: config.source_path(name) for name in config.sources} == {
        name: small[0] / f"{name}.parquet" for name in (*KEYS, "events")}
    kinds = config.sources["events"].event_kinds
    assert kinds["login"] == ["login"] and kinds["session_minutes"] == ["session_minutes"]
    assert kinds["new_feature"] == ["workflow_automation", "ai_assistant"]
    assert kinds["feature"] == ["dashboards", "reports", "exports", "integrations", "api", "alerts", "collaboration", "mobile_app"]
    seen = {r[0] for r in _db(small[0]).execute("SELECT DISTINCT event_type FROM events").fetchall()}
    assert seen <= {t for types in kinds.values() for t in types}
    assert config.churn.horizon_days == 90 and config.data_end == dt.date(2025, 1, 1)
    assert (config.schedule.start, config.schedule.end, config.schedule.every) == (dt.date(2024, 4, 1), dt.date(2025, 1, 1), "month")


def test_ids_unique_and_foreign_keys_exist(small):
    con = _db(small[0])
    for table, key in KEYS.items():
        assert _one(con, f"SELECT count(*) - count(DISTINCT {key}) FROM {table}") == 0, table
    for table in [*KEYS, "events", "churn_probability", "drivers"]:
        missing = _one(con, f"SELECT count(*) FROM {table} WHERE account_id NOT IN (SELECT account_id FROM accounts)")
        assert missing == 0, table
    for table in ("events", "surveys"):
        sql = f"SELECT count(*) FROM {table} t LEFT JOIN users u USING (user_id) WHERE u.account_id IS DISTINCT FROM t.account_id"
        assert _one(con, sql) == 0, table


def test_categories(small):
    con = _db(small[0])
    values = lambda sql: {r[0] for r in con.execute(sql).fetchall()}  # noqa: E731
    assert values("SELECT DISTINCT segment FROM accounts") == {"SMB", "mid-market", "enterprise"}
    assert values("SELECT DISTINCT plan FROM subscriptions") <= {"starter", "growth", "enterprise"}
    assert values("SELECT DISTINCT term FROM subscriptions") == {"monthly", "annual"}
    assert values("SELECT DISTINCT priority FROM tickets") <= {"low", "normal", "high", "urgent"}
    assert values("SELECT DISTINCT topic FROM tickets") == {"bug", "outage", "billing", "how-to", "feature-request"}
    assert values("SELECT DISTINCT channel FROM engagements") == {"email", "meeting", "training"}
    assert _one(con, "SELECT count(*) FROM tickets WHERE csat NOT BETWEEN 1 AND 5") == 0
    assert _one(con, "SELECT count(*) FROM surveys WHERE nps NOT BETWEEN 0 AND 10") == 0
    assert 0 < _one(con, "SELECT avg((csat IS NULL)::INT) FROM tickets") < 1


def test_subscription_periods(small):
    con = _db(small[0])
    firsts = con.execute("""SELECT count(*), count(*) FILTER (WHERE s.start_date = a.created_at)
        FROM (SELECT account_id, min(start_date) AS start_date FROM subscriptions GROUP BY 1) s
        JOIN accounts a USING (account_id)""").fetchone()
    assert firsts[0] == 300 and firsts[1] == 300
    assert _one(con, "SELECT count(*) FROM subscriptions WHERE renewal_date <= start_date") == 0
    ended = con.execute("""SELECT end_date, start_date,
        row_number() OVER (PARTITION BY account_id ORDER BY start_date DESC) AS from_last
        FROM subscriptions""").df()
    churned = ended[ended.end_date.notna()]
    assert len(churned) > 0 and (churned.from_last == 1).all()
    assert (churned.end_date > churned.start_date).all()
    assert (churned.end_date.map(lambda d: d.day) <= 28).all()
    assert _one(con, "SELECT count(*) FROM subscriptions WHERE start_date >= DATE '2025-01-01'") == 0


def test_activity_respects_time(small):
    con = _db(small[0])
    con.execute("CREATE VIEW churn AS SELECT account_id, max(end_date) AS churn_date FROM subscriptions GROUP BY 1")
    assert _one(con, "SELECT min(event_date) FROM events") >= START
    assert _one(con, "SELECT max(event_date) FROM events") < dt.date(2025, 1, 1)
    after_churn = """SELECT count(*) FROM {t} JOIN churn USING (account_id) WHERE {c} >= churn_date"""
    for table, col in [("events", "event_date"), ("tickets", "opened_at"), ("invoices", "issued_at"),
                       ("surveys", "responded_at"), ("engagements", "occurred_at")]:
        assert _one(con, after_churn.format(t=table, c=col)) == 0, table
        assert _one(con, f"SELECT count(*) FROM {table} t JOIN accounts a USING (account_id) "
                         f"WHERE t.{col} < a.created_at") == 0, table
    inactive_user = """SELECT count(*) FROM events e JOIN users u USING (user_id)
        WHERE e.event_date < u.created_at OR e.event_date >= coalesce(u.deactivated_at, DATE '9999-01-01')"""
    assert _one(con, inactive_user) == 0
    # Twelve months from 2024-01: workflow_automation from 2024-05-01, ai_assistant from 2024-09-01.
    first = dict(con.execute("SELECT event_type, min(event_date) FROM events GROUP BY 1").fetchall())
    assert first["workflow_automation"] >= dt.date(2024, 5, 1)
    assert first["ai_assistant"] >= dt.date(2024, 9, 1)
    assert set(first) == {"login", "session_minutes", "dashboards", "reports", "exports", "integrations", "api",
                          "alerts", "collaboration", "mobile_app", "workflow_automation", "ai_assistant"}
    assert _one(con, "SELECT count(*) FROM invoices WHERE paid_at < issued_at OR due_at <= issued_at") == 0
    assert _one(con, "SELECT count(*) FROM tickets WHERE closed_at <= opened_at") == 0


def test_ground_truth_rows_are_the_active_accounts(small):
    con = _db(small[0])
    expected = """SELECT a.account_id, m.as_of FROM accounts a
        CROSS JOIN (SELECT unnest(range(DATE '2024-01-01', DATE '2025-01-01', INTERVAL 1 MONTH))::DATE AS as_of) m
        LEFT JOIN (SELECT account_id, max(end_date) AS churn_date FROM subscriptions GROUP BY 1) c USING (account_id)
        WHERE a.created_at < m.as_of AND (c.churn_date IS NULL OR c.churn_date >= m.as_of)"""
    got = "SELECT account_id, as_of FROM churn_probability"
    assert _one(con, f"SELECT count(*) FROM (({expected}) EXCEPT ({got}))") == 0
    assert _one(con, f"SELECT count(*) FROM (({got}) EXCEPT ({expected}))") == 0
    assert _one(con, "SELECT count(*) FROM churn_probability WHERE p_churn_90d <= 0 OR p_churn_90d >= 1") == 0


def test_drivers(small):
    con = _db(small[0])
    assert DRIVER_FAMILIES == ("usage_decline", "low_licence_utilisation", "poor_onboarding", "support_escalations",
                               "late_payments", "low_nps", "disengagement", "contract_plan")
    assert [r[0] for r in con.execute("SELECT DISTINCT driver FROM drivers ORDER BY 1").fetchall()] \
        == sorted(DRIVER_FAMILIES)
    assert _one(con, "SELECT count(*) FROM drivers") == len(DRIVER_FAMILIES) * _one(con, "SELECT count(*) FROM churn_probability")
    assert _one(con, "SELECT max(abs(m)) FROM (SELECT avg(contribution) AS m FROM drivers GROUP BY driver)") < 1e-9


def _labelled(data_end: dt.date) -> str:
    """Ground-truth rows whose whole 90-day window lies inside the data, with the realised label."""
    return f"""SELECT p.*, coalesce(c.churn_date >= p.as_of AND c.churn_date < p.as_of + 90, false) AS y,
        coalesce(c.churn_date >= p.as_of AND c.churn_date < p.as_of + INTERVAL 1 MONTH, false) AS churned_in_month
        FROM churn_probability p
        LEFT JOIN (SELECT account_id, max(end_date) AS churn_date FROM subscriptions GROUP BY 1) c USING (account_id)
        WHERE p.as_of + 90 <= DATE '{data_end}'"""


def test_churn_rates(large):
    con = _db(large)
    labelled = _labelled(LARGE_END)
    rates = dict(con.execute(f"""SELECT a.segment, avg(l.churned_in_month::INT) FROM ({labelled}) l
        JOIN accounts a USING (account_id) GROUP BY 1""").fetchall())
    overall = _one(con, f"SELECT avg(churned_in_month::INT) FROM ({labelled})")
    assert 0.01 <= overall <= 0.03
    assert rates["SMB"] > rates["mid-market"] > rates["enterprise"]


def test_oracle_auc_and_calibration(large):
    con = _db(large)
    df = con.execute(_labelled(LARGE_END)).df()
    auc = roc_auc_score(df.y, df.p_churn_90d)
    assert 0.80 <= auc <= 0.92  # where real churn models land: the truth cannot see the future
    # The truth is calibrated by construction: mean probability ~ realised rate (90 days: 5-6 %).
    assert abs(df.p_churn_90d.mean() - df.y.mean()) < 0.005
    assert 0.05 <= df.y.mean() <= 0.065


def _world(accounts: int = 400, months: int = 8, seed: int = 3):
    """The generator's state and churn draws, without writing tables."""
    seeds = np.random.SeedSequence(seed).spawn(len(gen.STREAMS))
    rng = {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(gen.STREAMS, seeds)}
    cal = gen._Calendar(START, -gen.MAX_AGE_MONTHS - 1, months + 13)
    acc = gen._make_accounts(accounts, months, cal, rng["accounts"])
    latent = cm.simulate(acc.base, months, cal.month_start(np.arange(-cm.BURN_IN, months + cm.AFTER)), rng["latent"])
    return acc.base, latent, cm.draw_churn(latent, rng["churn"])


def test_truth_does_not_know_the_realised_future():
    """p_churn_90d at as_of is a function of the state before as_of: scrambling everything the
    realised path did from as_of on leaves it unchanged (later as_of dates do change)."""
    base, latent, churn = _world()
    truth = cm.ground_truth(latent, base, churn, np.random.default_rng(1), continuations=16)
    month = 4
    j = month + cm.BURN_IN
    scrambled = np.random.default_rng(2)
    # What month `month` and later did (the hazard of month j itself reads only the months before).
    for values in [getattr(latent, name) for name in ("usage", "engaged", "escalations", "late", "sentiment",
                                                      "newcomers", "activated", "touches", "responses", "seats_end",
                                                      "champion", "outage")] + list(latent.carried.values()):
        values[:, j:] = scrambled.permutation(values[:, j:], axis=0)
    for values in [latent.hazard, *latent.terms.values()]:
        values[:, j + 1:] = scrambled.permutation(values[:, j + 1:], axis=0)
    again = cm.ground_truth(latent, base, churn, np.random.default_rng(1), continuations=16)
    known = truth.month <= month
    np.testing.assert_array_equal(truth.p_churn_90d[known], again.p_churn_90d[known])
    assert not np.array_equal(truth.p_churn_90d[truth.month > month], again.p_churn_90d[truth.month > month])


def test_truth_integrates_over_the_window():
    """The first window month's hazard is known at as_of, so p is at least it; the Monte Carlo over
    the next two months is unbiased (few and many continuations agree on average)."""
    base, latent, churn = _world()
    few = cm.ground_truth(latent, base, churn, np.random.default_rng(1), continuations=16)
    many = cm.ground_truth(latent, base, churn, np.random.default_rng(2), continuations=256)
    np.testing.assert_array_equal(few.account, many.account)
    np.testing.assert_array_equal(few.month, many.month)
    assert abs(few.p_churn_90d.mean() / many.p_churn_90d.mean() - 1) < 0.02
    assert np.median(np.abs(few.p_churn_90d / many.p_churn_90d - 1)) < 0.15
    # Without a hidden shock in the first month, its hazard is h = sigmoid(eta without b_m) and
    # p >= P(no shock) * h.
    j = many.month + cm.BURN_IN
    hidden = latent.traits.frailty[many.account] + cm.BUDGET_DECAY * latent.carried["budget"][many.account, j - 1]
    eta = cm.INTERCEPT + hidden + sum(latent.terms[f][many.account, j] for f in DRIVER_FAMILIES)
    assert np.all(many.p_churn_90d >= 0.9999 * (1 - cm.BUDGET_SHOCK) / (1 + np.exp(-eta)))
    assert np.all(many.p_churn_90d < 1)


def test_tables_do_not_depend_on_the_truths_monte_carlo(small, tmp_path, monkeypatch):
    root, _ = small
    truth = cm.ground_truth
    monkeypatch.setattr(cm, "ground_truth", lambda *args, **kw: truth(*args, **{**kw, "continuations": 4}))
    generate_demo(tmp_path / "few", accounts=300, months=12, start=START, seed=7)
    first, few = _files(root), _files(tmp_path / "few")
    assert {name for name in first if first[name] != few[name]} == {
        "ground_truth/churn_probability.parquet", "ground_truth/drivers.parquet"}


def test_risk_shows_in_observables(large):
    """Top-decile true risk vs bottom decile: lower utilisation, more escalations, later payments,
    lower NPS, fewer answers to outreach, shorter sessions."""
    con = _db(large)
    by = {row[0]: row[1:] for row in con.execute("""
        WITH ranked AS (SELECT *, ntile(10) OVER (ORDER BY p_churn_90d) AS decile FROM churn_probability
                        WHERE as_of >= DATE '2024-04-01'),
        pick AS (SELECT * FROM ranked WHERE decile IN (1, 10) AND as_of IN ('2024-07-01', '2025-01-01', '2025-07-01')),
        active AS (SELECT p.account_id, p.as_of, count(DISTINCT e.user_id) AS n FROM pick p JOIN events e
                   ON e.account_id = p.account_id AND e.event_date >= p.as_of - 30 AND e.event_date < p.as_of
                   GROUP BY ALL),
        seats AS (SELECT p.account_id, p.as_of, max_by(s.seats, s.start_date) AS n FROM pick p JOIN subscriptions s
                  ON s.account_id = p.account_id AND s.start_date < p.as_of GROUP BY ALL),
        esc AS (SELECT p.account_id, p.as_of, count(*) AS n FROM pick p JOIN tickets t
                ON t.account_id = p.account_id AND t.escalated AND t.opened_at >= p.as_of - 90 AND t.opened_at < p.as_of
                GROUP BY ALL),
        late AS (SELECT p.account_id, p.as_of, avg((coalesce(i.paid_at, p.as_of) > i.due_at)::INT) AS share
                 FROM pick p JOIN invoices i
                 ON i.account_id = p.account_id AND i.issued_at >= p.as_of - 180 AND i.due_at < p.as_of GROUP BY ALL),
        nps AS (SELECT p.account_id, p.as_of, avg(s.nps) AS v FROM pick p JOIN surveys s
                ON s.account_id = p.account_id AND s.responded_at >= p.as_of - 365 AND s.responded_at < p.as_of
                GROUP BY ALL),
        outreach AS (SELECT p.account_id, p.as_of, avg(g.responded::INT) AS r FROM pick p JOIN engagements g
                     ON g.account_id = p.account_id AND g.occurred_at >= p.as_of - 90 AND g.occurred_at < p.as_of
                     GROUP BY ALL),
        minutes AS (SELECT p.account_id, p.as_of, sum(e.quantity) FILTER (WHERE e.event_type = 'session_minutes')
                    / sum(e.quantity) FILTER (WHERE e.event_type = 'login') AS m FROM pick p JOIN events e
                    ON e.account_id = p.account_id AND e.event_date >= p.as_of - 30 AND e.event_date < p.as_of
                    GROUP BY ALL)
        SELECT decile, avg(coalesce(active.n, 0) / seats.n), avg(coalesce(esc.n, 0)), avg(late.share), avg(nps.v),
            avg(outreach.r), avg(minutes.m)
        FROM pick JOIN seats USING (account_id, as_of) LEFT JOIN active USING (account_id, as_of)
        LEFT JOIN esc USING (account_id, as_of) LEFT JOIN late USING (account_id, as_of)
        LEFT JOIN nps USING (account_id, as_of) LEFT JOIN outreach USING (account_id, as_of)
        LEFT JOIN minutes USING (account_id, as_of) GROUP BY 1""").fetchall()}
    utilisation, escalations, late, nps, outreach, minutes = range(6)
    assert by[10][utilisation] < by[1][utilisation] - 0.1
    assert by[10][escalations] > 1.5 * by[1][escalations]
    assert by[10][late] > by[1][late] + 0.03
    assert by[10][nps] < by[1][nps] - 0.5
    assert by[10][outreach] < by[1][outreach] - 0.1
    assert by[10][minutes] < 0.75 * by[1][minutes]
