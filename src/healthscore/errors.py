"""Every error healthscore raises on purpose, and the one record of input rows it set aside.

Errors that the user can fix (a config key, a file, a column, an option) are `UserError`s: the
CLI prints their message on one line and exits with code 2. Their messages name the file, key,
column or option and the rows at fault.

Rows set aside are "rejections" everywhere, whether a raw-table check, the snapshot reader or
the scoring job set them aside: one frame with `REJECTION_COLUMNS`, and a machine-readable
`Reason` code beside the human text (as pandera's failure cases carry `SchemaErrorReason`).
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd


class UserError(ValueError):
    """Something the user can fix; the message says what and where."""


class ConfigError(UserError):
    """A config that cannot be used; the message names the file and key."""


class DataError(UserError):
    """Input data that cannot be used; the message names the table, column and rows at fault."""


class SplitError(UserError):
    """Too little labelled history for the requested training slices."""


class ModelNotFound(UserError):
    """A model reference (registry URI or exported folder) that does not resolve to a model."""


class ModelIntegrityError(UserError):
    """A saved model whose files do not match the SHA-256 manifest written when it was saved."""


class HistoryError(UserError):
    """A score history that is missing, not a history, or has no scores for what was asked."""


class ModelQualityError(RuntimeError):
    """The trained model fails the quality gate: it is logged as rejected and never registered."""


class TooManyRejected(RuntimeError):
    """More scoring rows than allowed could not be scored: the input is probably broken. Nothing
    was written; `diagnostics` is the folder holding the rejected rows and the run's metadata."""

    def __init__(self, message: str, diagnostics=None):
        super().__init__(message)
        self.diagnostics = diagnostics


class BrowserMissing(RuntimeError):
    """Chromium or ChromeDriver is not installed (scripts/install-browser.sh installs both)."""


class Reason(StrEnum):
    """Why a row was set aside: one code per reason, one spelling."""

    MISSING_ID = "missing_id"
    DUPLICATE_ID = "duplicate_id"
    MISSING_VALUE = "missing_value"
    MISSING_AS_OF = "missing_as_of"
    NOT_A_NUMBER = "not_a_number"
    NOT_A_DATE = "not_a_date"
    NOT_A_TIMESTAMP = "not_a_timestamp"
    NOT_YES_NO = "not_yes_no"
    AFTER_DATA_END = "after_data_end"
    BEFORE_DATE_FLOOR = "before_date_floor"
    AFTER_REFERENCE_DATE = "after_reference_date"
    ACCOUNT_DROPPED = "account_dropped"
    NEGATIVE = "negative"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_ACCOUNT = "unknown_account"


# table: which input ("accounts", a file name, the scoring input); row: 1-based row number there
REJECTION_COLUMNS = ["table", "row", "account_id", "column", "value", "code", "reason"]


def no_rejections() -> pd.DataFrame:
    return pd.DataFrame(columns=REJECTION_COLUMNS)


def describe_rejections(frame: pd.DataFrame, rows: int = 5) -> str:
    """The first offending rows per table and reason, for an error message."""
    lines = []
    for (table, column, reason), group in frame.groupby(["table", "column", "reason"], sort=False):
        shown = ", ".join(f"row {r} ({v!r})" for r, v in zip(group["row"].head(rows), group["value"].head(rows)))
        lines.append(f"  {table}.{column}: {reason}: {len(group)} row(s), first: {shown}")
    return "\n".join(lines)
