"""The canonical raw tables: which columns each has, their types, and when each value is known.

`revealed_by` is the point-in-time rule: a ticket's CSAT exists only once the ticket is closed,
an invoice's payment only once it is paid. The metric SQL hides such a value (and the date
itself) from any observation date that comes before it, so no feature can see the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["id", "string", "category", "date", "timestamp", "number", "integer", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False  # the column must exist, and (unless nullable) hold a value in every row
    nullable: bool = False
    scheduled: bool = False  # a planned date (renewal, due date) that may lie after the data end
    nonnegative: bool = False
    min: float | None = None
    max: float | None = None
    revealed_by: str | None = None  # a date column: the value is unknown before that date


@dataclass(frozen=True)
class SourceSchema:
    name: str
    columns: tuple[Column, ...]
    time_column: str | None  # the date that places a row in time (windows, leakage rule)
    key: str | None = None  # unique row id, checked for duplicates
    required: bool = False

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def date_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.type in ("date", "timestamp")]


def _c(name: str, type_: ColumnType, **kw) -> Column:
    return Column(name, type_, **kw)


SOURCE_SCHEMAS: dict[str, SourceSchema] = {
    s.name: s
    for s in (
        SourceSchema(
            "accounts",
            (
                _c("account_id", "id", required=True),
                _c("name", "string"),
                _c("segment", "category"),
                _c("industry", "category"),
                _c("region", "category"),
                _c("created_at", "date"),
                _c("csm_owner", "string"),
            ),
            time_column=None,
            key="account_id",
            required=True,
        ),
        SourceSchema(
            "subscriptions",
            (
                _c("subscription_id", "id"),
                _c("account_id", "id", required=True),
                _c("plan", "category"),
                _c("seats", "number", nonnegative=True),
                _c("mrr", "number", nonnegative=True),
                _c("term", "category"),
                _c("start_date", "date", required=True, scheduled=True),
                _c("renewal_date", "date", scheduled=True),
                _c("end_date", "date", required=True, nullable=True, scheduled=True, revealed_by="end_date"),
            ),
            time_column="start_date",
            key="subscription_id",
            required=True,
        ),
        SourceSchema(
            "users",
            (
                _c("user_id", "id", required=True),
                _c("account_id", "id", required=True),
                _c("created_at", "date", required=True),
                _c("deactivated_at", "date", scheduled=True, revealed_by="deactivated_at"),
            ),
            time_column="created_at",
            key="user_id",
        ),
        SourceSchema(
            "events",
            (
                _c("account_id", "id", required=True),
                _c("user_id", "id"),
                _c("event_date", "date", required=True),  # a timestamp is cast to its date
                _c("event_type", "category", required=True),
                _c("quantity", "number", nonnegative=True),  # absent: each row counts 1
            ),
            time_column="event_date",
            required=True,
        ),
        SourceSchema(
            "tickets",
            (
                _c("ticket_id", "id"),
                _c("account_id", "id", required=True),
                _c("opened_at", "timestamp", required=True),
                _c("closed_at", "timestamp", revealed_by="closed_at"),
                _c("priority", "category"),
                _c("topic", "category"),
                _c("escalated", "bool"),
                _c("solved_on_first_contact", "bool", revealed_by="closed_at"),
                _c("csat", "number", min=1, max=5, revealed_by="closed_at"),
            ),
            time_column="opened_at",
            key="ticket_id",
        ),
        SourceSchema(
            "invoices",
            (
                _c("invoice_id", "id"),
                _c("account_id", "id", required=True),
                _c("issued_at", "date", required=True),
                _c("due_at", "date", required=True, scheduled=True),
                _c("paid_at", "date", revealed_by="paid_at"),
                _c("reminder_sent_at", "date", revealed_by="reminder_sent_at"),
                _c("amount", "number", nonnegative=True),
            ),
            time_column="issued_at",
            key="invoice_id",
        ),
        SourceSchema(
            "surveys",
            (
                _c("survey_id", "id"),
                _c("account_id", "id", required=True),
                _c("user_id", "id"),
                _c("responded_at", "date", required=True),
                _c("nps", "number", required=True, min=0, max=10),
            ),
            time_column="responded_at",
            key="survey_id",
        ),
        SourceSchema(
            "engagements",
            (
                _c("engagement_id", "id"),
                _c("account_id", "id", required=True),
                _c("occurred_at", "date", required=True),
                _c("channel", "category"),
                _c("responded", "bool"),
            ),
            time_column="occurred_at",
            key="engagement_id",
        ),
    )
}
