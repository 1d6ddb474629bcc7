"""The churn label: which accounts are observed at each as_of, and whether each churned within
the horizon after it. One idea, one file (as the observation dates and churn listings of
"Fighting Churn with Data"), read by the raw-table builder and nothing else.

Labels cannot silently go wrong:
- a label exists only where the subscriptions can show churn over its whole window: up to the
  data end, and never past where the subscriptions export stops (`label_end`): an export that
  stops earlier than the events shows open contracts as ended, which is not churn;
- the window of an as_of is [as_of, horizon end) with the end in calendar steps of the schedule
  (`churn.horizon_months` / `horizon_steps`), so consecutive windows tile the schedule and every
  churn falls in the same number of windows, or in days (`horizon_days`);
- an as_of whose churn rate is far outside the others', or where nothing churns though the others
  churn, is an error naming the date and the likely cause.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics

import duckdb

from healthscore.build.sources import load_sources
from healthscore.config import Config
from healthscore.errors import DataError

MIN_ROWS = 30  # a date with fewer labelled accounts is not judged
SLACK_DAYS = 7  # subscriptions whose latest record is this close to the data end reach it


def label_end(con: duckdb.DuckDBPyConnection, data_end: dt.date, notes: list[str]) -> dt.date:
    """The first day the labels may not reach: the data end, or where the subscriptions stop
    (`subscriptions_end`) when that is earlier, with a note."""
    end, why = subscriptions_end(con, "src_subscriptions", "start_date", "end_date", data_end)
    if end < data_end:
        notes.append(f"labels stop at {end}: {why} (set data_end to {end} or export the later subscriptions)")
    return min(end, data_end)


def subscriptions_end(con: duckdb.DuckDBPyConnection, relation: str, start: str, end: str, data_end: dt.date) -> tuple[dt.date, str]:
    """The day after the subscriptions export stops, and why, unless that is within `SLACK_DAYS`
    of the data end (then the data end). Where accounts have renewal rows, a renewal after the
    latest start would not be in the export, so it ends there; with one row per contract, at the
    latest start or end it records."""
    latest_start, latest_any, renewal_rows = con.execute(
        f"""SELECT max(CAST({start} AS DATE)), greatest(max(CAST({start} AS DATE)), max(CAST({end} AS DATE)) FILTER (WHERE {end} < ?)),
                   count(*) > count(DISTINCT account_id)
            FROM {relation} WHERE CAST({start} AS DATE) <= ?""", [data_end, data_end]).fetchone()
    latest = latest_start if renewal_rows else latest_any
    knowable = latest + dt.timedelta(days=1) if latest else data_end
    if (data_end - knowable).days <= SLACK_DAYS:
        return data_end, ""
    what = "start" if renewal_rows else "date recorded"
    return knowable, (f"the subscriptions' latest {what} is {latest}, {(data_end - knowable).days} days before the data end "
                      f"({data_end}); churn after it cannot be told from an export that stops there")


def horizon_notes(config: Config) -> list[str]:
    if config.churn.horizon_days and config.schedule.every == "month":
        return [f"churn.horizon_days {config.churn.horizon_days} does not tile the monthly schedule: a churn on the 31st "
                "can fall in no window and one on the 1st in one window too many; churn.horizon_months does not"]
    return []


def observations_sql(config: Config, end: dt.date, as_of_dates: list[dt.date]) -> str:
    """Every account active at each as_of, with its label.

    Churn = the account's latest contract row (by start date) has ended: earlier rows are
    superseded by later ones (renewals, seat changes), whether or not the export closes them.
    Active at as_of = first subscription started before as_of and not churned before it.
    churned = the churn date falls in [as_of, horizon end); NULL when that window runs past `end`
    (`label_end`): a "not churned" there only means "not yet", and keeping just the churns seen
    would bias the labels.
    """
    horizon = config.horizon
    dates = ", ".join(f"(DATE '{d.isoformat()}', DATE '{horizon.end(d).isoformat()}')" for d in as_of_dates)
    return f"""
    CREATE TABLE observations AS
    WITH latest AS (  -- on a tie of start dates an open row wins: not churned
        SELECT account_id, end_date AS churn_date FROM src_subscriptions
        QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY start_date DESC, end_date DESC NULLS FIRST) = 1
    ),
    acc AS (
        SELECT account_id, min(start_date) AS first_start, any_value(churn_date) AS churn_date
        FROM src_subscriptions JOIN latest USING (account_id) GROUP BY account_id
    )
    SELECT acc.account_id, d.as_of, d.horizon_end, acc.churn_date,
           CASE WHEN d.horizon_end > DATE '{end.isoformat()}' THEN NULL
                ELSE coalesce(churn_date < d.horizon_end, false) END AS churned
    FROM acc, (VALUES {dates}) d(as_of, horizon_end)
    WHERE acc.first_start < d.as_of AND (churn_date IS NULL OR churn_date >= d.as_of)"""


def churn_outcomes(config: Config, as_of_dates: list[dt.date]) -> list[tuple[str, dt.date, bool | None]]:
    """(account_id, as_of, churned) of every account active at each date: the health score's label,
    None while its window runs past what the subscriptions can show."""
    with duckdb.connect() as con:
        end = label_end(con, load_sources(config, con).data_end, [])
        con.execute(observations_sql(config, end, sorted(set(as_of_dates))))
        return con.execute("SELECT account_id, as_of, churned FROM observations").fetchall()


def check_label_rates(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Raise DataError on an as_of whose churn rate no sampling noise explains against the median
    of the other dates: far above it (an export cut-off inside its window), or zero where ten or
    more churns were expected. Outliers above are judged first: they inflate the others' rate."""
    rows = con.execute("""SELECT as_of, any_value(horizon_end), count(churned), count(*) FILTER (WHERE churned)
                          FROM observations GROUP BY as_of HAVING count(churned) > 0 ORDER BY as_of""").fetchall()
    if len(rows) < 3 or not config.churn.check_label_rates:
        return
    rates = [c / n for _, _, n, c in rows]
    judged = [(r, statistics.median(rates[:i] + rates[i + 1:])) for i, r in enumerate(rows) if r[2] >= MIN_ROWS]
    advice = "; churn.check_label_rates: false accepts these labels"
    for (as_of, end, n, churns), other in judged:
        rate = churns / n
        if rate > max(3 * other, other + 0.1) and rate - other > 4 * math.sqrt(max(other * (1 - other), 1 / n) / n):
            day, on_day = con.execute("""SELECT churn_date, count(*) FROM observations WHERE as_of = ? AND churned
                                         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""", [as_of]).fetchone()
            raise DataError(f"{_rates(as_of, end, n, rate, other)}; {on_day:,} of the {churns:,} churns end on {day}: the "
                            f"subscriptions probably stop there (an export cut-off, not churn): set data_end to {day} or "
                            f"earlier, or export the later subscriptions{advice}")
    for (as_of, end, n, churns), other in judged:
        if churns == 0 and n * other >= 10:
            raise DataError(f"{_rates(as_of, end, n, 0.0, other)}; about {n * other:.0f} were expected: the subscriptions "
                            f"probably do not record the end of contracts in that window (check end_date after {as_of}){advice}")


def _rates(as_of: dt.date, end: dt.date, n: int, rate: float, other: float) -> str:
    return f"labels at as_of {as_of}: {rate:.1%} of {n:,} accounts churn in [{as_of}, {end}) against {other:.1%} (median) on the other dates"
