"""The files published with every trained model, for the two people who must trust it.

A data scientist checks that the learned model beats the classic baselines and is calibrated
(comparison, reliability, lift); a CS lead reads the learned weights (the evidence-based answer
to weights set by hand in a meeting), what the tiers mean in churn, and the limits (model card).
Figures are drawn on bare matplotlib `Figure`s (rendered by Agg on save), never through pyplot,
so nothing opens a window and a notebook's own backend is left alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure

from healthscore.io import atomic_path
from healthscore.model.training import LOGISTIC, MODEL, SCORECARD, TrainingResult
from healthscore.scores_file import TIERS

STYLES = {MODEL: {"color": "tab:blue", "marker": "o"}, LOGISTIC: {"color": "tab:orange", "marker": "s"},
          SCORECARD: {"color": "tab:gray", "marker": "^"}}
EXTRA_STYLE = {"color": "black", "marker": "x", "linestyle": "--"}  # contenders the caller brought (the demo's truth)
# comparison column: (display name, which way is better, Markdown format)
METRICS = {
    "roc_auc": ("ROC-AUC", "higher", "{:.3f}"),
    "pr_auc": ("PR-AUC", "higher", "{:.3f}"),
    "brier": ("Brier score", "lower", "{:.4f}"),
    "log_loss": ("Log loss", "lower", "{:.4f}"),
    "ece": ("Calibration error (ECE)", "lower", "{:.4f}"),
    "top_decile_lift": ("Top-decile lift", "higher", "{:.2f}"),
    "churn_rate": ("Churn rate", "", "{:.1%}"),
    "rows": ("Rows", "", "{:,.0f}"),
}
DIRECTION_TEXT = {"higher": "higher is better", "lower": "lower is better", "none": "no set direction"}
BINS = 10
SHAP_ROWS, SHAP_METRICS, SEED = 2000, 12, 7
DPI = 100
ARTEFACTS = ("scorecard.csv", "scorecard.md", "comparison.csv", "comparison.md", "calibration.png", "lift_gain.png",
             "shap_beeswarm.png", "tier_churn.png", "contenders.csv", "backtest.csv", "backtest.png", "model_card.md")
# backtest column: (display name, Markdown format)
BACKTEST = {"as_of": ("as_of", "{}"), "rows": ("Rows", "{:,}"), "roc_auc": ("ROC-AUC", "{:.3f}"), "pr_auc": ("PR-AUC", "{:.3f}"),
            "brier": ("Brier", "{:.4f}"), "ece": ("ECE", "{:.4f}"), "mean_predicted": ("Predicted churn", "{:.1%}"),
            "churn_rate": ("Observed churn", "{:.1%}"), "top_decile_lift": ("Top-decile lift", "{:.2f}"),
            "unhealthy_precision": ("Unhealthy: churn rate (precision)", "{:.1%}"),
            "unhealthy_recall": ("Churners caught by unhealthy (recall)", "{:.1%}"),
            "churn_rate_at_risk": ("At risk: churn rate", "{:.1%}"), "churn_rate_healthy": ("Healthy: churn rate", "{:.1%}"),
            "tier_flip_rate": ("Changed tier since previous date", "{:.1%}")}


def write_training_artefacts(result: TrainingResult, folder: Path, dataset_info: dict | None = None) -> dict[str, Path]:
    """Write the weights, comparison, figures and model card into `folder`; return {file name: path}.

    `dataset_info` holds facts about the input that the result does not: `origin`,
    `horizon_days`, `digest` (default: the result's own digest), and any other keys (a path, the
    full as_of range, ...), which the model card lists as given.
    """
    folder = Path(folder)
    scorecard = _scorecard_table(result)
    tiers = _tier_outcomes(result)
    info = {"digest": result.dataset_digest} | (dataset_info or {})
    paths = {name: folder / name for name in ARTEFACTS}
    _write_csv(scorecard, paths["scorecard.csv"])
    _write_text(_scorecard_markdown(scorecard), paths["scorecard.md"])
    _write_csv(_comparison_table(result), paths["comparison.csv"])
    _write_text(f"# Model vs baselines on the test slice\n\n{_comparison_markdown(result)}\n", paths["comparison.md"])
    _save(_calibration_figure(result), paths["calibration.png"])
    _save(_lift_gain_figure(result), paths["lift_gain.png"])
    _save(_beeswarm_figure(result), paths["shap_beeswarm.png"])
    _save(_tier_figure(tiers), paths["tier_churn.png"])
    _write_csv(result.selection, paths["contenders.csv"])
    _write_csv(result.backtest.figures, paths["backtest.csv"])
    _save(_backtest_figure(result.backtest.figures), paths["backtest.png"])
    _write_text(_model_card(result, scorecard, tiers, info), paths["model_card.md"])
    return paths


# --- tables ---------------------------------------------------------------------------------------
def _scorecard_table(result: TrainingResult) -> pd.DataFrame:
    weights = result.scorecard.sort_values("weight_pct", ascending=False, kind="stable").reset_index(drop=True)
    return pd.DataFrame({
        "rank": np.arange(1, len(weights) + 1),
        "label": weights["label"],
        "code": weights["metric"],
        "family": weights["family"],
        "good_direction": weights["good_direction"],
        "weight_pct": _rounded_to_total(weights["weight_pct"].to_numpy()),
    })


def _rounded_to_total(weights: np.ndarray, decimals: int = 1) -> np.ndarray:
    """Round with the largest-remainder method: a published scorecard must add up to 100 exactly."""
    scale = 10**decimals
    raw = weights * scale
    out = np.floor(raw)
    short = int(round(raw.sum() - out.sum()))
    out[np.argsort(out - raw, kind="stable")[:short]] += 1
    return out / scale


def _comparison_table(result: TrainingResult) -> pd.DataFrame:
    """Counts as integers, everything else to 4 decimals: enough to rank, not false precision."""
    table = result.comparison.copy()
    counts = [c for c in table if c == "rows" or c.startswith("accounts_")]
    table[counts] = table[counts].round().astype("Int64")
    rest = table.columns.difference(counts)
    table[rest] = table[rest].round(4)
    table.index.name = "contender"
    return table


def _comparison_markdown(result: TrainingResult) -> str:
    """Metrics as rows and contenders side by side: narrow enough to read in any viewer."""
    labels = result.model.tiers_.labels
    metrics = dict(METRICS)
    for tier in TIERS:
        metrics[f"churn_rate_{tier}"] = (f"Churn rate: {labels[tier]}", "", "{:.1%}")
        metrics[f"accounts_{tier}"] = (f"Rows: {labels[tier]}", "", "{:,.0f}")
    rows = []
    for code, (name, better, fmt) in metrics.items():
        if code not in result.comparison:
            continue
        row = {"Metric": name, "Better": better}
        for contender, value in result.comparison[code].items():
            row[result.labels[contender]] = "n/a" if pd.isna(value) else fmt.format(value)
        rows.append(row)
    return _markdown(pd.DataFrame(rows))


def _tier_outcomes(result: TrainingResult) -> pd.DataFrame:
    """The evaluated model's frozen tiers on the test slice: how many rows fell in each and how many churned."""
    tiers = result.evaluated.tiers_
    assigned = pd.Series(tiers.assign(result.test[MODEL].to_numpy()), index=result.test.index)
    churned = result.test["churned"].astype(float)
    out = pd.DataFrame({
        "label": [tiers.labels[t] for t in TIERS],
        "color": [tiers.colors[t] for t in TIERS],
        "rows": [int((assigned == t).sum()) for t in TIERS],
        "churned": [int(churned[assigned == t].sum()) for t in TIERS],
    }, index=list(TIERS))
    out["churn_rate"] = out["churned"] / out["rows"].where(out["rows"] > 0)
    return out


def _markdown(frame: pd.DataFrame) -> str:
    """A pipe table (pandas' to_markdown needs tabulate, not a dependency); numbers right-aligned."""
    cells = frame.map(lambda v: "" if pd.isna(v) else str(v).replace("|", "\\|"))
    numeric = cells.apply(lambda col: col.str.fullmatch(r"[-+]?[\d,.]+%?|n/a").all())
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "|".join("---:" if numeric[c] else "---" for c in cells) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def _scorecard_markdown(scorecard: pd.DataFrame) -> str:
    families = scorecard.groupby("family").agg(metrics=("code", "size"), weight_pct=("weight_pct", "sum"))
    families = families.sort_values("weight_pct", ascending=False, kind="stable").reset_index()
    return (
        "# Learned metric weights\n\n"
        f"{_WEIGHTS_HOW_TO_READ}\n\n"
        f"{_markdown(_weights_display(scorecard))}\n\n"
        "## By family\n\n"
        + _markdown(pd.DataFrame({
            "Family": families["family"],
            "Metrics": families["metrics"],
            "Weight %": families["weight_pct"].map("{:.1f}".format),
        }))
        + "\n"
    )


_WEIGHTS_HOW_TO_READ = (
    "How to read it: a metric's weight is its share of how much, on average, it moves an account's "
    "churn risk in the model (mean |SHAP| on the test slice), so the weights add up to 100. They play "
    'the part of hand-set scorecard weights ("escalations x1.25, surveys x0.85"), but are learned from '
    "which accounts churned. A weight says how much a metric matters, not which way: the direction "
    "column says which values are healthy. Weights show association, not cause."
)


def _weights_display(scorecard: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Rank": scorecard["rank"],
        "Metric": scorecard["label"],
        "Code": scorecard["code"].map("`{}`".format),
        "Family": scorecard["family"],
        "Good direction": scorecard["good_direction"].map(DIRECTION_TEXT),
        "Weight %": scorecard["weight_pct"].map("{:.1f}".format),
    })


# --- figures --------------------------------------------------------------------------------------
def _equal_mass_bins(y, p, bins: int = BINS) -> pd.DataFrame:
    """Rows ordered by predicted risk (lowest first) cut into equal-count bins, as the published
    ECE does, so the reliability plot and the decile lift show what the comparison table measures."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    groups = np.array_split(np.argsort(p, kind="stable"), bins)
    return pd.DataFrame({"predicted": [p[g].mean() for g in groups], "observed": [y[g].mean() for g in groups]})


def _calibration_figure(result: TrainingResult) -> Figure:
    fig = Figure(figsize=(6.5, 6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    y = result.test["churned"]
    top = 0.0
    for name in result.comparison.index:
        bins = _equal_mass_bins(y, result.test[name])
        top = max(top, bins.to_numpy().max())
        ece = result.comparison.loc[name, "ece"]
        ax.plot(bins["predicted"], bins["observed"], label=f"{result.labels[name]} (ECE {ece:.3f})", **STYLES.get(name, EXTRA_STYLE))
    top = min(1.0, 1.05 * top)
    ax.plot([0, top], [0, top], color="lightgray", linestyle=":", label="Perfect calibration")
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal",
           title=f"Calibration on the test slice ({BINS} equal-size bins)",
           xlabel="Predicted churn probability (bin mean)", ylabel="Observed churn rate")
    ax.legend(loc="upper left", fontsize=9)
    return fig


def _lift_gain_figure(result: TrainingResult) -> Figure:
    fig = Figure(figsize=(12, 5), dpi=DPI, layout="constrained")
    gain, lift = fig.subplots(1, 2)
    y = result.test["churned"].to_numpy(dtype=float)
    names = list(result.comparison.index)
    width = 0.8 / len(names)
    deciles = np.arange(1, BINS + 1)
    for i, name in enumerate(names):
        style = STYLES.get(name, EXTRA_STYLE)
        p = result.test[name].to_numpy(dtype=float)
        caught = np.r_[0, np.cumsum(y[np.argsort(-p, kind="stable")])] / y.sum()
        gain.plot(np.linspace(0, 1, len(caught)), caught, label=result.labels[name], color=style["color"],
                  linestyle=style.get("linestyle", "-"))
        by_decile = _equal_mass_bins(y, p)["observed"].to_numpy()[::-1] / y.mean()
        lift.bar(deciles + (i - (len(names) - 1) / 2) * width, by_decile, width, label=result.labels[name], color=style["color"])
    gain.plot([0, 1], [0, 1], color="lightgray", linestyle=":", label="Random order")
    gain.set(xlim=(0, 1), ylim=(0, 1), title="Cumulative gain: churners caught by contacting the riskiest first",
             xlabel="Share of accounts contacted (riskiest first)", ylabel="Share of churners caught")
    gain.legend(loc="lower right", fontsize=9)
    lift.axhline(1, color="lightgray", linestyle=":", label="Random order")
    lift.set(xticks=deciles, title="Lift by risk decile (1 = riskiest 10%)",
             xlabel="Risk decile", ylabel="Churn rate / overall churn rate")
    lift.legend(fontsize=9)
    return fig


def _beeswarm_figure(result: TrainingResult) -> Figure:
    """SHAP on a fixed-seed sample: the spread behind each learned weight, and which values raise risk."""
    model = result.model
    codes = [f.code for f in model.features]
    sample = result.test.sample(n=min(SHAP_ROWS, len(result.test)), random_state=SEED)
    X = model.matrix(sample[codes])
    values = model.contributions(sample[codes])[:, :-1]
    top = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:SHAP_METRICS]
    labels = [model.features[i].label for i in top]
    explanation = shap.Explanation(values=values[:, top], data=X.iloc[:, top].set_axis(labels, axis=1), feature_names=labels)
    fig = Figure(figsize=(9, 2.5 + 0.45 * len(top)), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    shap.plots.beeswarm(explanation, max_display=len(top), ax=ax, show=False, plot_size=None)
    ax.set_title(f"What drives churn risk: top {len(top)} metrics by mean |SHAP| (test slice, {len(sample):,} rows)")
    ax.set_xlabel("SHAP value: effect on churn log-odds (right = higher risk); grey = categorical")
    return fig


def _backtest_figure(backtest: pd.DataFrame) -> Figure:
    """Per backtest date: ROC-AUC, and predicted vs observed churn with the unhealthy tier's catch."""
    fig = Figure(figsize=(10, 4), dpi=DPI, layout="constrained")
    rank, level = fig.subplots(1, 2)
    if backtest.empty:
        for ax in (rank, level):
            ax.text(0.5, 0.5, "no backtest: the data has no observation dates", ha="center", va="center")
            ax.set_axis_off()
        return fig
    dates = backtest["as_of"].astype(str)
    rank.plot(dates, backtest["roc_auc"], marker="o", label="ROC-AUC")
    rank.plot(dates, backtest["unhealthy_recall"], marker="s", label="Churners caught by the unhealthy tier")
    rank.set(ylim=(0, 1), title="Ranking on each date (model trained only on earlier data)", xlabel="as_of")
    rank.legend(loc="lower left", fontsize=9)
    level.plot(dates, backtest["mean_predicted"], marker="o", label="Predicted churn (mean)")
    level.plot(dates, backtest["churn_rate"], marker="x", linestyle="--", color="black", label="Observed churn")
    level.set(ylim=(0, 1.3 * max(backtest["churn_rate"].max(), backtest["mean_predicted"].max())),
              title="Calibration in the large on each date", xlabel="as_of")
    level.yaxis.set_major_formatter(lambda v, _pos: f"{v:.1%}")
    level.legend(loc="lower left", fontsize=9)
    return fig


def backtest_markdown(backtest: pd.DataFrame) -> str:
    if backtest.empty:
        return "No backtest: the data has no observation dates to roll the origin over (a one-date snapshot)."
    table = pd.DataFrame({name: [("n/a" if pd.isna(v) else fmt.format(v)) for v in backtest[code]]
                          for code, (name, fmt) in BACKTEST.items()})
    return _markdown(table)


def _tier_figure(tiers: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(6.5, 4.5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    rate = tiers["churn_rate"].fillna(0)
    ax.bar(tiers["label"], rate, color=tiers["color"], edgecolor="black")
    overall = tiers["churned"].sum() / tiers["rows"].sum()
    ax.axhline(overall, color="black", linestyle=":", zorder=0, label=f"All test rows: {overall:.1%}")
    for x, (tier, row) in enumerate(tiers.iterrows()):
        text = "no rows" if not row["rows"] else f"{row['churn_rate']:.1%}\n{row['churned']:,} of {row['rows']:,} churned"
        ax.annotate(text, (x, rate[tier]), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.set_ylim(0, 1.25 * max(rate.max(), overall) or 1)
    ax.set(title="Observed churn by health tier (model, test slice)", xlabel="Health tier", ylabel="Observed churn rate")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.legend(loc="upper left", fontsize=9)
    return fig


# --- model card -----------------------------------------------------------------------------------
def _model_card(result: TrainingResult, scorecard: pd.DataFrame, tiers: pd.DataFrame, info: dict) -> str:
    model, params, cmp = result.model, result.model.params, result.comparison
    cut = model.tiers_
    horizon = f"{info['horizon_days']} days" if info.get("horizon_days") else "the label horizon"
    categorical = sum(f.kind == "categorical" for f in model.features)
    baselines = " and ".join(f"{cmp.loc[n, 'roc_auc']:.3f} for the {result.labels[n].lower()}" for n in (LOGISTIC, SCORECARD) if n in cmp.index)
    summary, check = result.split_summary, result.calibration_check
    dated = summary["first_as_of"].notna().any()
    slices = pd.DataFrame({
        "Slice": summary.index,
        "Rows": summary["rows"].map("{:,}".format),
        "Churn rate": summary["churn_rate"].map("{:.1%}".format),
    } | ({"First as_of": summary["first_as_of"], "Last as_of": summary["last_as_of"]} if dated else {}))
    known = {"digest", "origin", "horizon_days"}
    extra = "".join(f"- {key}: {value}\n" for key, value in info.items() if key not in known)
    tier_rows = pd.DataFrame({
        "Tier": tiers["label"],
        "Colour": tiers["color"],
        "Churn probability": [f"below {_prob(cut.healthy_below)}", f"{_prob(cut.healthy_below)} up to {_prob(cut.unhealthy_from)}",
                              f"{_prob(cut.unhealthy_from)} or more"],
        "Test rows": tiers["rows"].map("{:,}".format),
        "Observed churn": tiers["churn_rate"].map(lambda r: "n/a" if pd.isna(r) else f"{r:.1%}"),
    })
    policy = model.tier_policy
    tier_rule = (
        f"The best {policy.healthy_share:.0%} of the training population are healthy and the worst "
        f"{policy.unhealthy_share:.0%} unhealthy; the cut-offs are then frozen as churn probabilities, so a "
        "worsening customer base shows as more red."
        if policy.policy == "quantile" else "The cut-offs are fixed churn probabilities set in the config."
    )
    return f"""# Model card: {result.config.registered_name}

## Model
- {_family_text(result)} classifier of churn within {horizon} of an as_of date, on {len(model.features)} metrics ({categorical} categorical).
- Chosen among {len(result.selection)} contenders by out-of-fold log loss on the development rows ({result.folds} cross-fitting folds{", date blocks with the purge gap" if dated else ", stratified by account"}); `contenders.csv` has them all:

{_contenders_markdown(result.selection)}

- Shipped: refitted on every labelled row ({summary.loc["shipped", "rows"]:,}){f" with {model.best_iteration_} boosting rounds (the folds' mean early-stopping round)" if model.family == "lightgbm" else ""}. The test figures below are those of the same settings fitted on the development rows only.
- Probability calibration: {_calibration_text(model.calibrator_, params.calibration)}
- Monotone constraints: {"on (a metric with a good direction can only move risk the expected way)" if params.monotone else "off"}.
{_directions_text(result.directions)}

## Intended use
Weekly or daily scoring of every active account's churn risk within {horizon}, shown as a 0-100 health score
and a green / yellow / red tier with per-metric reasons. Read by customer-success managers (whom to call and
why), CS leads (renewal forecasts, revenue at risk, portfolio health) and the data team that maintains it.
It ranks and sizes risk; it does not decide on its own what to do about an account.

## Data
- Dataset digest: `{info["digest"]}`
- Origin: {info.get("origin", "not recorded")}
- Label: churned within {horizon} of as_of
- as_of range used: {f"{summary['first_as_of'].min()} to {summary['last_as_of'].max()}" if dated else "no observation dates (one snapshot, split by account)"}
{extra}
{_markdown(slices)}

## Metrics on the test slice
The model's ROC-AUC is {cmp.loc[MODEL, "roc_auc"]:.3f}, against {baselines or "no baseline"}.

{_comparison_markdown(result)}

Calibration in the large on the test slice: {check["predicted"]:.2%} churn predicted, {check["observed"]:.2%} observed over {check["rows"]:,.0f} rows (z = {check["z"]:+.2f}; {"within" if abs(check["z"]) <= 2 else "outside"} the +-2 a correct level would show).

See `comparison.csv`, `calibration.png` and `lift_gain.png`.

## Backtest: how good is this score
{_BACKTEST_HOW}

{backtest_markdown(result.backtest.figures)}

See `backtest.csv` and `backtest.png`.

## Health tiers
{tier_rule}

{_markdown(tier_rows)}

See `tier_churn.png`.

## The health score
{_scale_text(model, horizon)}

## Top learned weights

{_markdown(_weights_display(scorecard.head(10)))}

All weights, by family: `scorecard.md`; their spread per account: `shap_beeswarm.png`.

## Limits
- Calibrated on out-of-fold predictions of the labelled history: probabilities hold for accounts like those in it; recalibrate when the base changes.
- The weights and reasons are associations learned from history, not causes: raising a metric does not by itself lower churn.
- Drift: product changes, pricing or a new customer mix change what predicts churn; watch calibration and retrain.
- Segments, plans or sizes not seen in training get a score, but one with no evidence behind it.
- Churn causes the data cannot see (budget cuts, acquisitions, a champion leaving) are invisible to the model.
"""


def _scale_text(model, horizon: str) -> str:
    """How the score reads: linear in the log-odds, anchored on the tiers, with its probabilities."""
    scale = model.tiers_.scale
    table = model.score_table()
    rows = pd.DataFrame({"Health score": table["health_score"].map("{:.0f}".format),
                         f"Churn probability within {horizon}": table["churn_probability"].map(_prob)})
    return (f"0-100 and linear in the model's log-odds, like a credit scorecard: {scale.points_to_double_odds:.1f} points fewer "
            f"double the odds of churning. The tier cut-offs land on {scale.unhealthy_below:g} (unhealthy below) and "
            f"{scale.healthy_from:g} (healthy from) for every model, and each metric's points are its exact log-odds "
            f"contribution times {scale.factor:.2f}, so they add up to the score; scores beyond 0 and 100 are clipped.\n\n"
            f"{_markdown(rows)}")


_BACKTEST_HOW = (
    "For each of the latest labelled dates, the chosen family and settings were fitted and calibrated only on rows whose "
    "label horizon had closed before that date, then scored that date's accounts: what this score would have told a "
    "CSM each month, and what happened. Tiers are each date's model's own; \"changed tier\" counts accounts scored on "
    "both consecutive dates."
)


def _family_text(result: TrainingResult) -> str:
    model = result.model
    if model.family == "logistic":
        held = f"; held at zero against their good direction: {', '.join(model.linear_.held)}" if model.linear_.held else ""
        return f"Regularised logistic regression (L2, C={model.linear_.C:g}; log1p on skewed counts, one-hot categories{held})"
    p = model.params
    return (f"LightGBM ({p.num_leaves} leaves, at least {p.min_data_in_leaf} rows per leaf, L2 {p.lambda_l2:g}, "
            f"learning rate {p.learning_rate})")


def _contenders_markdown(selection: pd.DataFrame) -> str:
    return _markdown(pd.DataFrame({
        "Contender": selection.index,
        "Out-of-fold log loss": selection["oof_log_loss"].map("{:.4f}".format),
        "Out-of-fold ROC-AUC": selection["oof_roc_auc"].map("{:.3f}".format),
        "Rounds": selection["rounds"].astype(str),
        "Chosen": selection["chosen"].map({True: "yes", False: ""}),
    }))


def _calibration_text(calibrator, setting: str) -> str:
    scores = ", ".join(f"{m} {v:.4f}" for m, v in calibrator.cv_log_loss.items())
    how = f"chosen by cross-validated log loss ({scores})" if scores else f"as set (`{setting}`)"
    return (f"{calibrator.method}, {how}, fitted on {calibrator.rows:,} out-of-fold predictions. Bounded to "
            f"[{calibrator.low:.2g}, {calibrator.high:.6g}]: 0.5 / (rows + 1), what the data would say had none of "
            "its rows churned, so no account is ever called certain.")


def _directions_text(directions: pd.DataFrame) -> str:
    inferred = directions[directions["source"] != "stated"]
    if inferred.empty:
        return ""
    rows = pd.DataFrame({"Metric": inferred["label"], "Spearman rho": inferred["spearman_rho"].map("{:+.3f}".format),
                         "Good direction": inferred["good_direction"].map(DIRECTION_TEXT), "Source": inferred["source"]})
    return ("- Good directions not stated by the data, inferred from the development rows (overridable in the settings, "
            f"`model.directions`):\n\n{_markdown(rows)}\n")


def _prob(p: float) -> str:
    return f"{p:.4f} ({p:.1%})"


# --- atomic output --------------------------------------------------------------------------------
def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=frame.index.name is not None)


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
