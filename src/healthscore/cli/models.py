"""`healthscore train` and `promote`: the data scientist's loop."""

from __future__ import annotations

from typing import Annotated

import typer

from healthscore.cli.console import console, handled, print_frame
from healthscore.cli.options import (
    AsOfOpt,
    ConfigOpt,
    DatasetOpt,
    DateFloorOpt,
    IdOpt,
    LabelOpt,
    Mixed,
    MixedOpt,
    NameOpt,
    ReferenceDateOpt,
    TableOpt,
)
from healthscore.defaults import DATE_FLOOR

app = typer.Typer()


def _dataset_and_settings(config, dataset, table, id_column, label_column, as_of_column, reference_date, date_floor, mixed):
    from healthscore.config import load_config
    from healthscore.pipeline import load_dataset
    from healthscore.settings import TrainingConfig

    cfg = load_config(config) if config else None
    with console.status("building the dataset") as status:
        data = load_dataset(cfg, dataset, table, id_column, label_column, as_of_column, lambda m: status.update(m),
                            reference_date and reference_date.date(), date_floor.date(), mixed.value)
    if data.spec.reference_date:
        console.print(f"reference date {data.spec.reference_date}: the table's dates count days back from it")
    return data, cfg, (cfg.model if cfg else TrainingConfig())


@app.command()
@handled
def train(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = "churned",
    as_of_column: AsOfOpt = None,
    reference_date: ReferenceDateOpt = None,
    date_floor: DateFloorOpt = str(DATE_FLOOR),
    mixed_columns: MixedOpt = Mixed.error,
    name: NameOpt = None,
) -> None:
    """Learn the metric weights from churned-vs-retained history, compare with baselines, and
    register the model as the challenger if it passes the quality gate."""
    from healthscore.demo import truth_contender
    from healthscore.model.training import LOGISTIC, MODEL, SCORECARD
    from healthscore.pipeline import train_and_register

    data, cfg, settings = _dataset_and_settings(config, dataset, table, id_column, label_column, as_of_column, reference_date,
                                                   date_floor, mixed_columns)
    oracle = truth_contender(cfg.base_dir if cfg else None, dataset.parent if dataset else None)
    with console.status("training and logging to MLflow"):
        outcome = train_and_register(data, settings, name, [oracle] if oracle else [])
    result = outcome.result
    print_frame(result.split_summary, "Slices: development (cross-fitted), test (unseen), shipped (every labelled row)")
    print_frame(result.selection, f"Contenders, {result.folds}-fold out-of-fold (lowest log loss ships)")
    shown = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift"] + [
        c for c in result.comparison.columns if c.startswith(("churn_rate_", "accounts_"))]
    short = {MODEL: "model", LOGISTIC: "logistic", SCORECARD: "scorecard"}
    print_frame(result.comparison[shown].rename(index=short).T, "Test slice: model vs baselines")
    print_frame(result.scorecard.set_index("label")[["family", "good_direction", "weight_pct"]].head(12),
                "Learned weights (share of mean |SHAP|, %)", "{:.1f}")
    if len(result.backtest.figures):
        shown_bt = ["as_of", "rows", "roc_auc", "ece", "mean_predicted", "churn_rate", "unhealthy_precision", "unhealthy_recall",
                    "tier_flip_rate"]
        print_frame(result.backtest.figures[shown_bt].set_index("as_of"), "Backtest: each date scored by a model trained only before it")
    if not outcome.passed:
        console.print(f"[bold red]model rejected:[/] {outcome.rejection}")
        console.print(f"Logged as rejected run {outcome.rejected_run_id}; not registered, so it cannot be promoted.")
        raise typer.Exit(code=1)
    registered = outcome.registered
    console.print(f"Registered [bold]{registered.name}[/] version {registered.version} as 'challenger' "
                  f"(run {registered.run_id}); exported to {registered.export_path}")


@app.command()
@handled
def promote(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = "churned",
    as_of_column: AsOfOpt = None,
    reference_date: ReferenceDateOpt = None,
    date_floor: DateFloorOpt = str(DATE_FLOOR),
    mixed_columns: MixedOpt = Mixed.error,
    name: NameOpt = None,
    force: Annotated[bool, typer.Option(help="Promote even if the challenger is worse or there is no unseen data to judge it on.")] = False,
) -> None:
    """Move the 'champion' alias to the challenger if it is not worse on labelled dates after both
    models' training data (a registry without a champion takes its challenger as the first one)."""
    from healthscore.pipeline import promote as run_promotion

    data, _, settings = _dataset_and_settings(config, dataset, table, id_column, label_column, as_of_column, reference_date,
                                                   date_floor, mixed_columns)
    outcome = run_promotion(data, name or settings.registered_name, force)
    if outcome.rows:
        dates = outcome.dates
        print_frame(outcome.comparison[["roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"]].T,
                    f"Unseen by both models: {outcome.rows:,} rows, {len(dates)} date(s) {dates[0]} .. {dates[-1]}")
    if outcome.auc_difference:
        d = outcome.auc_difference
        console.print(f"ROC-AUC challenger - champion: {d['difference']:+.4f} (95% paired bootstrap {d['low']:+.4f} .. {d['high']:+.4f})")
    verdict = "[green]promoted[/]" if outcome.promoted else "[yellow]not promoted[/]"
    console.print(f"{verdict}: version {outcome.challenger_version} ({outcome.reason}); "
                  f"champion is now version {outcome.challenger_version if outcome.promoted else outcome.champion_version}")
