"""Exact path-dependent TreeSHAP for LightGBM models, much faster than ``pred_contrib``.

Path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2; what ``booster.predict(X,
pred_contrib=True)`` computes) credits *every* leaf of a tree, for every row, weighted by cover.
A leaf's share depends on the row only through which of the leaf's ``d`` distinct path features
the row *satisfies* (goes the leaf's way at every split on that feature along the path). With
``z_j`` the product of the cover ratios of the splits on feature ``j`` along the path and
``o_j`` = 1 if the row satisfies ``j`` else 0, the leaf (value ``v``) adds to feature ``j``::

    v * (o_j - z_j) * sum over S in F - {j} of |S|! (d - |S| - 1)! / d!
                      * prod_{k in S} o_k * prod_{k in F - {j} - S} z_k

(the unique-path ``ExtendPath``/``UnwoundPathSum`` algebra of LightGBM's ``Tree::TreeSHAP``).
So, as in Fast TreeSHAP v2, a leaf's contributions are a table over its ``2**d`` satisfaction
patterns, filled once per model (`leaf_table`, in ``O(2**d * d)``).

This module goes one step further and merges the tables of the leaves below a node into one
*group* table, indexed by the satisfaction bits of the features on the path down to the node
and the decisions of the splits below it (at most ``group_bits`` bits, and only while the group
table stays within `GROUP_GROWTH` times its leaves' tables). Scoring a block of rows then
evaluates every split once per row (vectorised over rows), builds each group's index with a
few bit operations and adds one table entry per output feature of the group: about a quarter of
the additions of one table per leaf. Leaves too deep for a table within the memory budget are
computed per row with LightGBM's own algebra (`leaf_shap`).

Decisions follow LightGBM exactly (see `healthscore.model.trees`); the numbers equal
``pred_contrib`` up to floating-point summation order (~1e-15).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np

from healthscore.model.trees import TreeEnsemble, decide_tree, load_block, run_blocks

__all__ = ["TreeExplainer"]

DEFAULT_TABLE_BUDGET = 256 * 2**20
DEFAULT_MAX_TABLE_DEPTH = 16
DEFAULT_GROUP_BITS = 10
BLOCK_ROWS = 1024
GROUP_GROWTH = 4.0


class TreeExplainer:
    """Exact path-dependent TreeSHAP values of a LightGBM booster.

    Build once per model (the tables are filled here); then `contributions` equals
    ``booster.predict(X, pred_contrib=True)``. Inputs are what ``booster.predict`` accepts: a
    float array, or a DataFrame of numeric columns and ``pd.Categorical`` columns (re-coded to the
    training categories; unseen categories are missing).

    Parameters
    ----------
    booster : lightgbm.Booster
        A single-output model (binary, regression, ...). Boosters the kernel does not support
        (multiclass, linear trees, random forest) are explained by
        ``booster.predict(..., pred_contrib=True)`` instead, with a warning.
    num_iteration : int, optional
        Iterations to use; by default those ``booster.predict`` uses (the best iteration if any).
    table_budget : int, default 256 MiB
        Most bytes the tables may take. When the plan exceeds it, groups are made smaller, and
        then the leaves with the most distinct path features are computed per row instead.
    max_table_depth : int, default 16
        A leaf with more distinct path features than this is computed per row.
    group_bits : int, default 10
        Largest index (in bits) of a group table; 0 gives one table per leaf (Fast TreeSHAP v2).

    Attributes
    ----------
    expected_value : float or None
        The last column of `contributions`: the cover-weighted mean raw score (None when the
        booster is not supported).
    n_features : int
    feature_names : list of str
    table_bytes : int
        Memory the tables take.
    n_groups : int
        Number of tables.
    table_leaves, direct_leaves : int
        Leaves covered by a table, and leaves computed per row.
    supported : bool
        False when the booster is explained by ``pred_contrib`` (see ``unsupported``).
    unsupported : str or None
        Why the kernel does not handle this booster.
    """

    def __init__(
        self,
        booster: lgb.Booster,
        *,
        num_iteration: int | None = None,
        table_budget: int = DEFAULT_TABLE_BUDGET,
        max_table_depth: int = DEFAULT_MAX_TABLE_DEPTH,
        group_bits: int = DEFAULT_GROUP_BITS,
    ):
        self.booster = booster
        if num_iteration is None:
            num_iteration = booster.best_iteration if booster.best_iteration and booster.best_iteration > 0 else -1
        self.num_iteration = num_iteration
        self.ensemble = TreeEnsemble.from_booster(booster, num_iteration=num_iteration)
        self.unsupported = self.ensemble.unsupported
        self.supported = self.unsupported is None
        self.n_features = self.ensemble.n_features
        self.feature_names = self.ensemble.feature_names
        self.expected_value = self.ensemble.expected_value if self.supported else None
        self.table_bytes = self.n_groups = self.table_leaves = self.direct_leaves = 0
        if self.supported:
            self._paths = leaf_paths(self.ensemble)
            self._plan = plan_tables(self.ensemble, self._paths, int(table_budget), int(max_table_depth), int(group_bits))
            self.table_bytes = self._plan.tables.nbytes if self._plan.n_groups else 0
            self.n_groups = self._plan.n_groups
            self.table_leaves = self._plan.table_leaves
            self.direct_leaves = len(self._plan.direct_leaf)

    def contributions(self, X) -> np.ndarray:
        """Path-dependent TreeSHAP values, as ``booster.predict(X, pred_contrib=True)``.

        Parameters
        ----------
        X : ndarray or pandas.DataFrame, shape (n, n_features)

        Returns
        -------
        ndarray of float64, shape (n, n_features + 1)
            One column per feature, then the expected value; each row sums to the raw score.
        """
        if not self.supported:
            warnings.warn(
                f"TreeExplainer: the fast kernel does not support {self.unsupported}; using booster.predict(pred_contrib=True)",
                stacklevel=2,
            )
            return np.asarray(self.booster.predict(X, pred_contrib=True, num_iteration=self.num_iteration), dtype=np.float64)
        e, p, g = self.ensemble, self._paths, self._plan
        M = e.matrix(X)
        out = np.empty((M.shape[0], M.shape[1] + 1))
        max_nodes = max(1, int(np.max(np.diff(e.node_ptr), initial=0)))
        run_blocks(
            _contrib_blocks, M.shape[0], BLOCK_ROWS,
            M, out, max_nodes, e.node_ptr, e.cat_col, e.n_cat_cols, e.split_feature, e.threshold, e.is_categorical,
            e.default_left, e.missing_type, e.cat_start, e.cat_len, e.cat_bits, e.leaf_value, g.group_ptr, g.g_off,
            g.g_bits, g.g_dpre, g.g_pre_ptr, g.pre_node, g.pre_dir, g.pre_slot, g.g_sub_ptr, g.sub_node, g.g_out_ptr,
            g.out_feature, g.tables, g.direct_ptr, g.direct_leaf, p.leaf_d, p.path_ptr, p.path_node, p.path_dir,
            p.path_slot, p.slot_ptr, p.slot_feature, p.slot_zero, self.expected_value,
        )  # fmt: skip
        return out

    def raw_score(self, X) -> np.ndarray:
        """The raw score (sum of reached leaves), as ``booster.predict(X, raw_score=True)``.

        Parameters
        ----------
        X : ndarray or pandas.DataFrame, shape (n, n_features)

        Returns
        -------
        ndarray of float64, shape (n,)
        """
        if not self.supported:
            return np.asarray(self.booster.predict(X, raw_score=True, num_iteration=self.num_iteration), dtype=np.float64)
        return self.ensemble.raw_score(X)


# --- leaf paths --------------------------------------------------------------------------------
@dataclass
class LeafPaths:
    """Each leaf's path from the root and its distinct path features ("slots").

    For leaf ``l`` (global id): path steps ``path_ptr[l]:path_ptr[l+1]`` give the tree-local
    internal node, the side the leaf lies on (1 = left) and the slot of the node's feature; slots
    ``slot_ptr[l]:slot_ptr[l+1]`` give the feature and its zero fraction (the product of the cover
    ratios of the splits on it along the path), in order of first appearance on the path.
    ``leaf_d[l]`` is the number of slots.
    """

    leaf_d: np.ndarray
    path_ptr: np.ndarray
    path_node: np.ndarray
    path_dir: np.ndarray
    path_slot: np.ndarray
    slot_ptr: np.ndarray
    slot_feature: np.ndarray
    slot_zero: np.ndarray


def leaf_paths(ens: TreeEnsemble) -> LeafPaths:
    """Walk every tree once and record each leaf's path and distinct features."""
    n_leaves = ens.n_leaves
    leaf_d = np.zeros(n_leaves, dtype=np.int32)
    steps: list[list[tuple[int, int, int]]] = [[] for _ in range(n_leaves)]
    slots: list[list[tuple[int, float]]] = [[] for _ in range(n_leaves)]
    feat, left, right = ens.split_feature.tolist(), ens.left.tolist(), ens.right.tolist()
    count, leaf_count = ens.node_count.tolist(), ens.leaf_count.tolist()
    for t in range(ens.n_trees):
        nb, lb = int(ens.node_ptr[t]), int(ens.leaf_ptr[t])
        if ens.node_ptr[t + 1] == nb:
            continue  # a single leaf: only the expected value
        stack = [(0, [], {}, [])]  # (local node, steps so far, {feature: slot}, [(feature, zero)])
        while stack:
            node, path, slot_of, slot_list = stack.pop()
            k = nb + node
            f = feat[k]
            for go_left, child in ((1, left[k]), (0, right[k])):
                # LightGBM: zero fraction = data_count(child) / data_count(node) * incoming
                ratio = (count[nb + child] if child >= 0 else leaf_count[lb + ~child]) / count[k]
                s_of = dict(slot_of)
                s_list = list(slot_list)
                if f in s_of:
                    s = s_of[f]
                    s_list[s] = (f, ratio * s_list[s][1])
                else:
                    s = s_of[f] = len(s_list)
                    s_list.append((f, ratio))
                c_path = path + [(node, go_left, s)]
                if child >= 0:
                    stack.append((child, c_path, s_of, s_list))
                else:
                    leaf = lb + ~child
                    steps[leaf] = c_path
                    slots[leaf] = s_list
                    leaf_d[leaf] = len(s_list)
    path_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    path_ptr[1:] = np.cumsum([len(s) for s in steps])
    slot_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    slot_ptr[1:] = np.cumsum(leaf_d)
    flat_steps = [step for s in steps for step in s]
    flat_slots = [slot for s in slots for slot in s]
    return LeafPaths(
        leaf_d=leaf_d,
        path_ptr=path_ptr,
        path_node=np.asarray([s[0] for s in flat_steps], dtype=np.int32),
        path_dir=np.asarray([s[1] for s in flat_steps], dtype=np.uint8),
        path_slot=np.asarray([s[2] for s in flat_steps], dtype=np.int32),
        slot_ptr=slot_ptr,
        slot_feature=np.asarray([s[0] for s in flat_slots], dtype=np.int32),
        slot_zero=np.asarray([s[1] for s in flat_slots], dtype=np.float64),
    )


# --- table plan --------------------------------------------------------------------------------
@dataclass
class TablePlan:
    """Which leaves share a table, the tables, and the leaves computed per row.

    Group ``g`` (tree ``t`` has groups ``group_ptr[t]:group_ptr[t+1]``) sits at a node of the
    tree. Its index has ``g_bits[g]`` bits: bit ``s < g_dpre[g]`` is set when the row satisfies
    the ``s``-th distinct feature on the path down to the node (path steps
    ``g_pre_ptr[g]:g_pre_ptr[g+1]``: node, side, feature slot); bit ``g_dpre[g] + i`` is the
    decision (1 = left) of the ``i``-th split below the node (``g_sub_ptr``/``sub_node``).
    ``tables[g_off[g] + j * 2**g_bits[g] + index]`` is the summed contribution of the group's
    leaves to its ``j``-th output feature (``g_out_ptr``/``out_feature``).
    """

    group_ptr: np.ndarray
    g_off: np.ndarray
    g_bits: np.ndarray
    g_dpre: np.ndarray
    g_pre_ptr: np.ndarray
    pre_node: np.ndarray
    pre_dir: np.ndarray
    pre_slot: np.ndarray
    g_sub_ptr: np.ndarray
    sub_node: np.ndarray
    g_out_ptr: np.ndarray
    out_feature: np.ndarray
    tables: np.ndarray
    direct_ptr: np.ndarray
    direct_leaf: np.ndarray
    table_leaves: int

    @property
    def n_groups(self) -> int:
        return len(self.g_off)


def _subtree(node: int, left: list, right: list, nb: int, lb: int, nodes: list, leaves: list) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if n < 0:
            leaves.append(lb + ~n)
            continue
        nodes.append(n)
        stack.append(right[nb + n])
        stack.append(left[nb + n])


def _subtree_sizes(ens: TreeEnsemble) -> list:
    """Per global internal node, the number of internal nodes in its subtree (itself included)."""
    left, right = ens.left.tolist(), ens.right.tolist()
    size = [0] * len(left)
    for t in range(ens.n_trees):
        nb, ne = int(ens.node_ptr[t]), int(ens.node_ptr[t + 1])
        todo, order = [0] if ne > nb else [], []
        while todo:  # parents before children, then sizes from the bottom up
            n = todo.pop()
            order.append(n)
            todo.extend(c for c in (left[nb + n], right[nb + n]) if c >= 0)
        for n in reversed(order):
            size[nb + n] = 1 + sum(size[nb + c] for c in (left[nb + n], right[nb + n]) if c >= 0)
    return size


def _plan_groups(ens: TreeEnsemble, paths: LeafPaths, max_table_depth: int, group_bits: int, sizes: list) -> list:
    """Per tree, the groups (prefix steps, prefix features, subtree nodes, leaves) and the
    leaves to compute per row."""
    feat, left, right = ens.split_feature.tolist(), ens.left.tolist(), ens.right.tolist()
    leaf_d = paths.leaf_d
    plan = []
    for t in range(ens.n_trees):
        nb, lb = int(ens.node_ptr[t]), int(ens.leaf_ptr[t])
        groups, direct = [], []
        if ens.node_ptr[t + 1] > nb:
            stack = [(0, [], [])]
            while stack:
                node, pre_steps, pre_feats = stack.pop()
                dpre = len(pre_feats)
                if node < 0:
                    leaf = lb + ~node
                    if leaf_d[leaf] <= max_table_depth:
                        groups.append((pre_steps, pre_feats, [], [leaf]))
                    else:
                        direct.append(leaf)
                    continue
                if dpre + sizes[nb + node] <= group_bits:
                    sub_nodes, sub_leaves = [], []
                    _subtree(node, left, right, nb, lb, sub_nodes, sub_leaves)
                    group = (pre_steps, pre_feats, sub_nodes, sub_leaves)
                    # Merge only while the group's table stays within GROUP_GROWTH times its
                    # leaves' own tables: deep subtrees would multiply the memory.
                    leaves_size = sum((1 << int(leaf_d[leaf])) * int(leaf_d[leaf]) for leaf in sub_leaves)
                    if _group_size(group, feat, nb)[0] <= GROUP_GROWTH * leaves_size:
                        groups.append(group)
                        continue
                f = feat[nb + node]
                if f in pre_feats:
                    slot, feats = pre_feats.index(f), pre_feats
                else:
                    slot, feats = dpre, pre_feats + [f]
                stack.append((right[nb + node], pre_steps + [(node, 0, slot)], feats))
                stack.append((left[nb + node], pre_steps + [(node, 1, slot)], feats))
        plan.append((groups, direct))
    return plan


def _group_size(group, feat: list, nb: int) -> tuple[int, list]:
    """Table entries of a group, and its output features."""
    pre_steps, pre_feats, sub_nodes, _ = group
    out = list(pre_feats)
    for n in sub_nodes:
        f = feat[nb + n]
        if f not in out:
            out.append(f)
    bits = len(pre_feats) + len(sub_nodes)
    return (1 << bits) * len(out), out


def plan_tables(ens: TreeEnsemble, paths: LeafPaths, budget: int, max_table_depth: int, group_bits: int) -> TablePlan:
    """Choose the groups within the memory budget and fill their tables."""
    group_bits = max(0, min(group_bits, 30))
    max_table_depth = max(0, min(max_table_depth, 30))
    subtree_sizes = _subtree_sizes(ens)
    feat = ens.split_feature.tolist()

    def attempt(bits: int):
        plan = _plan_groups(ens, paths, max_table_depth, bits, subtree_sizes)
        sizes = [[_group_size(g, feat, int(ens.node_ptr[t]))[0] for g in groups] for t, (groups, _) in enumerate(plan)]
        return plan, sizes, sum(sum(s) for s in sizes) * 8

    # The largest groups that fit: try the asked size, then one table per leaf, then search.
    plan, sizes, total = attempt(group_bits)
    if total > budget and group_bits > 0:
        fits, low, high = attempt(0), 0, group_bits
        if fits[2] <= budget:
            while high - low > 1:
                mid = (low + high) // 2
                trial = attempt(mid)
                if trial[2] <= budget:
                    fits, low = trial, mid
                else:
                    high = mid
        plan, sizes, total = fits
    if total > budget:  # one table per leaf and still too big: the deepest leaves go per row
        entries = sorted((size, t, i) for t, s in enumerate(sizes) for i, size in enumerate(s))
        keep, used = set(), 0
        for size, t, i in entries:
            if (used + size) * 8 > budget:
                break
            keep.add((t, i))
            used += size
        new_plan = []
        for t, (groups, direct) in enumerate(plan):
            kept = [g for i, g in enumerate(groups) if (t, i) in keep]
            moved = [g[3][0] for i, g in enumerate(groups) if (t, i) not in keep]
            new_plan.append((kept, sorted(direct + moved)))
        plan = new_plan

    # Flatten.
    group_ptr, g_off, g_bits, g_dpre = [0], [], [], []
    g_pre_ptr, pre_node, pre_dir, pre_slot = [0], [], [], []
    g_sub_ptr, sub_node = [0], []
    g_out_ptr, out_feature = [0], []
    direct_ptr, direct_leaf = [0], []
    # Fill inputs: per group its leaves; per group-leaf its steps below the group node
    # (index bit, side, leaf slot) and the output row of each leaf slot.
    g_leaf_ptr, gl_leaf = [0], []
    gl_step_ptr, st_pos, st_want, st_slot = [0], [], [], []
    gl_out_ptr, gl_out = [0], []
    leaf_group_tables = []  # groups of one leaf and no subtree: filled straight from the algebra
    offset = 0
    table_leaves = 0
    for t, (groups, direct) in enumerate(plan):
        nb = int(ens.node_ptr[t])
        for group in groups:
            pre_steps, pre_feats, sub_nodes, leaves = group
            size, out = _group_size(group, feat, nb)
            dpre = len(pre_feats)
            g_off.append(offset)
            g_bits.append(dpre + len(sub_nodes))
            g_dpre.append(dpre)
            for node, side, slot in pre_steps:
                pre_node.append(node)
                pre_dir.append(side)
                pre_slot.append(slot)
            g_pre_ptr.append(len(pre_node))
            sub_node.extend(sub_nodes)
            g_sub_ptr.append(len(sub_node))
            out_feature.extend(out)
            g_out_ptr.append(len(out_feature))
            position = {n: dpre + i for i, n in enumerate(sub_nodes)}
            out_row = {f: j for j, f in enumerate(out)}
            if not sub_nodes:
                leaf_group_tables.append((leaves[0], offset))
            for leaf in leaves:
                gl_leaf.append(leaf)
                a, b = int(paths.path_ptr[leaf]), int(paths.path_ptr[leaf + 1])
                for s in range(a + len(pre_steps), b):
                    st_pos.append(position[int(paths.path_node[s])])
                    st_want.append(int(paths.path_dir[s]))
                    st_slot.append(int(paths.path_slot[s]))
                gl_step_ptr.append(len(st_pos))
                s0, s1 = int(paths.slot_ptr[leaf]), int(paths.slot_ptr[leaf + 1])
                gl_out.extend(out_row[int(f)] for f in paths.slot_feature[s0:s1])
                gl_out_ptr.append(len(gl_out))
            g_leaf_ptr.append(len(gl_leaf))
            offset += size
            table_leaves += len(leaves)
        group_ptr.append(len(g_off))
        direct_leaf.extend(direct)
        direct_ptr.append(len(direct_leaf))

    i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    i32 = lambda v: np.asarray(v, dtype=np.int32)  # noqa: E731
    tables = np.zeros(max(offset, 1), dtype=np.float64)
    leaf_d = paths.leaf_d
    # Leaf tables: one-leaf groups write straight into `tables`, the others into scratch.
    leaf_off = np.full(len(leaf_d), -1, dtype=np.int64)
    one_leaf = {leaf for leaf, _ in leaf_group_tables}
    scratch_size = 0
    for leaf in gl_leaf:
        if leaf not in one_leaf:
            leaf_off[leaf] = scratch_size
            scratch_size += (1 << int(leaf_d[leaf])) * int(leaf_d[leaf])
    scratch = np.zeros(max(scratch_size, 1))
    _fill_leaf_tables(scratch, leaf_off, leaf_d, paths.slot_ptr, paths.slot_zero, ens.leaf_value)
    direct_off = np.full(len(leaf_d), -1, dtype=np.int64)
    for leaf, off in leaf_group_tables:
        direct_off[leaf] = off
    _fill_leaf_tables(tables, direct_off, leaf_d, paths.slot_ptr, paths.slot_zero, ens.leaf_value)
    multi = np.asarray([g_sub_ptr[g + 1] > g_sub_ptr[g] for g in range(len(g_off))], dtype=np.bool_)
    _fill_groups(
        tables,
        multi,
        i64(g_off),
        i32(g_bits),
        i32(g_dpre),
        i64(g_leaf_ptr),
        i64(gl_leaf),
        i64(gl_step_ptr),
        i32(st_pos),
        np.asarray(st_want, dtype=np.uint8),
        i32(st_slot),
        i64(gl_out_ptr),
        i32(gl_out),
        leaf_d,
        leaf_off,
        scratch,
    )
    return TablePlan(
        group_ptr=i64(group_ptr),
        g_off=i64(g_off),
        g_bits=i32(g_bits),
        g_dpre=i32(g_dpre),
        g_pre_ptr=i64(g_pre_ptr),
        pre_node=i32(pre_node),
        pre_dir=np.asarray(pre_dir, dtype=np.uint8),
        pre_slot=i32(pre_slot),
        g_sub_ptr=i64(g_sub_ptr),
        sub_node=i32(sub_node),
        g_out_ptr=i64(g_out_ptr),
        out_feature=i32(out_feature),
        tables=tables,
        direct_ptr=i64(direct_ptr),
        direct_leaf=i64(direct_leaf),
        table_leaves=table_leaves,
    )


# --- the TreeSHAP algebra for one leaf ---------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def leaf_shap(d, zero, ones, value, out):
    """Contributions of one leaf (value ``value``) to its ``d`` path features, for many rows.

    ``zero[j]``: zero fraction of slot ``j``; ``ones[i, j]``: one fraction of slot ``j`` for row
    ``i``. For each row, extends the unique path with every slot and sets
    ``out[i, j] = UnwoundPathSum(j) * (one_j - zero_j) * value``, in the order of operations of
    LightGBM's ``ExtendPath``/``UnwoundPathSum``.
    """
    pweight = np.empty(d + 1)
    for row in range(ones.shape[0]):
        pweight[0] = 1.0
        for u in range(1, d + 1):
            zf = zero[u - 1]
            of = ones[row, u - 1]
            pweight[u] = 0.0
            for i in range(u - 1, -1, -1):
                pweight[i + 1] += of * pweight[i] * (i + 1) / (u + 1)
                pweight[i] = zf * pweight[i] * (u - i) / (u + 1)
        for j in range(d):
            of = ones[row, j]
            zf = zero[j]
            nxt = pweight[d]
            total = 0.0
            for i in range(d - 1, -1, -1):
                if of != 0:
                    tmp = nxt * (d + 1) / ((i + 1) * of)
                    total += tmp
                    nxt = pweight[i] - tmp * zf * ((d - i) / (d + 1))
                else:
                    total += (pweight[i] / zf) / ((d - i) / (d + 1))
            out[row, j] = total * (of - zf) * value


@numba.njit(cache=True, nogil=True)
def leaf_table(d, zero, value, out):
    """All ``2**d`` satisfaction patterns of one leaf at once, in ``O(2**d * d)``.

    With ``P`` the set of satisfied slots, the unique-path algebra gives (a sum of positive
    terms, so no cancellation)::

        phi_j(P) = value * (o_j - z_j) * G(P - {j}) * prod_{k not in P + {j}} z_k
        G(Q) = sum_{S in Q} |S|! (d-1-|S|)! / d! * prod_{k in Q - S} z_k
             = sum_m m! (d-1-m)! / d! * e_{|Q|-m}(z_Q)

    where ``e_i(z_Q)`` are the elementary symmetric polynomials of the zero fractions in ``Q``,
    built for every subset from the subset without its lowest slot. Sets
    ``out[j * 2**d + pattern]``.
    """
    n_pat = 1 << d
    coef = np.empty(d)  # m! (d-1-m)! / d!
    for m in range(d):
        c = 1.0 / d
        for i in range(1, m + 1):  # m! (d-1-m)! / (d-1)! = 1 / C(d-1, m)
            c *= i / (d - i)
        coef[m] = c
    poly = np.zeros((n_pat, d + 1))  # poly[Q, i] = e_i(z_Q)
    size = np.zeros(n_pat, dtype=np.int64)
    g = np.empty(n_pat)
    rest = np.empty(n_pat)  # prod of z_k over the slots not in the pattern
    poly[0, 0] = 1.0
    size[0] = 0
    full = n_pat - 1
    rest[full] = 1.0
    for q in range(1, n_pat):
        k = 0
        while not (q >> k) & 1:
            k += 1
        parent = q & (q - 1)
        zk = zero[k]
        m = size[parent]
        size[q] = m + 1
        poly[q, 0] = 1.0
        for i in range(1, m + 1):
            poly[q, i] = poly[parent, i] + zk * poly[parent, i - 1]
        poly[q, m + 1] = zk * poly[parent, m]
    for q in range(n_pat):
        m = size[q]
        if m < d:
            total = 0.0
            for s in range(m + 1):
                total += coef[s] * poly[q, m - s]
            g[q] = total
        else:
            g[q] = 0.0  # unused: a pattern with every slot set has no room for j
        # complement product, from the complement's own subset polynomial (its top term)
        c = full ^ q
        rest[q] = poly[c, size[c]]
    for j in range(d):
        bit = 1 << j
        zj = zero[j]
        base = j * n_pat
        for q in range(n_pat):
            if q & bit:
                out[base + q] = value * (1.0 - zj) * g[q ^ bit] * rest[q]
            else:
                out[base + q] = value * (0.0 - zj) * g[q] * rest[q | bit]


@numba.njit(cache=True, nogil=True)
def _fill_leaf_tables(tables, offset, leaf_d, slot_ptr, slot_zero, leaf_value):
    """Leaf ``l`` with ``offset[l] >= 0``: ``tables[offset[l] + j * 2**d + pattern]`` = its
    contribution to slot ``j`` for a row satisfying the slots set in ``pattern``."""
    for leaf in range(len(leaf_d)):
        off = offset[leaf]
        if off < 0:
            continue
        d = leaf_d[leaf]
        s0 = slot_ptr[leaf]
        leaf_table(d, slot_zero[s0 : s0 + d], leaf_value[leaf], tables[off : off + (d << d)])


@numba.njit(cache=True, nogil=True)
def _direct_leaf(leaf, nr, dec, ph, leaf_d, path_ptr, path_node, path_dir, path_slot, slot_ptr, slot_feature, slot_zero, leaf_value):
    """Add one leaf's contributions for a block of rows, computed per row (no table)."""
    d = leaf_d[leaf]
    s0 = slot_ptr[leaf]
    ones = np.ones((nr, d))
    for s in range(path_ptr[leaf], path_ptr[leaf + 1]):
        node = path_node[s]
        want = path_dir[s]
        j = path_slot[s]
        for r in range(nr):
            if dec[node, r] != want:
                ones[r, j] = 0.0
    out = np.empty((nr, d))
    leaf_shap(d, slot_zero[s0 : s0 + d], ones, leaf_value[leaf], out)
    for j in range(d):
        f = slot_feature[s0 + j]
        for r in range(nr):
            ph[f, r] += out[r, j]


@numba.njit(cache=True, nogil=True)
def _fill_groups(
    tables, multi, g_off, g_bits, g_dpre, g_leaf_ptr, gl_leaf, gl_step_ptr, st_pos, st_want, st_slot, gl_out_ptr, gl_out, leaf_d, leaf_off, scratch
):
    """Sum the leaf tables (in ``scratch``) of each multi-leaf group into its group table."""
    for g in range(len(g_off)):
        if not multi[g]:
            continue
        n_idx = np.int64(1) << g_bits[g]
        base = g_off[g]
        pre_mask = (np.int64(1) << g_dpre[g]) - 1
        for idx in range(n_idx):
            for gl in range(g_leaf_ptr[g], g_leaf_ptr[g + 1]):
                leaf = gl_leaf[gl]
                d = leaf_d[leaf]
                pattern = (idx & pre_mask) | (((np.int64(1) << d) - 1) & ~pre_mask)
                for s in range(gl_step_ptr[gl], gl_step_ptr[gl + 1]):
                    if ((idx >> st_pos[s]) & 1) != st_want[s]:
                        pattern &= ~(np.int64(1) << st_slot[s])
                n_pat = np.int64(1) << d
                lo = leaf_off[leaf]
                o0 = gl_out_ptr[gl]
                for j in range(d):
                    tables[base + gl_out[o0 + j] * n_idx + idx] += scratch[lo + j * n_pat + pattern]


# --- the scoring kernel ------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _contrib_blocks(
    b0,
    b1,
    block,
    M,
    out,
    max_nodes,
    node_ptr,
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
    group_ptr,
    g_off,
    g_bits,
    g_dpre,
    g_pre_ptr,
    pre_node,
    pre_dir,
    pre_slot,
    g_sub_ptr,
    sub_node,
    g_out_ptr,
    out_feature,
    tables,
    direct_ptr,
    direct_leaf,
    leaf_d,
    path_ptr,
    path_node,
    path_dir,
    path_slot,
    slot_ptr,
    slot_feature,
    slot_zero,
    expected_value,
):
    """Contributions of the rows of blocks ``b0:b1`` (``block`` rows each) into ``out``.

    Per block: the rows feature-major (``xt``), then per tree every split's decision for every
    row (``dec``), each group's table index per row (``idx``), and the table entries added to
    the block's contributions (``ph``, feature-major); rows are the inner loop throughout.
    """
    n, p = M.shape
    n_trees = len(node_ptr) - 1
    xt = np.empty((p, block))
    codes = np.empty((max(n_cat_cols, 1), block), dtype=np.int64)
    ph = np.empty((p, block))
    dec = np.zeros((max_nodes, block), dtype=np.uint8)
    idx = np.empty(block, dtype=np.int64)
    for b in range(b0, b1):
        r0 = b * block
        nr = min(block, n - r0)
        load_block(M, r0, nr, cat_col, xt, codes)
        ph[:] = 0.0
        for t in range(n_trees):
            nb = node_ptr[t]
            if node_ptr[t + 1] == nb:
                continue  # a single leaf: only the expected value
            decide_tree(
                xt,
                codes,
                cat_col,
                nb,
                node_ptr[t + 1],
                dec,
                nr,
                split_feature,
                threshold,
                is_categorical,
                default_left,
                missing_type,
                cat_start,
                cat_len,
                cat_bits,
            )
            for g in range(group_ptr[t], group_ptr[t + 1]):
                # index bits: satisfied prefix features, then the decisions below the group node
                full = (np.int64(1) << g_dpre[g]) - 1
                for r in range(nr):
                    idx[r] = full
                for s in range(g_pre_ptr[g], g_pre_ptr[g + 1]):
                    node = pre_node[s]
                    want = pre_dir[s]
                    bit = np.int64(1) << pre_slot[s]
                    for r in range(nr):
                        if dec[node, r] != want:
                            idx[r] &= ~bit
                shift = g_dpre[g]
                for s in range(g_sub_ptr[g], g_sub_ptr[g + 1]):
                    node = sub_node[s]
                    for r in range(nr):
                        idx[r] |= np.int64(dec[node, r]) << shift
                    shift += 1
                n_idx = np.int64(1) << g_bits[g]
                base = g_off[g]
                for j in range(g_out_ptr[g], g_out_ptr[g + 1]):
                    f = out_feature[j]
                    for r in range(nr):
                        ph[f, r] += tables[base + idx[r]]
                    base += n_idx
            for q in range(direct_ptr[t], direct_ptr[t + 1]):
                _direct_leaf(direct_leaf[q], nr, dec, ph, leaf_d, path_ptr, path_node, path_dir, path_slot, slot_ptr, slot_feature, slot_zero, leaf_value)
        for r in range(nr):
            for f in range(p):
                out[r0 + r, f] = ph[f, r]
            out[r0 + r, p] = expected_value
