"""The optional `<table>.columns.yaml` beside a snapshot table: labels, formats, directions, families."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from healthscore.build.snapshot import build_snapshot_dataset
from healthscore.errors import ConfigError


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    path = tmp_path / "customers.csv"
    pd.DataFrame({"customerID": [f"C{i}" for i in range(n)], "MonthlyCharges": rng.uniform(20, 120, n).round(2),
                  "Tenure": rng.integers(0, 72, n), "Contract": rng.choice(["Month-to-month", "One year"], n),
                  "Churn": rng.choice(["Yes", "No"], n)}).to_csv(path, index=False)
    return path


def test_hints_set_label_format_direction_and_family(table):
    (table.parent / "customers.csv.columns.yaml").write_text(
        "columns:\n"
        "  MonthlyCharges: {label: Monthly charges, format: currency, family: commercial}\n"
        "  tenure: {direction: higher, family: tenure}\n")  # by the feature code as well as the table's name
    data = build_snapshot_dataset(table, "customerID", "Churn")
    f = {x.code: x for x in data.spec.features}
    assert (f["monthly_charges"].label, f["monthly_charges"].format, f["monthly_charges"].family) == ("Monthly charges", "currency", "commercial")
    assert f["monthly_charges"].good_direction == "none"  # not stated: left to training
    assert (f["tenure"].good_direction, f["tenure"].family) == ("higher", "tenure")
    assert f["contract"].family == "other"
    assert any("from customers.csv.columns.yaml" in n for n in data.spec.notes)


def test_bad_hints_fail_in_one_line_naming_the_file_and_column(table):
    hints = table.parent / "customers.csv.columns.yaml"
    hints.write_text("columns:\n  Seats: {direction: higher}\n")
    with pytest.raises(ConfigError, match=r"customers.csv.columns.yaml: column\(s\) \['Seats'\] are not features"):
        build_snapshot_dataset(table, "customerID", "Churn")
    hints.write_text("columns:\n  Tenure: {direction: up}\n")
    with pytest.raises(ConfigError, match=r"customers.csv.columns.yaml: columns.Tenure.direction: Input should be"):
        build_snapshot_dataset(table, "customerID", "Churn")
