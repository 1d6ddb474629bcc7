"""Exact attribution of a score change to the features that changed.

For one model ``f`` (the raw score: log-odds for a binary model), a row ``x`` (an account at the
later date) and a reference row ``r`` (the same account at the earlier date), the *baseline
Shapley* values ``phi_i`` are the Shapley values of the game ``v(S) = f(x_S, r_notS)``: features
in ``S`` take ``x``'s value, the others ``r``'s. They add up exactly to ``f(x) - f(r)``, a
feature whose value did not change gets 0 (both missing counts as unchanged), and under a
monotone constraint a feature's share has the sign of the constraint times its change when both
values are present (a missing value takes the split's default side, outside the constraint)
(Sundararajan & Najmi 2020, "The many Shapley values for model explanation"). It is interventional TreeSHAP with a single background row.

For a tree the game is a sum over leaves, each computable in closed form. Along a leaf's path
(value ``L``), per distinct feature ``j`` let ``X_j`` = ``x`` satisfies every split on ``j``
and ``R_j`` = ``r`` does. If some feature has neither, no hybrid row reaches the leaf. Otherwise,
with ``A = {j: X_j, not R_j}`` and ``B = {j: R_j, not X_j}`` (``a = |A|``, ``b = |B|``), the
hybrid row reaches the leaf iff ``A`` is in ``S`` and ``B`` is not, and the leaf adds::

    i in A:  L * (a-1)! b! / (a+b)!        i in B:  -L * a! (b-1)! / (a+b)!

The cost is linear in the size of the model per pair, with no approximation.
"""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import lightgbm as lgb
import numba
import numpy as np

from healthscore.model.trees import TreeEnsemble, decide_tree, load_block, run_blocks
from healthscore.model.treeshap import LeafPaths, leaf_paths

__all__ = ["ChangeExplainer"]

BLOCK_ROWS = 128


class ChangeExplainer:
    """Exact baseline-Shapley attribution of ``f(x) - f(r)`` for a LightGBM model.

    Parameters
    ----------
    model : lightgbm.Booster or TreeEnsemble
        A single-output model; ``f`` is its raw score (``predict(raw_score=True)``).
    num_iteration : int, optional
        For a booster: iterations to use; by default those ``booster.predict`` uses.

    Attributes
    ----------
    n_features : int
    feature_names : list of str

    Raises
    ------
    ValueError
        For a model the tree arrays cannot represent (multiclass, linear trees, random forest).
    """

    def __init__(self, model: lgb.Booster | TreeEnsemble, *, num_iteration: int | None = None):
        ens = model if isinstance(model, TreeEnsemble) else TreeEnsemble.from_booster(model, num_iteration=num_iteration)
        if ens.unsupported:
            raise ValueError(f"change attribution does not support {ens.unsupported}")
        self.ensemble = ens
        self.n_features = ens.n_features
        self.feature_names = ens.feature_names
        self._paths: LeafPaths = leaf_paths(ens)
        max_d = int(np.max(self._paths.leaf_d, initial=0))
        self._weight_a, self._weight_b = _weights(max_d)

    def attributions(self, X, R) -> np.ndarray:
        """Baseline Shapley values of the change from each reference row to its row.

        Parameters
        ----------
        X : ndarray or pandas.DataFrame, shape (n, n_features)
            The rows (e.g. the later date), in any form ``booster.predict`` accepts.
        R : ndarray or pandas.DataFrame, shape (n, n_features) or (1, n_features)
            The reference rows (e.g. the earlier date), paired with ``X`` by position; a single
            row is the reference for every row of ``X``.

        Returns
        -------
        ndarray of float64, shape (n, n_features)
            ``phi[k, i]``: feature ``i``'s share of ``f(X[k]) - f(R[k])``; each row sums to it.
        """
        ens = self.ensemble
        MX = ens.matrix(X)
        MR = ens.matrix(R)
        if MR.shape[0] == 1 and MX.shape[0] != 1:
            MR = np.ascontiguousarray(np.broadcast_to(MR, MX.shape))
        if MR.shape != MX.shape:
            raise ValueError(f"X has {MX.shape[0]} rows and R {MR.shape[0]}: pair them row by row, or give one reference row")
        p = self._paths
        out = np.empty(MX.shape)
        max_nodes = max(1, int(np.max(np.diff(ens.node_ptr), initial=0)))
        max_d = max(1, int(np.max(p.leaf_d, initial=0)))
        run_blocks(
            _change_blocks, MX.shape[0], BLOCK_ROWS,
            MX, MR, out, max_nodes, max_d, ens.node_ptr, ens.leaf_ptr, ens.cat_col, ens.n_cat_cols, ens.split_feature,
            ens.threshold, ens.is_categorical, ens.default_left, ens.missing_type, ens.cat_start, ens.cat_len,
            ens.cat_bits, ens.leaf_value, p.leaf_d, p.path_ptr, p.path_node, p.path_dir, p.path_slot, p.slot_ptr,
            p.slot_feature, self._weight_a, self._weight_b,
        )  # fmt: skip
        return out

    def score_change(self, X, R) -> np.ndarray:
        """``f(X) - f(R)`` on the raw scale, what each row of `attributions` sums to.

        Parameters
        ----------
        X, R : ndarray or pandas.DataFrame
            As for `attributions`.

        Returns
        -------
        ndarray of float64, shape (n,)
        """
        return self.ensemble.raw_score(X) - self.ensemble.raw_score(R)


def _weights(max_d: int) -> tuple[np.ndarray, np.ndarray]:
    """``wa[a, b] = (a-1)! b! / (a+b)!`` and ``wb[a, b] = a! (b-1)! / (a+b)!``, correctly rounded."""
    n = max_d + 1
    wa = np.zeros((n, n))
    wb = np.zeros((n, n))
    for a in range(n):
        for b in range(n - a):
            total = factorial(a + b)
            if a:
                wa[a, b] = float(Fraction(factorial(a - 1) * factorial(b), total))
            if b:
                wb[a, b] = float(Fraction(factorial(a) * factorial(b - 1), total))
    return wa, wb


@numba.njit(cache=True, nogil=True)
def _leaf_change(leaf, nr, decx, decr, ph, leaf_value, leaf_d, path_ptr, path_node, path_dir, path_slot, slot_ptr, slot_feature, wa, wb, sx, sr):
    """Add one leaf's baseline-Shapley shares for a block of (x, r) pairs."""
    d = leaf_d[leaf]
    s0 = slot_ptr[leaf]
    value = leaf_value[leaf]
    for r in range(nr):
        for j in range(d):
            sx[j] = True
            sr[j] = True
        for s in range(path_ptr[leaf], path_ptr[leaf + 1]):
            node = path_node[s]
            want = path_dir[s]
            j = path_slot[s]
            if decx[node, r] != want:
                sx[j] = False
            if decr[node, r] != want:
                sr[j] = False
        a = 0
        b = 0
        reachable = True
        for j in range(d):
            if sx[j]:
                if not sr[j]:
                    a += 1
            elif sr[j]:
                b += 1
            else:
                reachable = False
                break
        if not reachable or a + b == 0:
            continue
        share_a = value * wa[a, b]
        share_b = -value * wb[a, b]
        for j in range(d):
            if sx[j] != sr[j]:
                ph[slot_feature[s0 + j], r] += share_a if sx[j] else share_b


@numba.njit(cache=True, nogil=True)
def _change_blocks(
    b0,
    b1,
    block,
    MX,
    MR,
    out,
    max_nodes,
    max_d,
    node_ptr,
    leaf_ptr,
    cat_col,
    n_cat_cols,
    split_feature,
    threshold,
    is_categorical,
    default_left,
    missing_type,
    cat_start,
    cat_len,
    cat_bits,
    leaf_value,
    leaf_d,
    path_ptr,
    path_node,
    path_dir,
    path_slot,
    slot_ptr,
    slot_feature,
    wa,
    wb,
):
    """Attributions of the pairs of blocks ``b0:b1`` (``block`` pairs each) into ``out``."""
    n, p = MX.shape
    xt = np.empty((p, block))
    rt = np.empty((p, block))
    codes_x = np.empty((max(n_cat_cols, 1), block), dtype=np.int64)
    codes_r = np.empty((max(n_cat_cols, 1), block), dtype=np.int64)
    decx = np.zeros((max_nodes, block), dtype=np.uint8)
    decr = np.zeros((max_nodes, block), dtype=np.uint8)
    ph = np.empty((p, block))
    sx = np.empty(max_d, dtype=np.bool_)
    sr = np.empty(max_d, dtype=np.bool_)
    for blk in range(b0, b1):
        r0 = blk * block
        nr = min(block, n - r0)
        load_block(MX, r0, nr, cat_col, xt, codes_x)
        load_block(MR, r0, nr, cat_col, rt, codes_r)
        ph[:] = 0.0
        for t in range(len(node_ptr) - 1):
            nb = node_ptr[t]
            ne = node_ptr[t + 1]
            if ne == nb:
                continue  # a single leaf: the same for every hybrid row
            decide_tree(
                xt, codes_x, cat_col, nb, ne, decx, nr, split_feature, threshold, is_categorical, default_left, missing_type, cat_start, cat_len, cat_bits
            )
            decide_tree(
                rt, codes_r, cat_col, nb, ne, decr, nr, split_feature, threshold, is_categorical, default_left, missing_type, cat_start, cat_len, cat_bits
            )
            for leaf in range(leaf_ptr[t], leaf_ptr[t + 1]):
                _leaf_change(leaf, nr, decx, decr, ph, leaf_value, leaf_d, path_ptr, path_node, path_dir, path_slot, slot_ptr, slot_feature, wa, wb, sx, sr)
        for r in range(nr):
            for f in range(p):
                out[r0 + r, f] = ph[f, r]
