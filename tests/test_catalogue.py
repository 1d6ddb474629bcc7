"""The default catalogue: consistent, documented, and covering every metric family of the domain."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from healthscore.catalogue import Metric, MetricCatalogue, load_default_catalogue, markdown_table

FAMILIES = {"usage_decline", "low_licence_utilisation", "poor_onboarding", "support_escalations",
            "late_payments", "low_nps", "disengagement", "contract_plan"}


def test_default_catalogue_covers_every_driver_family_and_is_documented():
    catalogue = load_default_catalogue()
    assert {m.family for m in catalogue} == FAMILIES
    doc = (Path(__file__).parents[1] / "docs" / "METRICS.md").read_text()
    assert doc.endswith(markdown_table(catalogue)), "docs/METRICS.md is stale: regenerate it with `healthscore metrics --markdown`"


def test_references_and_cycles_are_checked():
    base = {"label": "x", "family": "f"}
    with pytest.raises(ValidationError, match="refers to unknown metric"):
        MetricCatalogue(metrics=(Metric(code="r", aggregation="ratio", numerator="a", denominator="b", **base),))
    a = Metric(code="a", aggregation="expression", expression="b + 1", inputs=["b"], **base)
    b = Metric(code="b", aggregation="expression", expression="a + 1", inputs=["a"], **base)
    with pytest.raises(ValidationError, match="cycle: a -> b -> a"):
        MetricCatalogue(metrics=(a, b))


def test_metrics_needing_missing_sources_or_columns_are_left_out_with_reasons():
    catalogue = load_default_catalogue()
    columns = {"accounts": {"account_id", "segment"}, "subscriptions": {"account_id", "start_date", "end_date", "seats"},
               "events": {"account_id", "event_date", "event_type", "quantity"}}
    kept, notes = catalogue.available(columns)
    codes = {m.code for m in kept}
    assert "logins_30d" in codes and "seats" in codes
    assert "active_users_30d" not in codes  # events have no user_id
    assert "licence_utilisation_30d" not in codes  # needs active_users_30d
    assert "metric licence_utilisation_30d left out: needs metric(s) ['active_users_30d'] that are left out" in notes
    assert "metric tickets_90d left out: source 'tickets' not configured" in notes
    assert "metric mrr left out: subscriptions has no column(s) ['mrr']" in notes


def test_config_reference_is_generated_from_the_typed_config():
    from healthscore.config import Config, reference_markdown

    doc = (Path(__file__).parents[1] / "docs" / "CONFIG.md").read_text()
    assert doc == reference_markdown(), "docs/CONFIG.md is stale: regenerate it with `healthscore config-reference`"
    for key in ("data_end", "churn.horizon_months", "metrics.unusable", "model.split.test_dates", "sources.<name>.extra_columns"):
        assert f"| `{key}` |" in doc
    assert all(f"| `{name}` |" in doc for name in Config.model_fields)
