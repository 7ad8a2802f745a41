"""River's predictions for the rows tillflow's online models see, the reference of tests/ml.rs.

    python3 reference_online.py ROWS.ndjson CONFIG.json

CONFIG: {"algorithm": "linear_regression" | "logistic_regression", "optimizer": "sgd" |
"adagrad", "lr", "intercept_lr", "l2", "clip", "eps", "buckets", "label", "numeric": [names],
"strings": [names], "partition": name or null}; or for "algorithm": "hoeffding_tree_regressor"
tree.HoeffdingTreeRegressor with "grace_period", "delta", "tau", "max_depth" (null: none),
"min_samples_split", "leaf_prediction", "model_selector_decay" (river's defaults where absent),
and "summary": a file to write each key's tree to ({key: {"leaves", "height", "root":
[feature, threshold] or null}}). Each row is predicted (predict_one, or
predict_proba_one's P(True)) by its key's model, then learned from when its label is not null
(river's progressive validation). Numeric features that are null are left out of the row's dict;
STRING features go through preprocessing.FeatureHasher (river's own, with n_features=buckets,
seed=0). Prints {"seed": the hasher's murmur seed, "predictions": {id: value}}.
"""
import json
import sys

from river import linear_model, optim, preprocessing, tree

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cfg = json.load(open(sys.argv[2]))
hasher = preprocessing.FeatureHasher(n_features=cfg.get("buckets", 1024), seed=0)
TREE = cfg["algorithm"] == "hoeffding_tree_regressor"


def new_tree():
    options = {
        k: cfg[k]
        for k in (
            "grace_period",
            "delta",
            "tau",
            "max_depth",
            "min_samples_split",
            "leaf_prediction",
            "model_selector_decay",
        )
        if k in cfg
    }
    return tree.HoeffdingTreeRegressor(**options)


def new_model():
    if TREE:
        return new_tree()
    if cfg["optimizer"] == "sgd":
        opt = optim.SGD(cfg["lr"])
    else:
        opt = optim.AdaGrad(cfg["lr"], eps=cfg["eps"])
    kind = (
        linear_model.LinearRegression
        if cfg["algorithm"] == "linear_regression"
        else linear_model.LogisticRegression
    )
    return kind(
        optimizer=opt,
        l2=cfg["l2"],
        intercept_lr=cfg["intercept_lr"],
        clip_gradient=cfg["clip"],
    )


models = {}
out = {}
for r in rows:
    x = {}
    for name in cfg["numeric"]:
        v = r.get(name)
        if v is not None:
            x[name] = float(v)
    strings = {name: r[name] for name in cfg.get("strings", []) if r.get(name) is not None}
    if strings:
        x.update(hasher.transform_one(strings))
    key = r.get(cfg["partition"]) if cfg["partition"] else None
    m = models.setdefault(key, new_model())
    if TREE or cfg["algorithm"] == "linear_regression":
        p = m.predict_one(x)
    else:
        p = m.predict_proba_one(x)[True]
    out[r["id"]] = p
    y = r.get(cfg["label"])
    if y is not None:
        m.learn_one(x, y)
if TREE and cfg.get("summary"):
    summary = {}
    for key, m in models.items():
        root = m._root
        split = [root.feature, root.threshold] if hasattr(root, "threshold") else None
        summary[str(key)] = {"leaves": m.n_leaves, "height": m.height, "root": split}
    with open(cfg["summary"], "w") as f:
        json.dump(summary, f)
print(json.dumps({"seed": int(hasher._seed), "predictions": out}))
