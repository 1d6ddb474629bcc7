"""The tree arrays, the fast TreeSHAP kernel and the change attribution against LightGBM itself.

Every model here is small (a few hundred rows, 8-63 leaves, 50-500 trees) so that the module
runs in seconds once numba's cache is warm; the references are ``booster.predict(raw_score=
True)``, ``booster.predict(pred_contrib=True)`` and, for the change attribution, Shapley values
brute-forced over every subset of the changed features.
"""

from __future__ import annotations

import itertools
import math
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from healthscore.model.change_shap import ChangeExplainer
from healthscore.model.trees import K_ZERO_THRESHOLD, TreeEnsemble
from healthscore.model.treeshap import BLOCK_ROWS, TreeExplainer

CATS = [["a", "b", "c", "d", "e"], ["red", "green", "blue"]]


def frame(n: int, seed: int, n_num: int = 6, categorical: bool = True) -> pd.DataFrame:
    """Numeric columns with NaNs, exact zeros and ties, and pandas categoricals with missing."""
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(n_num):
        x = rng.normal(size=n) * (1 + i)
        x[rng.random(n) < 0.12] = np.nan
        x[rng.random(n) < 0.15] = 0.0
        if i == 2:
            x = np.round(x)  # many ties
        cols[f"x{i}"] = x
    if categorical:
        for j, levels in enumerate(CATS):
            codes = rng.integers(-1, len(levels), size=n)
            cols[f"c{j}"] = pd.Categorical.from_codes(codes, categories=levels)
    return pd.DataFrame(cols)


def label(X: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    num = X[[c for c in X if c.startswith("x")]].fillna(0.5).to_numpy()
    score = num[:, 0] - num[:, 1] + np.sin(num[:, 2]) + 0.5 * num[:, 3] * (num[:, 4] > 0)
    if "c0" in X:
        score += (X["c0"].cat.codes.to_numpy() % 2) - 0.7 * (X["c1"].cat.codes.to_numpy() == 1)
    return (score + rng.normal(size=len(X)) > 0).astype(float)


def train(X, y, rounds: int, leaves: int, init_model=None, **params) -> lgb.Booster:
    base = {
        "objective": "binary",
        "num_leaves": leaves,
        "learning_rate": 0.1,
        "min_data_in_leaf": 3,
        "min_data_per_group": 3,
        "cat_smooth": 1.0,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.9,
        "seed": 3,
        "deterministic": True,
        "num_threads": 1,  # OpenMP threads spin: on a shared 2-core machine one is faster
        "verbosity": -1,
    }
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds, init_model=init_model)


def missing_types(booster: lgb.Booster, decision: str = "<=") -> set:
    found = set()

    def walk(node):
        if "split_index" in node:
            if node["decision_type"] == decision:
                found.add(node["missing_type"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return found


def edge_rows(X: pd.DataFrame) -> pd.DataFrame:
    """The rows plus hard cases: NaN, exact, signed and sub-threshold zeros, infinities, and
    categories the model never saw (which become missing)."""
    X = X.copy()
    num = [c for c in X if c.startswith("x")]
    specials = [np.nan, 0.0, -0.0, 1e-40, -1e-40, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD, np.inf, -np.inf]
    for i, value in enumerate(specials):
        X.loc[i, num] = value
    for i in range(len(specials), 2 * len(specials)):
        X.loc[i, num[i % len(num)]] = specials[i % len(specials)]
    for col in [c for c in X if c.startswith("c")]:
        X[col] = X[col].cat.add_categories(["never-seen"])
        X.loc[len(specials) : len(specials) + 4, col] = "never-seen"
        X[col] = X[col].cat.reorder_categories(list(reversed(X[col].cat.categories)))  # other code order
    return X


def check_against_lightgbm(booster: lgb.Booster, X, **kwargs) -> TreeExplainer:
    explainer = TreeExplainer(booster, **kwargs)
    assert explainer.supported
    expected = booster.predict(X, pred_contrib=True)
    got = explainer.contributions(X)
    assert got.shape == expected.shape == (len(X), booster.num_feature() + 1)
    assert got.dtype == np.float64
    assert np.max(np.abs(got - expected)) <= 1e-9
    raw = booster.predict(X, raw_score=True)
    assert np.max(np.abs(explainer.raw_score(X) - raw)) <= 1e-12
    assert np.max(np.abs(got.sum(axis=1) - raw)) <= 1e-9
    return explainer


# --- the tree arrays ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cat_model():
    X = frame(600, seed=1)
    return train(X, label(X, 2), rounds=60, leaves=15), X


def test_arrays_reproduce_lightgbm_decisions(cat_model):
    booster, X = cat_model
    rows = edge_rows(frame(300, seed=5))
    ens = TreeEnsemble.from_booster(booster)
    assert ens.unsupported is None and ens.n_trees == booster.num_trees()
    assert ens.is_categorical.any()
    assert np.array_equal(ens.leaf_index(rows), booster.predict(rows, pred_leaf=True))
    assert np.max(np.abs(ens.raw_score(rows) - booster.predict(rows, raw_score=True))) <= 1e-12
    # The matrix is what LightGBM evaluates: numpy input of it gives the same scores.
    M = ens.matrix(rows)
    assert M.dtype == np.float64 and M.flags.c_contiguous
    assert np.array_equal(booster.predict(M, raw_score=True), booster.predict(rows, raw_score=True))
    # Categories are re-coded to the training ones; unseen ones are missing.
    assert np.isnan(M[9:14, -2:]).all()
    codes = M[20:, -1]
    expected = pd.Categorical(rows["c1"].iloc[20:].astype(object), categories=CATS[1]).codes.astype(float)
    expected[expected < 0] = np.nan
    assert np.array_equal(codes, expected, equal_nan=True)
    # Values with |x| <= kZeroThreshold read as zero, as LightGBM's dense reader drops them.
    assert np.all(M[1:7, :6] == 0.0) and np.all(np.signbit(M[1:7, :6]) == False)  # noqa: E712
    assert np.all(np.isinf(M[7:9, :6]))


def test_categorical_values_given_as_numbers(cat_model):
    """Numpy input: LightGBM truncates a category value toward zero; NaN, negative and huge
    values go right."""
    booster, X = cat_model
    M = TreeEnsemble.from_booster(booster).matrix(frame(200, seed=6))
    odd = np.array([np.nan, -1.0, -0.5, 0.0, 0.7, 1.0, 2.9, 4.0, 5.0, 31.0, 32.0, 1e10, -1e10, np.inf])
    M[: len(odd), -2] = odd
    M[: len(odd), -1] = odd[::-1]
    ens = TreeEnsemble.from_booster(booster)
    assert np.array_equal(ens.leaf_index(M), booster.predict(M, pred_leaf=True))
    check_against_lightgbm(booster, M)


def test_many_rows_across_blocks_and_threads(cat_model):
    """More rows than one block (the kernels split rows into blocks shared out among threads),
    and a row count that is not a multiple of the block size."""
    booster, _ = cat_model
    rows = edge_rows(frame(2 * BLOCK_ROWS + 77, seed=8))
    check_against_lightgbm(booster, rows)


def test_dtypes_as_lightgbm_reads_them():
    """float32 frames and integer arrays are read through float32, as LightGBM does."""
    X = frame(500, seed=7, categorical=False)
    booster = train(X, label(X, 8), rounds=50, leaves=8)
    X32 = (X * 1.0000001).astype(np.float32)
    check_against_lightgbm(booster, X32)
    ints = np.random.default_rng(0).integers(-20, 20, size=(300, X.shape[1]))
    check_against_lightgbm(booster, ints)


def test_best_iteration_is_the_default():
    X, Xv = frame(600, seed=9), frame(300, seed=10)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, "learning_rate": 0.3, "verbosity": -1, "min_data_per_group": 3, "num_threads": 1},
        lgb.Dataset(X, label(X, 11)),
        num_boost_round=200,
        valid_sets=[lgb.Dataset(Xv, label(Xv, 12))],
        callbacks=[lgb.early_stopping(10, verbose=False)],
        keep_training_booster=True,  # keeps the trees past the best iteration
    )
    assert 0 < booster.best_iteration < booster.num_trees()
    explainer = check_against_lightgbm(booster, Xv)
    assert explainer.ensemble.n_trees == booster.best_iteration


# --- TreeSHAP against pred_contrib --------------------------------------------------------------
@pytest.mark.parametrize(
    ("missing", "params", "leaves", "rounds"),
    [
        ("NaN", {}, 8, 50),
        ("Zero", {"zero_as_missing": True}, 31, 80),
        ("None", {"use_missing": False}, 63, 50),
        ("NaN", {"max_depth": 4}, 15, 120),
    ],
)
def test_contributions_match_pred_contrib(missing, params, leaves, rounds):
    X = frame(800, seed=leaves)
    booster = train(X, label(X, 1), rounds=rounds, leaves=leaves, **params)
    if missing == "NaN":
        assert "NaN" in missing_types(booster)  # features without NaN in training get None
    else:
        assert missing_types(booster) == {missing}
    check_against_lightgbm(booster, edge_rows(frame(400, seed=100 + leaves)))


def test_larger_model():
    X = frame(2000, seed=21, n_num=10)
    booster = train(X, label(X, 22), rounds=500, leaves=63, max_depth=7, min_data_in_leaf=5, learning_rate=0.05)
    assert booster.num_trees() == 500
    assert max(t["num_leaves"] for t in booster.dump_model()["tree_info"]) == 63
    explainer = check_against_lightgbm(booster, edge_rows(frame(100, seed=23, n_num=10)))
    assert explainer.table_leaves == sum(t["num_leaves"] for t in booster.dump_model()["tree_info"])


def test_monotone_constraints():
    X = frame(800, seed=31, categorical=False)
    booster = train(X, label(X, 32), rounds=100, leaves=31, monotone_constraints=[1, -1, 0, 1, 0, -1], monotone_constraints_method="intermediate")
    check_against_lightgbm(booster, edge_rows(frame(300, seed=33, categorical=False)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_bits": 0},  # one table per leaf (Fast TreeSHAP v2)
        {"group_bits": 14},
        {"max_table_depth": 2},  # deeper leaves computed per row
        {"table_budget": 0},  # every leaf per row
        {"table_budget": 50_000},  # the budget picks which leaves get tables
    ],
)
def test_table_plans_give_the_same_numbers(cat_model, kwargs):
    booster, _ = cat_model
    explainer = check_against_lightgbm(booster, edge_rows(frame(300, seed=41)), **kwargs)
    assert explainer.table_bytes <= kwargs.get("table_budget", 256 * 2**20)
    if "table_budget" in kwargs or "max_table_depth" in kwargs:
        assert explainer.direct_leaves > 0
    if kwargs.get("table_budget") == 0:
        assert explainer.table_leaves == 0


def test_single_leaf_trees():
    X = frame(400, seed=51)
    y = label(X, 52)
    # Nothing can split: one tree, a single leaf (the boosted average).
    constant = train(X, y, rounds=5, leaves=15, min_data_in_leaf=10_000)
    assert [t["num_leaves"] for t in constant.dump_model()["tree_info"]] == [1]
    explainer = check_against_lightgbm(constant, X)
    assert np.all(explainer.contributions(X)[:, :-1] == 0.0)
    # Single-leaf trees among ordinary ones: continue training from the constant model.
    mixed = train(X, y, rounds=40, leaves=15, init_model=constant)
    sizes = [t["num_leaves"] for t in mixed.dump_model()["tree_info"]]
    assert sizes[0] == 1 and max(sizes) > 1
    check_against_lightgbm(mixed, edge_rows(frame(200, seed=53)))
    # A constant feature is never split on and gets exactly zero.
    Xc = X.assign(x5=1.0)
    model = train(Xc, y, rounds=30, leaves=8)
    assert np.all(check_against_lightgbm(model, Xc).contributions(Xc)[:, 5] == 0.0)


def test_unsupported_models_fall_back_to_lightgbm():
    X = frame(500, seed=61, categorical=False)
    y = label(X, 62)
    rows = frame(100, seed=63, categorical=False)
    forest = train(X, y, rounds=20, leaves=8, boosting="rf", bagging_fraction=0.7, bagging_freq=1)
    explainer = TreeExplainer(forest)
    assert not explainer.supported and "random forest" in explainer.unsupported
    with pytest.warns(UserWarning, match="pred_contrib"):
        got = explainer.contributions(rows)
    assert np.array_equal(got, forest.predict(rows, pred_contrib=True))
    assert np.array_equal(explainer.raw_score(rows), forest.predict(rows, raw_score=True))

    # LightGBM itself has no SHAP values for linear trees: the fallback raises its error.
    linear = train(X.fillna(0.0), y, rounds=20, leaves=8, linear_tree=True)
    explainer = TreeExplainer(linear)
    assert not explainer.supported and "linear" in explainer.unsupported
    with pytest.warns(UserWarning, match="linear trees"), pytest.raises(lgb.basic.LightGBMError, match="linear"):
        explainer.contributions(rows)
    assert np.array_equal(explainer.raw_score(rows), linear.predict(rows, raw_score=True))
    with pytest.raises(ValueError, match="linear"):
        ChangeExplainer(linear)

    classes = (np.nan_to_num(X["x0"].to_numpy()) > 0).astype(int) + (np.nan_to_num(X["x1"].to_numpy()) > 1)
    multi = train(X, classes, rounds=10, leaves=8, objective="multiclass", num_class=3)
    explainer = TreeExplainer(multi)
    assert not explainer.supported and "multiclass" in explainer.unsupported
    with pytest.warns(UserWarning, match="pred_contrib"):
        got = explainer.contributions(rows)
    assert np.array_equal(got, multi.predict(rows, pred_contrib=True))
    with pytest.raises(ValueError, match="multiclass"):
        ChangeExplainer(multi)


def test_regression_objective():
    X = frame(600, seed=71)
    y = np.nan_to_num(X["x0"].to_numpy()) * 2 + np.random.default_rng(0).normal(size=len(X))
    booster = train(X, y, rounds=60, leaves=20, objective="regression")
    check_against_lightgbm(booster, edge_rows(frame(200, seed=72)))


# --- change attribution -----------------------------------------------------------------------
def brute_force_shapley(booster: lgb.Booster, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Shapley values of v(S) = f(x_S, r_rest) over all subsets of the changed features."""
    changed = [i for i in range(len(x)) if not (x[i] == r[i] or (np.isnan(x[i]) and np.isnan(r[i])))]
    k = len(changed)
    subsets = list(itertools.product((0, 1), repeat=k))
    hybrids = np.tile(r, (len(subsets), 1))
    for row, subset in enumerate(subsets):
        for bit, i in zip(subset, changed):
            if bit:
                hybrids[row, i] = x[i]
    value = dict(zip(subsets, booster.predict(hybrids, raw_score=True)))
    phi = np.zeros(len(x))
    for pos, i in enumerate(changed):
        for subset in subsets:
            if subset[pos]:
                continue
            size = sum(subset)
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            with_i = subset[:pos] + (1,) + subset[pos + 1 :]
            phi[i] += weight * (value[with_i] - value[subset])
    return phi


@pytest.fixture(scope="module")
def change_model():
    X = frame(800, seed=81)
    booster = train(X, label(X, 82), rounds=80, leaves=15)
    return booster, ChangeExplainer(booster)


def pairs(n: int, seed: int, keep: float = 0.4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows and reference rows where each value stays the same with probability ``keep``."""
    X = edge_rows(frame(n, seed=seed)).reset_index(drop=True)
    R = frame(n, seed=seed + 1).reset_index(drop=True)
    for col in R:
        if isinstance(R[col].dtype, pd.CategoricalDtype):
            R[col] = R[col].cat.set_categories(X[col].cat.categories)
    same = np.random.default_rng(seed).random(X.shape) < keep
    for j, col in enumerate(X):
        R.loc[same[:, j], col] = X.loc[same[:, j], col]
    return X, R


def test_change_matches_brute_force_shapley(change_model):
    booster, explainer = change_model
    X, R = pairs(20, seed=91)
    phi = explainer.attributions(X, R)
    MX, MR = explainer.ensemble.matrix(X), explainer.ensemble.matrix(R)
    for k in range(len(X)):
        assert np.max(np.abs(phi[k] - brute_force_shapley(booster, MX[k], MR[k]))) <= 1e-9


def test_change_adds_up_and_skips_unchanged(change_model):
    booster, explainer = change_model
    X, R = pairs(500, seed=93)
    phi = explainer.attributions(X, R)
    assert phi.shape == (len(X), X.shape[1])
    change = booster.predict(X, raw_score=True) - booster.predict(R, raw_score=True)
    assert np.max(np.abs(phi.sum(axis=1) - change)) <= 1e-9
    assert np.max(np.abs(explainer.score_change(X, R) - change)) <= 1e-12
    MX, MR = explainer.ensemble.matrix(X), explainer.ensemble.matrix(R)
    unchanged = (MX == MR) | (np.isnan(MX) & np.isnan(MR))
    assert unchanged.any() and (~unchanged).any()
    assert np.all(phi[unchanged] == 0.0)
    assert np.any(phi[~unchanged] != 0.0)
    # One reference row for all rows; a row against itself changes nothing.
    one = explainer.attributions(X, R.iloc[[3]])
    assert np.array_equal(one[3], phi[3])
    assert np.max(np.abs(one.sum(axis=1) - (booster.predict(X, raw_score=True) - booster.predict(R.iloc[[3]], raw_score=True)))) <= 1e-9
    assert np.all(explainer.attributions(X, X) == 0.0)
    with pytest.raises(ValueError, match="rows"):
        explainer.attributions(X, R.iloc[:7])


def test_change_follows_monotone_constraints():
    X = frame(1000, seed=101, categorical=False).fillna(0.0)
    constraints = [1, -1, 0, 1, 0, -1]
    booster = train(X, label(X, 102), rounds=120, leaves=31, monotone_constraints=constraints, monotone_constraints_method="intermediate")
    explainer = ChangeExplainer(booster)
    Xa, Ra = (frame(400, seed=s, categorical=False).fillna(0.0) for s in (103, 104))
    phi = explainer.attributions(Xa, Ra)
    delta = Xa.to_numpy() - Ra.to_numpy()
    assert np.max(np.abs(phi.sum(axis=1) - explainer.score_change(Xa, Ra))) <= 1e-9
    for i, c in enumerate(constraints):
        if c:
            signed = c * np.sign(delta[:, i]) * phi[:, i]
            assert np.all(signed >= -1e-12)
            assert np.sum(signed > 1e-6) > 10  # the constrained features do move the score
        assert np.all(phi[delta[:, i] == 0, i] == 0.0)


def test_change_with_single_leaf_trees_and_large_model():
    X = frame(1500, seed=111)
    y = label(X, 112)
    constant = train(X, y, rounds=3, leaves=15, min_data_in_leaf=10_000)
    booster = train(X, y, rounds=300, leaves=63, init_model=constant, learning_rate=0.05)
    explainer = ChangeExplainer(booster)
    Xa, Ra = pairs(300, seed=113)
    phi = explainer.attributions(Xa, Ra)
    change = booster.predict(Xa, raw_score=True) - booster.predict(Ra, raw_score=True)
    assert np.max(np.abs(phi.sum(axis=1) - change)) <= 1e-9
    small_x, small_r = (f.iloc[10:16] for f in pairs(20, seed=115, keep=0.7))
    MX, MR = explainer.ensemble.matrix(small_x), explainer.ensemble.matrix(small_r)
    got = explainer.attributions(small_x, small_r)
    for k in range(len(small_x)):
        assert np.max(np.abs(got[k] - brute_force_shapley(booster, MX[k], MR[k]))) <= 1e-9


def test_no_warnings_on_supported_models(cat_model):
    booster, X = cat_model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TreeExplainer(booster).contributions(X)
        ChangeExplainer(booster).attributions(X, X.iloc[::-1])
