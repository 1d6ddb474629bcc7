"""A LightGBM booster as flat arrays that numba kernels can walk.

`TreeEnsemble.from_booster` parses ``booster.dump_model()`` (the trees that ``booster.predict``
uses by default: up to the best iteration when the booster has one; numerical thresholds from
the model text, which keeps ``inf`` where the JSON clips it to 1e300) into per-node and per-leaf
numpy arrays, and `TreeEnsemble.matrix` turns a frame or array into exactly the float64 matrix
LightGBM's ``predict`` evaluates. The decision rules reproduce LightGBM's ``Tree::Decision``
(``include/LightGBM/tree.h``) bit for bit:

* numerical split (``<=``): with missing type *None* a NaN is read as 0.0; with *Zero*, NaN and
  every value in ``[-kZeroThreshold, kZeroThreshold]`` take the default direction; with *NaN*,
  NaN takes the default direction; any other value goes left iff ``x <= threshold``.
* categorical split (``==``): the value is truncated toward zero to an int; negative values go
  right, and so do NaN and values past 2**31 (``static_cast<int>`` gives INT_MIN for them on
  x86-64, the platform this is tested on); otherwise the category goes left iff its bit is set
  in the split's bitset.

LightGBM's dense predictor also drops every ``|x| <= kZeroThreshold`` entry (so it reads 0.0);
`TreeEnsemble.matrix` does the same.

numba compiles the kernels once and caches them next to the sources (``cache=True``). Its cache
does not notice a change in *another* module: after editing a kernel here, clear the
``__pycache__/*.nbi``/``*.nbc`` files of ``treeshap`` and ``change_shap`` too.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd

__all__ = ["K_ZERO_THRESHOLD", "MISSING_NONE", "MISSING_ZERO", "MISSING_NAN", "TreeEnsemble", "to_matrix"]

# LightGBM's kZeroThreshold is the float literal 1e-35f widened to double.
K_ZERO_THRESHOLD = float(np.float32(1e-35))
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
_INT_LIMIT = 2147483648.0  # static_cast<int> of a double at or past 2**31 is INT_MIN on x86-64


@dataclass(eq=False)
class TreeEnsemble:
    """The trees of a single-output LightGBM model as flat arrays.

    Internal nodes and leaves are numbered per tree as LightGBM numbers them (``split_index`` and
    ``leaf_index``); ``node_ptr[t]`` and ``leaf_ptr[t]`` give tree ``t``'s first global node and
    leaf. ``left``/``right`` hold *local* child ids: ``>= 0`` an internal node of the same tree,
    ``< 0`` the leaf ``~child``.

    Attributes
    ----------
    n_features : int
        Number of input columns (``max_feature_idx + 1``).
    feature_names : list of str
    pandas_categorical : list of list or None
        The training categories of each pandas categorical column, in column order.
    node_ptr, leaf_ptr : ndarray of int64, shape (n_trees + 1,)
    split_feature : ndarray of int32, shape (n_nodes,)
    threshold : ndarray of float64, shape (n_nodes,)
        Numerical threshold (unused for categorical splits).
    is_categorical, default_left, missing_type : ndarray of uint8, shape (n_nodes,)
    left, right : ndarray of int32, shape (n_nodes,)
    node_count : ndarray of float64, shape (n_nodes,)
        ``internal_count``: training rows through the node (the cover of path-dependent TreeSHAP).
    cat_start : ndarray of int64, shape (n_nodes,)
    cat_len : ndarray of int32, shape (n_nodes,)
        Offset and number of uint32 words of a categorical split's bitset in ``cat_bits``.
    cat_bits : ndarray of uint32
    leaf_value, leaf_count : ndarray of float64, shape (n_leaves,)
    tree_expected : ndarray of float64, shape (n_trees,)
        Each tree's cover-weighted mean leaf value (LightGBM's ``Tree::ExpectedValue``).
    expected_value : float
        Sum of ``tree_expected`` in tree order: the last column of ``pred_contrib``.
    unsupported : str or None
        Why the arrays cannot stand for the model (linear trees, several outputs, averaged
        output); ``None`` when they can.
    cat_col : ndarray of int64, shape (n_features,)
        Per feature, its row among the block's category codes; -1 for a numerical feature.
    """

    n_features: int
    feature_names: list
    pandas_categorical: list | None
    node_ptr: np.ndarray
    leaf_ptr: np.ndarray
    split_feature: np.ndarray
    threshold: np.ndarray
    is_categorical: np.ndarray
    default_left: np.ndarray
    missing_type: np.ndarray
    left: np.ndarray
    right: np.ndarray
    node_count: np.ndarray
    cat_start: np.ndarray
    cat_len: np.ndarray
    cat_bits: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    tree_expected: np.ndarray
    expected_value: float
    unsupported: str | None = None
    _arrays: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        # Per feature, its row in a block's category codes (-1: not split on as a category).
        categorical = np.zeros(self.n_features, dtype=bool)
        categorical[self.split_feature[self.is_categorical != 0]] = True
        self.cat_col = np.full(self.n_features, -1, dtype=np.int64)
        self.cat_col[categorical] = np.arange(int(categorical.sum()))
        self.n_cat_cols = int(categorical.sum())

    @property
    def n_trees(self) -> int:
        return len(self.node_ptr) - 1

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_value)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_booster(cls, booster: lgb.Booster, num_iteration: int | None = None) -> TreeEnsemble:
        """Parse a booster's trees.

        Parameters
        ----------
        booster : lightgbm.Booster
        num_iteration : int, optional
            Number of boosting iterations to use; by default the booster's ``best_iteration``
            when it has one, else all of them (what ``booster.predict`` uses by default).
        """
        if num_iteration is None:
            num_iteration = booster.best_iteration if booster.best_iteration and booster.best_iteration > 0 else -1
        dump = booster.dump_model(num_iteration=num_iteration)
        thresholds = model_thresholds(booster.model_to_string(num_iteration=num_iteration))
        if len(thresholds) != len(dump["tree_info"]):  # pragma: no cover - LightGBM writes both
            raise ValueError("the model text and the JSON dump disagree on the number of trees")
        return cls.from_dump(dump, pandas_categorical=booster.pandas_categorical, thresholds=thresholds)

    @classmethod
    def from_dump(cls, dump: dict, pandas_categorical: list | None = None, thresholds: list | None = None) -> TreeEnsemble:
        """Parse the dict of ``booster.dump_model()``.

        Parameters
        ----------
        dump : dict
        pandas_categorical : list of list, optional
            Defaults to the dump's own ``pandas_categorical``.
        thresholds : list of list of float, optional
            Per tree, the ``threshold=`` values of the model text (`model_thresholds`). The JSON
            dump clips thresholds to +-1e300 (``Common::AvoidInf``), while LightGBM splits on
            ``x <= inf`` to separate NaN from every number; without the text, a dumped +-1e300
            is read as +-inf.
        """
        reasons = []
        if int(dump.get("num_tree_per_iteration", 1)) != 1 or int(dump.get("num_class", 1)) != 1:
            reasons.append("more than one tree per iteration (multiclass)")
        if dump.get("average_output", False):
            reasons.append("averaged output (random forest)")
        n_features = int(dump["max_feature_idx"]) + 1
        if pandas_categorical is None:
            pandas_categorical = dump.get("pandas_categorical")

        nodes: dict[str, list] = {k: [] for k in ("feat", "thr", "cat", "dl", "mt", "left", "right", "count", "cstart", "clen")}
        cat_words: list[int] = []
        leaf_value: list[float] = []
        leaf_count: list[float] = []
        node_ptr, leaf_ptr, tree_expected = [0], [0], []
        linear = False

        for t, info in enumerate(dump["tree_info"]):
            root = info["tree_structure"]
            text_thr = thresholds[t] if thresholds is not None else None
            n_leaves = int(info["num_leaves"])
            n_int = n_leaves - 1
            base = len(nodes["feat"])
            for values in nodes.values():
                values.extend([0] * n_int)
            t_leaf_value = [0.0] * n_leaves
            t_leaf_count = [0.0] * n_leaves
            if n_leaves == 1:
                t_leaf_value[0] = float(root["leaf_value"])
                t_leaf_count[0] = float(root.get("leaf_count", 0))
                linear |= "leaf_coeff" in root
            else:
                stack = [root]
                while stack:
                    node = stack.pop()
                    k = base + int(node["split_index"])
                    nodes["feat"][k] = int(node["split_feature"])
                    nodes["dl"][k] = int(bool(node["default_left"]))
                    nodes["mt"][k] = _MISSING[node["missing_type"]]
                    nodes["count"][k] = float(node["internal_count"])
                    if node["decision_type"] == "==":
                        nodes["cat"][k] = 1
                        cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
                        words = [0] * (max(cats) // 32 + 1 if cats else 1)
                        for c in cats:
                            words[c // 32] |= 1 << (c % 32)
                        nodes["cstart"][k] = len(cat_words)
                        nodes["clen"][k] = len(words)
                        cat_words.extend(words)
                        nodes["thr"][k] = 0.0
                    elif node["decision_type"] == "<=":
                        if text_thr is not None:
                            nodes["thr"][k] = text_thr[int(node["split_index"])]
                        else:
                            value = float(node["threshold"])
                            nodes["thr"][k] = value if abs(value) < 1e300 else np.copysign(np.inf, value)
                    else:  # pragma: no cover - LightGBM has only these two
                        raise ValueError(f"unknown decision type {node['decision_type']!r}")
                    for side in ("left", "right"):
                        child = node[f"{side}_child"]
                        if "split_index" in child:
                            nodes[side][k] = int(child["split_index"])
                            stack.append(child)
                        else:
                            leaf = int(child["leaf_index"])
                            nodes[side][k] = ~leaf
                            t_leaf_value[leaf] = float(child["leaf_value"])
                            t_leaf_count[leaf] = float(child["leaf_count"])
                            linear |= "leaf_coeff" in child
            # Tree::ExpectedValue, in LightGBM's order of operations.
            if n_leaves == 1:
                expected = t_leaf_value[0]
            else:
                total = nodes["count"][base]
                expected = 0.0
                for value, count in zip(t_leaf_value, t_leaf_count):
                    expected += (count / total) * value
            tree_expected.append(expected)
            leaf_value.extend(t_leaf_value)
            leaf_count.extend(t_leaf_count)
            node_ptr.append(len(nodes["feat"]))
            leaf_ptr.append(len(leaf_value))
        if linear:
            reasons.append("linear trees")

        expected_value = 0.0
        for e in tree_expected:
            expected_value += e
        return cls(
            n_features=n_features,
            feature_names=list(dump.get("feature_names") or [f"Column_{i}" for i in range(n_features)]),
            pandas_categorical=pandas_categorical,
            node_ptr=np.asarray(node_ptr, dtype=np.int64),
            leaf_ptr=np.asarray(leaf_ptr, dtype=np.int64),
            split_feature=np.asarray(nodes["feat"], dtype=np.int32),
            threshold=np.asarray(nodes["thr"], dtype=np.float64),
            is_categorical=np.asarray(nodes["cat"], dtype=np.uint8),
            default_left=np.asarray(nodes["dl"], dtype=np.uint8),
            missing_type=np.asarray(nodes["mt"], dtype=np.uint8),
            left=np.asarray(nodes["left"], dtype=np.int32),
            right=np.asarray(nodes["right"], dtype=np.int32),
            node_count=np.asarray(nodes["count"], dtype=np.float64),
            cat_start=np.asarray(nodes["cstart"], dtype=np.int64),
            cat_len=np.asarray(nodes["clen"], dtype=np.int32),
            cat_bits=np.asarray(cat_words if cat_words else [0], dtype=np.uint32),
            leaf_value=np.asarray(leaf_value, dtype=np.float64),
            leaf_count=np.asarray(leaf_count, dtype=np.float64),
            tree_expected=np.asarray(tree_expected, dtype=np.float64),
            expected_value=expected_value,
            unsupported="; ".join(reasons) or None,
        )

    # --- inputs --------------------------------------------------------------------------------
    def matrix(self, X) -> np.ndarray:
        """The float64 matrix LightGBM's ``predict`` evaluates for ``X`` (see `to_matrix`)."""
        return to_matrix(X, self.n_features, self.pandas_categorical)

    # --- evaluation ----------------------------------------------------------------------------
    def arrays(self) -> tuple:
        """The node and leaf arrays in the order the numba kernels take them."""
        if self._arrays is None:
            self._arrays = (
                self.split_feature,
                self.threshold,
                self.is_categorical,
                self.default_left,
                self.missing_type,
                self.left,
                self.right,
                self.cat_start,
                self.cat_len,
                self.cat_bits,
            )
        return self._arrays

    def raw_score(self, X) -> np.ndarray:
        """Sum of the leaf values each row reaches: ``booster.predict(X, raw_score=True)``.

        Parameters
        ----------
        X : ndarray or pandas.DataFrame, shape (n, n_features)

        Returns
        -------
        ndarray of float64, shape (n,)
        """
        if self.unsupported:
            raise ValueError(f"the tree arrays do not represent this model: {self.unsupported}")
        M = self.matrix(X)
        return _raw_score(M, self.node_ptr, self.leaf_ptr, self.leaf_value, *self.arrays())

    def leaf_index(self, X) -> np.ndarray:
        """Per row and tree, the local leaf reached: ``booster.predict(X, pred_leaf=True)``."""
        M = self.matrix(X)
        return _leaf_index(M, self.node_ptr, *self.arrays())


def model_thresholds(model_text: str) -> list[list[float]]:
    """Per tree, the ``threshold=`` line of a LightGBM text model (exact, ``inf`` included)."""
    out = []
    for block in model_text.split("\nTree=")[1:]:
        values: list[float] = []
        for line in block.split("\n"):
            if line.startswith("threshold="):
                values = [float(v) for v in line[len("threshold=") :].split()]
                break
            if line.startswith("end of trees"):
                break
        out.append(values)
    return out


# --- input conversion, as lightgbm.basic does it -----------------------------------------------
def to_matrix(X, n_features: int, pandas_categorical: list | None = None) -> np.ndarray:
    """Convert ``X`` as ``lightgbm.Booster.predict`` does, to a C-contiguous float64 matrix.

    A DataFrame's categorical columns are re-coded to the training categories
    (``pandas_categorical``) and passed as their codes, missing or unseen categories as NaN; the
    frame is cast to the common float type of its columns (float32 only when every column is
    float32) and then read as double. An array that is neither float32 nor float64 is read as
    float32, as LightGBM does. Finally values with ``|x| <= kZeroThreshold`` become 0.0, as in
    LightGBM's dense-row reader.

    Parameters
    ----------
    X : ndarray or pandas.DataFrame, shape (n, n_features)
    n_features : int
    pandas_categorical : list of list, optional

    Returns
    -------
    ndarray of float64, shape (n, n_features)
    """
    if isinstance(X, pd.DataFrame):
        data = X.copy(deep=False)
        cat_cols = [c for c, dtype in zip(data.columns, data.dtypes) if isinstance(dtype, pd.CategoricalDtype)]
        if pandas_categorical is not None and len(pandas_categorical) != len(cat_cols):
            raise ValueError("the frame's categorical columns do not match the model's (pandas_categorical)")
        if cat_cols:
            for col, categories in zip(cat_cols, pandas_categorical or [list(data[c].cat.categories) for c in cat_cols]):
                if list(data[col].cat.categories) != list(categories):
                    data[col] = data[col].cat.set_categories(categories)
            for col in cat_cols:
                codes = data[col].cat.codes.to_numpy().astype(np.float64)
                codes[codes == -1] = np.nan
                data[col] = codes
        dtypes = [dtype.type for dtype in data.dtypes] + [np.float32]
        for dtype in dtypes:
            if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
                raise ValueError(f"pandas dtypes must be int, float or bool, not {dtype}")
        target = np.result_type(*dtypes)
        try:
            M = data.to_numpy(dtype=target, copy=False)
        except (TypeError, ValueError):
            M = data.to_numpy(dtype=target, na_value=np.nan)
    else:
        M = np.asarray(X)
        if M.ndim == 1:
            M = M.reshape(1, -1)
        if M.dtype not in (np.float32, np.float64):
            M = M.astype(np.float32)
    if M.ndim != 2:
        raise ValueError("input must be 2-dimensional")
    if M.shape[1] != n_features:
        raise ValueError(f"input has {M.shape[1]} columns, the model {n_features}")
    M = np.array(M, dtype=np.float64, order="C", copy=True)
    M[np.abs(M) <= K_ZERO_THRESHOLD] = 0.0
    return M


# --- numba kernels -----------------------------------------------------------------------------
# Helpers take scalars only: numba reference-counts every array passed to a function that it
# does not inline, which costs more than a decision itself in a per-row loop.
@numba.njit(cache=True, inline="always")
def numeric_left(x, threshold, missing_type, default_left):
    """LightGBM's ``NumericalDecision``: True iff ``x`` goes left."""
    if np.isnan(x):
        if missing_type == MISSING_NAN:
            return default_left != 0
        x = 0.0
    if missing_type == MISSING_ZERO and x >= -K_ZERO_THRESHOLD and x <= K_ZERO_THRESHOLD:
        return default_left != 0
    return x <= threshold


@numba.njit(cache=True, inline="always")
def category_code(x):
    """The category ``CategoricalDecision`` looks up (``static_cast<int>``, truncating toward
    zero), or -1 when it sends the value right whatever the bitset (NaN, negative, >= 2**31)."""
    if np.isnan(x) or x <= -1.0 or x >= _INT_LIMIT:
        return np.int64(-1)
    return np.int64(x)


@numba.njit(cache=True, inline="always")
def in_bitset(code, cat_bits, start, length):
    """LightGBM's ``FindInBitset`` for a code from `category_code`."""
    if code < 0:
        return False
    word = code >> 5
    if word >= length:
        return False
    return ((np.int64(cat_bits[start + word]) >> (code & 31)) & 1) == 1


@numba.njit(cache=True, nogil=True)
def decide_tree(xt, codes, cat_col, nb, ne, dec, n_rows, split_feature, threshold, is_categorical, default_left, missing_type, cat_start, cat_len, cat_bits):
    """Evaluate every split of one tree (global nodes ``nb:ne``) for a block of rows.

    ``xt[f, r]`` is the block feature-major; ``codes[cat_col[f], r]`` the `category_code` of a
    categorical feature ``f``. Sets ``dec[k - nb, r] = 1`` iff row ``r`` goes left at node ``k``.
    The loops are specialised per split kind so that the numerical ones vectorise.
    """
    for k in range(nb, ne):
        local = k - nb
        f = split_feature[k]
        if is_categorical[k]:
            ci = cat_col[f]
            start = cat_start[k]
            length = cat_len[k]
            for r in range(n_rows):
                dec[local, r] = in_bitset(codes[ci, r], cat_bits, start, length)
            continue
        thr = threshold[k]
        dl = default_left[k] != 0
        mt = missing_type[k]
        if mt == MISSING_NONE:  # NaN reads as 0.0
            zero_left = 0.0 <= thr
            for r in range(n_rows):
                v = xt[f, r]
                dec[local, r] = zero_left if np.isnan(v) else v <= thr
        elif mt == MISSING_NAN:  # NaN goes the default way
            for r in range(n_rows):
                v = xt[f, r]
                dec[local, r] = dl if np.isnan(v) else v <= thr
        else:  # Zero: NaN and |x| <= kZeroThreshold go the default way
            for r in range(n_rows):
                v = xt[f, r]
                zero = np.isnan(v) or (v >= -K_ZERO_THRESHOLD and v <= K_ZERO_THRESHOLD)
                dec[local, r] = dl if zero else v <= thr


@numba.njit(cache=True, nogil=True)
def load_block(M, r0, n_rows, cat_col, xt, codes):
    """Copy rows ``r0:r0+n_rows`` of ``M`` feature-major into ``xt`` and the category codes of
    the categorical features into ``codes``."""
    p = M.shape[1]
    for r in range(n_rows):
        for f in range(p):
            xt[f, r] = M[r0 + r, f]
    for f in range(p):
        ci = cat_col[f]
        if ci >= 0:
            for r in range(n_rows):
                codes[ci, r] = category_code(xt[f, r])


@numba.njit(cache=True, inline="always")
def _find_leaf(M, i, base, split_feature, threshold, is_categorical, default_left, missing_type, left, right, cat_start, cat_len, cat_bits):
    node = 0
    while node >= 0:
        k = base + node
        x = M[i, split_feature[k]]
        if is_categorical[k]:
            go = in_bitset(category_code(x), cat_bits, cat_start[k], cat_len[k])
        else:
            go = numeric_left(x, threshold[k], missing_type[k], default_left[k])
        node = left[k] if go else right[k]
    return ~node


@numba.njit(cache=True, nogil=True)
def _raw_score_blocks(
    b0,
    b1,
    block,
    M,
    out,
    node_ptr,
    leaf_ptr,
    leaf_value,
    split_feature,
    threshold,
    is_categorical,
    default_left,
    missing_type,
    left,
    right,
    cat_start,
    cat_len,
    cat_bits,
):
    n_trees = len(node_ptr) - 1
    for i in range(b0 * block, min(M.shape[0], b1 * block)):
        s = 0.0
        for t in range(n_trees):
            leaf = 0
            if node_ptr[t + 1] > node_ptr[t]:
                leaf = _find_leaf(
                    M, i, node_ptr[t], split_feature, threshold, is_categorical, default_left, missing_type, left, right, cat_start, cat_len, cat_bits
                )
            s += leaf_value[leaf_ptr[t] + leaf]  # tree by tree from 0.0, as GBDT::PredictRaw
        out[i] = s


def _raw_score(M, node_ptr, leaf_ptr, leaf_value, *arrays):
    out = np.empty(M.shape[0])
    run_blocks(_raw_score_blocks, M.shape[0], 1024, M, out, node_ptr, leaf_ptr, leaf_value, *arrays)
    return out


def run_blocks(kernel, n_rows: int, block: int, *args) -> None:
    """Run ``kernel(b0, b1, block, *args)`` over the row blocks ``0 .. ceil(n_rows / block)``.

    The kernels are numba functions that release the GIL; the blocks are shared out, a few
    chunks per thread, among ``numba.get_num_threads()`` threads (``NUMBA_NUM_THREADS``). A
    thread pool rather than ``prange``: a ``parallel=True`` wrapper of the kernels takes ~10 s to
    compile whenever numba's cache is cold (a fresh checkout, CI), for the same speed.
    """
    n_blocks = (n_rows + block - 1) // block
    threads = min(numba.get_num_threads(), n_blocks)
    if threads <= 1:
        if n_blocks:
            kernel(0, n_blocks, block, *args)
        return
    step = max(1, n_blocks // (4 * threads))
    bounds = [(b, min(b + step, n_blocks)) for b in range(0, n_blocks, step)]
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(kernel, b0, b1, block, *args) for b0, b1 in bounds]:
            future.result()


@numba.njit(cache=True, nogil=True)
def _leaf_index(M, node_ptr, split_feature, threshold, is_categorical, default_left, missing_type, left, right, cat_start, cat_len, cat_bits):
    n = M.shape[0]
    n_trees = len(node_ptr) - 1
    out = np.zeros((n, n_trees), dtype=np.int32)
    for i in range(n):
        for t in range(n_trees):
            if node_ptr[t + 1] > node_ptr[t]:
                out[i, t] = _find_leaf(
                    M, i, node_ptr[t], split_feature, threshold, is_categorical, default_left, missing_type, left, right, cat_start, cat_len, cat_bits
                )
    return out
