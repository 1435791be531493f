"""Saabas contributions at the speed of a prediction: a vector-leaf copy of the model.

Saabas attribution gives each split on a row's path the change of the node's expected
value (the hessian-weighted mean of its leaves) to the feature split on; a row's
contributions are therefore a function of the leaf it reaches in each tree. This module
rewrites each tree of a (binary or regression) gbtree model as a multi-target tree with the
same splits whose leaf holds that path's whole contribution vector (features + bias), so
one `inplace_predict` returns every row's contributions: about the cost of a prediction,
where `pred_contribs(approx_contribs=True)` costs several. The copy is checked against
`pred_contribs` on probe rows when it is built; a model it does not fit (multiclass,
categorical splits, DART, linear, too large a copy) or a failed check gives None, and callers use
`pred_contribs`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PROBE_ROWS = 256
TOLERANCE = 1e-4
MAX_LEAF_VALUES = 25_000_000
"""Above this many leaf values (leaves x (features + 1), float32) the copy is not built."""


def _node_means(tree: dict[str, Any]) -> list[float]:
    """Each node's expected value: its leaf value, or its children's hessian-weighted mean."""
    left, right, hess = tree["left_children"], tree["right_children"], tree["sum_hessian"]
    values = tree["split_conditions"]  # a leaf's value is stored in its split condition
    mean = [0.0] * len(left)
    for node in reversed(_preorder(left, right)):
        if left[node] == -1:
            mean[node] = float(values[node])
        else:
            a, b = left[node], right[node]
            cover = hess[a] + hess[b]
            mean[node] = (mean[a] * hess[a] + mean[b] * hess[b]) / cover if cover else 0.0
    return mean


def _preorder(left: list[int], right: list[int]) -> list[int]:
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [right[node], left[node]]
    return order


def _vector_tree(tree: dict[str, Any], index: int, features: int) -> dict[str, Any]:
    """The multi-target tree: same splits, each leaf holding its path's contributions."""
    left, right, split = tree["left_children"], tree["right_children"], tree["split_indices"]
    mean = _node_means(tree)
    size = features + 1
    paths = {0: np.zeros(size)}
    paths[0][features] = mean[0]
    leaves: list[np.ndarray] = []
    leaf_of = list(right)
    for node in _preorder(left, right):
        path = paths.pop(node)
        if left[node] == -1:
            leaf_of[node] = len(leaves)
            leaves.append(path)
            continue
        for child in (left[node], right[node]):
            paths[child] = path.copy()
            paths[child][split[node]] += mean[child] - mean[node]
    return {
        **tree,
        "id": index,
        "right_children": leaf_of,
        "base_weights": [0.0] * (len(left) * size),
        "leaf_weights": np.concatenate(leaves).tolist(),
        "split_conditions": [c if left[n] != -1 else 1e-45 for n, c in enumerate(tree["split_conditions"])],
        "tree_param": {**tree["tree_param"], "size_leaf_vector": str(size)},
    }


def _template(targets: int, features: int) -> dict[str, Any]:
    """A trained one-tree multi-target model: the JSON layout this XGBoost loads."""
    import xgboost as xgb

    x = np.zeros((8, features), np.float32)
    x[:4, 0] = 1
    params = {"tree_method": "hist", "multi_strategy": "multi_output_tree", "max_depth": 1, "nthread": 1}
    y = np.random.default_rng(0).normal(size=(8, targets))
    return dict(json.loads(xgb.train(params, xgb.DMatrix(x, y), 1).save_raw("json")))


def vector_leaf_booster(booster: Any, probe: np.ndarray) -> Any | None:
    """The vector-leaf copy of `booster` (checked on `probe` rows), or None where it does not apply."""
    import xgboost as xgb

    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    gbm = learner["gradient_booster"]
    if gbm.get("name") != "gbtree" or int(learner["learner_model_param"].get("num_class", "0")) > 1:
        return None
    trees = gbm["model"]["trees"]
    if (
        any(t.get("categories_nodes") for t in trees)
        or int(learner["learner_model_param"].get("num_target", 1)) > 1
    ):
        return None
    features = int(learner["learner_model_param"]["num_feature"])
    leaves = sum(t["left_children"].count(-1) for t in trees)
    if leaves * (features + 1) > MAX_LEAF_VALUES:
        log.info("vector-leaf Saabas copy would hold %s values; using pred_contribs", leaves * (features + 1))
        return None
    template = _template(features + 1, features)
    copy = template["learner"]["gradient_booster"]["model"]
    copy["trees"] = [_vector_tree(t, i, features) for i, t in enumerate(trees)]
    copy["tree_info"] = [0] * len(trees)
    copy["iteration_indptr"] = list(range(len(trees) + 1))
    copy["gbtree_model_param"]["num_trees"] = str(len(trees))
    template["learner"]["learner_model_param"]["base_score"] = "[" + ",".join(["0"] * (features + 1)) + "]"
    vector = xgb.Booster()
    vector.load_model(bytearray(json.dumps(template).encode()))
    rows = np.ascontiguousarray(probe[:PROBE_ROWS], dtype=np.float32)
    expected = booster.predict(
        xgb.DMatrix(rows, missing=np.nan), pred_contribs=True, approx_contribs=True, validate_features=False
    )
    got = np.asarray(vector.inplace_predict(rows, validate_features=False))
    offset = float(np.median(expected[:, -1] - got[:, -1]))  # the base margin, outside the trees
    got[:, -1] += offset
    if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE):
        log.warning("vector-leaf Saabas copy disagrees with pred_contribs; using pred_contribs")
        return None
    vector.set_attr(bias_offset=repr(offset))
    return vector


def predict_contributions(vector: Any, matrix: np.ndarray, threads: int) -> np.ndarray:
    """(rows, features + 1) Saabas contributions from the vector-leaf copy, bias last."""
    if threads:
        vector.set_param({"nthread": threads})
    values = np.array(vector.inplace_predict(matrix, validate_features=False), dtype=np.float32)
    values[:, -1] += float(vector.attr("bias_offset") or 0.0)
    return values
