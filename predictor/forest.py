"""``BitmaskForest``: the booster's trees evaluated with a few numpy operations per request.

Why by hand: XGBoost's ``inplace_predict`` costs about 100 µs per call before it looks at a row
(3.2 walks every tree for its depth and builds a regex on each call), which is most of a
one-lead request; and on the one thread a request gets, 1,000 rows of 100 depth-6 trees take
about 3 ms of branchy pointer chasing. Treelite's interpreter (GTIL) has a small fixed cost but
is slower per row than XGBoost; its compiled form needs a C compiler in the serving image.

The method is QuickScorer's (Lucchese et al., SIGIR 2015), vectorised with numpy. Number each
tree's leaves left to right; a row that goes right at a node can never reach the leaves of that
node's left subtree, and the leaf it does reach is the leftmost one that no node has ruled out.
So each tree's leaves fit in one 64-bit mask, and for each feature the masks of all the nodes a
value sends right can be combined ahead of time:

- a numeric column with sorted thresholds ``t_1 < ... < t_k`` has ``k + 2`` states: "goes right
  at the nodes with threshold ≤ t_j" for ``j = 0..k`` (found with ``searchsorted``), and missing
  (NaN, and 0.0 for a model that reads zeros as missing);
- a one-hot block (one categorical feature) has one state per category plus "unknown/missing".

Prediction is then: the state of every feature group, one gather of the precombined masks, an
AND across groups, the lowest set bit of each tree's mask (the exit leaf), and a sum of leaf
values. The result equals XGBoost's to float32 rounding (``tests/test_forest.py``).

Supported: ``gbtree`` boosters with numeric splits, one output, an identity link
(``reg:squarederror`` and the other plain regression losses) and at most 64 leaves per tree,
which is every model the default depth of 6 trains. Anything else raises
:class:`ForestUnsupported` and the caller keeps using XGBoost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

# Objectives whose prediction is the margin itself.
IDENTITY_OBJECTIVES = frozenset({"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"})
MAX_LEAVES = 64
# Rows per pass: a pass's (rows, trees) temporaries stay small enough to be reused by the allocator
# (1,024 rows of 100 trees took 850 page faults a call here, 256 rows none).
CHUNK_ROWS = 256
# States of one combined table: 512 x 100 trees x 8 bytes = 400 KB stays in the CPU's L2 cache.
MAX_TABLE_STATES = 512
_ALL_LEAVES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


class ForestUnsupported(ValueError):
    """The booster has a form the bitmask evaluator does not handle (use XGBoost instead)."""


@dataclass(frozen=True)
class _Node:
    tree: int
    column: int
    threshold: np.float32
    default_left: bool
    left_leaves: np.uint64  # bits of the leaves in the node's left subtree


@dataclass
class BitmaskForest:
    """Precombined leaf masks of a tree ensemble over a known column layout.

    Build it with :meth:`from_booster`; attributes are the fitted tables.

    Attributes:
        base_margin: The booster's base score (its margin, for an identity link).
        threshold_columns: Matrix columns evaluated by threshold search.
        thresholds: For each threshold column, its sorted distinct split thresholds (float32).
        one_hot_blocks: ``(start, width)`` of each one-hot block of columns.
        strides: ``(groups, tables)``: a group's state times its stride, summed per table, is the
            state of a table (groups are threshold columns first, then blocks; small groups
            share a table of their combined states, one gather for several features).
        offsets: Row offset of each table in ``masks``.
        masks: ``(states, n_trees)`` uint64: for each table state, the leaves still reachable.
        leaf_values: ``(n_trees, 64)`` float32 leaf values, left to right.
        zero_is_missing: 0.0 reads as missing (as XGBoost read the training matrix); NaN always does.
    """

    base_margin: np.float32
    threshold_columns: np.ndarray
    thresholds: list[np.ndarray]
    one_hot_blocks: list[tuple[int, int]]
    strides: np.ndarray
    offsets: np.ndarray
    masks: np.ndarray
    leaf_values: np.ndarray
    zero_is_missing: bool = False

    @classmethod
    def from_booster(
        cls, booster: xgb.Booster, n_columns: int, threshold_columns: Sequence[int],
        one_hot_blocks: Sequence[tuple[int, int]], zero_is_missing: bool = False,
    ) -> BitmaskForest:
        """Compiles a booster's trees for a matrix layout.

        Args:
            booster: A trained booster.
            n_columns: Width of the matrices to score; must be the booster's feature count.
            threshold_columns: Columns holding any real value.
            one_hot_blocks: ``(start, width)`` of column blocks holding exactly one 1.0 (a known
                category) or only zeros (unknown or missing).
            zero_is_missing: The booster was trained reading 0.0 as missing (XGBoost's
                ``missing=0.0``); otherwise only NaN is missing.

        Raises:
            ForestUnsupported: The booster is not a single-output, numeric-split, identity-link
                ``gbtree`` with at most 64 leaves per tree, was trained on another number of
                columns, or splits on a column outside the layout.
        """
        learner = json.loads(booster.save_raw("json"))["learner"]
        trained_columns = int(learner["learner_model_param"]["num_feature"])
        if trained_columns != n_columns:
            raise ForestUnsupported(f"the booster was trained on {trained_columns} columns, not {n_columns}")
        objective = learner["objective"]["name"]
        if objective not in IDENTITY_OBJECTIVES:
            raise ForestUnsupported(f"objective {objective!r} does not predict the margin itself")
        gbm = learner["gradient_booster"]
        if gbm["name"] != "gbtree" or int(learner["learner_model_param"].get("num_target", 1)) != 1:
            raise ForestUnsupported("only single-output gbtree boosters are supported")
        trees = gbm["model"]["trees"]
        nodes, leaf_values = _walk_trees(trees)
        # "[5.4E-1]" in XGBoost 3 (one value per target), "5.4E-1" before; both are JSON.
        base_margin = np.float32(np.ravel(json.loads(learner["learner_model_param"]["base_score"]))[0])
        threshold_columns = [int(c) for c in threshold_columns]
        laid_out = set(threshold_columns) | {start + i for start, width in one_hot_blocks for i in range(width)}
        by_column: dict[int, list[_Node]] = {}
        for node in nodes:
            if node.column not in laid_out:
                raise ForestUnsupported(f"a tree splits on column {node.column}, outside the given layout")
            by_column.setdefault(node.column, []).append(node)
        n_trees = len(trees)
        tables, thresholds = [], []
        for column in threshold_columns:
            table, values = _threshold_table(by_column.get(column, []), n_trees)
            tables.append(table)
            thresholds.append(values)
        for start, width in one_hot_blocks:
            block_nodes = [n for c in range(start, start + width) for n in by_column.get(c, [])]
            tables.append(_one_hot_table(block_nodes, start, width, n_trees, zero_is_missing))
        strides, offsets, masks = _merge_groups(tables, n_trees)
        return cls(
            base_margin=base_margin,
            threshold_columns=np.array(threshold_columns, dtype=np.intp),
            thresholds=thresholds,
            one_hot_blocks=[(int(s), int(w)) for s, w in one_hot_blocks],
            strides=strides,
            offsets=offsets,
            masks=masks,
            leaf_values=leaf_values,
            zero_is_missing=zero_is_missing,
        )

    def __post_init__(self) -> None:
        # Request-path helpers derived from the tables, built once.
        width = sum(w for _, w in self.one_hot_blocks)
        self._hot_columns = np.concatenate(
            [np.arange(s, s + w) for s, w in self.one_hot_blocks]) if self.one_hot_blocks else np.empty(0, np.intp)
        # Column i of a block contributes i + 1 to its block's code; 0 means no category set.
        self._hot_codes = np.zeros((width, len(self.one_hot_blocks)), dtype=np.float64)
        row = 0
        for b, (_, w) in enumerate(self.one_hot_blocks):
            self._hot_codes[row:row + w, b] = np.arange(1, w + 1)
            row += w
        self._block_widths = np.array([w for _, w in self.one_hot_blocks], dtype=np.intp)
        self._missing_states = np.array([len(t) + 1 for t in self.thresholds], dtype=np.float64)
        self._tree_rows = (np.arange(self.masks.shape[1], dtype=np.intp) * MAX_LEAVES)[None, :]
        self._flat_leaves = self.leaf_values.ravel()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores a model input matrix laid out as given to :meth:`from_booster`.

        Returns:
            float32 predictions, one per row.
        """
        values = np.asarray(matrix, dtype=np.float32)  # XGBoost compares in float32 too
        if values.shape[0] <= CHUNK_ROWS:
            return self._predict_chunk(values)
        return np.concatenate([self._predict_chunk(values[i:i + CHUNK_ROWS])
                               for i in range(0, values.shape[0], CHUNK_ROWS)])

    def _predict_chunk(self, values: np.ndarray) -> np.ndarray:
        n = values.shape[0]
        states = np.empty((n, self.strides.shape[0]), dtype=np.float64)  # small integers, exact
        k = len(self.threshold_columns)
        if k:
            numeric = values[:, self.threshold_columns]
            for j, thresholds in enumerate(self.thresholds):
                states[:, j] = np.searchsorted(thresholds, numeric[:, j], side="right")
            missing = np.isnan(numeric)
            if self.zero_is_missing:
                missing |= numeric == 0.0
            states[:, :k] = np.where(missing, self._missing_states, states[:, :k])
        if self.one_hot_blocks:
            codes = (values[:, self._hot_columns] != 0.0) @ self._hot_codes  # 1-based category, 0 if none
            states[:, k:] = np.where(codes == 0.0, self._block_widths, codes - 1.0)
        rows = (states @ self.strides).astype(np.intp) + self.offsets
        # One gather and AND per table: faster than reducing a (rows, tables, trees) gather.
        reachable = self.masks[rows[:, 0]]
        for j in range(1, rows.shape[1]):
            reachable &= self.masks[rows[:, j]]
        # The exit leaf is the lowest reachable bit: count the zeros below it.
        lowest = reachable & (~reachable + np.uint64(1))
        leaves = np.bitwise_count(lowest - np.uint64(1)).astype(np.intp)
        return self._flat_leaves[leaves + self._tree_rows].sum(axis=1) + self.base_margin


def _merge_groups(tables: list[np.ndarray], n_trees: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combines the groups' tables into few tables of at most :data:`MAX_TABLE_STATES` states.

    Two groups with ``a`` and ``b`` states become one table of ``a * b`` states (the AND of
    every pair of rows): one gather instead of two per pass. A group that no tree splits on
    (all leaves reachable in every state) is left out.

    Returns:
        ``(strides, offsets, masks)`` as in :class:`BitmaskForest`.
    """
    used = [g for g, table in enumerate(tables) if (table != _ALL_LEAVES).any()]
    merged: list[list[int]] = []
    for g in sorted(used, key=lambda g: len(tables[g])):
        if merged and np.prod([len(tables[h]) for h in merged[-1]]) * len(tables[g]) <= MAX_TABLE_STATES:
            merged[-1].append(g)
        else:
            merged.append([g])
    strides = np.zeros((len(tables), max(len(merged), 1)), dtype=np.float64)
    combined = [np.full((1, n_trees), _ALL_LEAVES)] if not merged else []
    for m, groups in enumerate(merged):
        table = tables[groups[0]]
        for g in groups[1:]:
            table = (table[:, None, :] & tables[g][None, :, :]).reshape(-1, n_trees)
        stride = 1
        for g in reversed(groups):
            strides[g, m] = stride
            stride *= len(tables[g])
        combined.append(table)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in combined])[:-1]]).astype(np.intp)
    return strides, offsets, np.ascontiguousarray(np.concatenate(combined))


def _walk_trees(trees: list[dict[str, Any]]) -> tuple[list[_Node], np.ndarray]:
    """Every split node with its left-subtree leaf mask, and the leaf values left to right."""
    nodes: list[_Node] = []
    leaf_values = np.zeros((len(trees), MAX_LEAVES), dtype=np.float32)
    for t, tree in enumerate(trees):
        if any(int(s) != 0 for s in tree.get("split_type", [])):
            raise ForestUnsupported("categorical splits are not supported")
        if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
            raise ForestUnsupported("vector leaves are not supported")
        left, right = tree["left_children"], tree["right_children"]
        conditions, columns, default_left = tree["split_conditions"], tree["split_indices"], tree["default_left"]
        n_leaves = 0

        def visit(node: int) -> tuple[int, int]:
            """Numbers the leaves under ``node``; returns their range [first, end)."""
            nonlocal n_leaves
            if left[node] == -1:
                if n_leaves == MAX_LEAVES:
                    raise ForestUnsupported(f"a tree has more than {MAX_LEAVES} leaves")
                leaf_values[t, n_leaves] = conditions[node]  # a leaf keeps its value there
                n_leaves += 1
                return n_leaves - 1, n_leaves
            first, middle = visit(left[node])
            _, end = visit(right[node])
            bits = ((1 << (middle - first)) - 1) << first
            nodes.append(_Node(t, int(columns[node]), np.float32(conditions[node]), bool(default_left[node]),
                               np.uint64(bits)))
            return first, end

        visit(0)
    return nodes, leaf_values


def _threshold_table(nodes: list[_Node], n_trees: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of a threshold column: row j = right at every threshold ≤ thresholds[j-1]; last row = missing."""
    thresholds = np.unique(np.array([n.threshold for n in nodes], dtype=np.float32))
    table = np.full((len(thresholds) + 2, n_trees), _ALL_LEAVES)
    for node in nodes:
        first_right = int(np.searchsorted(thresholds, node.threshold)) + 1
        table[first_right:len(thresholds) + 1, node.tree] &= ~node.left_leaves
        if not node.default_left:
            table[-1, node.tree] &= ~node.left_leaves
    return table, thresholds


def _one_hot_table(nodes: list[_Node], start: int, width: int, n_trees: int, zero_is_missing: bool) -> np.ndarray:
    """Masks of a one-hot block: row i = category i set (1.0, the others 0.0); last row = none set."""
    table = np.full((width + 1, n_trees), _ALL_LEAVES)
    for node in nodes:
        for state in range(width + 1):
            if state == node.column - start:
                goes_right = np.float32(1.0) >= node.threshold
            elif zero_is_missing:
                goes_right = not node.default_left
            else:
                goes_right = np.float32(0.0) >= node.threshold
            if goes_right:
                table[state, node.tree] &= ~node.left_leaves
    return table
