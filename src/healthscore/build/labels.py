"""The churn label: which accounts are observed at each as_of, and whether each churned within
the horizon after it. One idea, one file (as the observation dates and churn listings of
"Fighting Churn with Data"), read by the raw-table builder and nothing else.
"""

from __future__ import annotations

import datetime as dt

from healthscore.config import Config


def observations_sql(config: Config, data_end: dt.date, as_of_dates: list[dt.date]) -> str:
    """Every account active at each as_of, with its label.

    Churn = the account's latest contract row (by start date) has ended: earlier rows are
    superseded by later ones (renewals, seat changes), whether or not the export closes them.
    Active at as_of = first subscription started before as_of and not churned before it.
    churned = the churn date falls in [as_of, as_of + horizon); NULL when that horizon runs past
    the data end: a "not churned" there only means "not yet", and keeping just the churns seen
    would bias the labels.
    """
    horizon = config.churn.horizon_days
    dates = ", ".join(f"(DATE '{d.isoformat()}')" for d in as_of_dates)
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
    SELECT acc.account_id, d.as_of,
           CASE WHEN d.as_of + {horizon} > DATE '{data_end.isoformat()}' THEN NULL
                ELSE coalesce(churn_date < d.as_of + {horizon}, false) END AS churned
    FROM acc, (VALUES {dates}) d(as_of)
    WHERE acc.first_start < d.as_of AND (churn_date IS NULL OR churn_date >= d.as_of)"""
