"""scikit-learn models exported with skl2onnx, and onnxruntime's predictions for them: the
reference of tests/ml.rs's ONNX cases.

    python3 make_onnx.py ROWS.ndjson OUT_DIR

Trains, on the first half of the rows without NULLs, a linear regression, gradient boosting, a
random forest, an MLP and a scaled linear regression (double inputs) on the units sold, and a
logistic regression (zipmap=False) on whether the basket converted; writes OUT_DIR/<name>.onnx
and prints {name: [[output columns…] per row]} as onnxruntime computes them on every row (a
NULL feature passed as NaN; a NaN output printed as null).
"""
import json
import math
import os
import sys

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
out_dir = sys.argv[2]
cols = ["price", "discount", "promo", "hour"]


def num(v):
    if v is None:
        return math.nan
    return float(v)


X = np.array([[num(r[c]) for c in cols] for r in rows])
units = np.array([r["units"] for r in rows], dtype=float)
bought = np.array([1 if r["bought"] else 0 for r in rows])
train = ~np.isnan(X).any(axis=1) & (np.arange(len(rows)) < len(rows) // 2)

models = {
    "linear": (LinearRegression(), units, "float"),
    "gbr": (GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0), units, "float"),
    "forest": (RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0), units, "float"),
    "mlp": (MLPRegressor(hidden_layer_sizes=(16,), max_iter=400, random_state=0), units, "float"),
    "scaled": (make_pipeline(StandardScaler(), LinearRegression()), units, "double"),
    "logistic": (LogisticRegression(max_iter=1000), bought, "float"),
}
result = {}
for name, (model, target, kind) in models.items():
    model.fit(X[train], target[train])
    tensor = FloatTensorType if kind == "float" else DoubleTensorType
    options = {id(model): {"zipmap": False}} if name == "logistic" else None
    onx = convert_sklearn(model, initial_types=[("input", tensor([None, len(cols)]))], options=options)
    path = os.path.join(out_dir, f"{name}.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = X.astype(np.float32 if kind == "float" else np.float64)
    outs = sess.run(None, {"input": feed})
    per_row = []
    for i in range(len(rows)):
        vals = []
        for o in outs:
            o = np.asarray(o)
            cell = o[i]
            vals.extend(np.atleast_1d(cell).astype(float).tolist())
        per_row.append([None if math.isnan(v) else v for v in vals])
    result[name] = per_row
# a model with one input per column, named as the columns but in another order (tillflow
# matches them by name): Concat then MatMul, built with onnx.helper
from onnx import TensorProto, helper, numpy_helper

names = ["hour", "price", "promo", "discount"]
weights = numpy_helper.from_array(np.array([[0.5], [-0.3], [2.0], [4.0]], dtype=np.float32), "w")
graph = helper.make_graph(
    [helper.make_node("Concat", names, ["x"], axis=1), helper.make_node("MatMul", ["x", "w"], ["y"])],
    "per_column",
    [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in names],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    [weights],
)
path = os.path.join(out_dir, "columns.onnx")
with open(path, "wb") as f:
    f.write(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feed = {n: X[:, cols.index(n)].astype(np.float32).reshape(-1, 1) for n in names}
(y,) = sess.run(None, feed)
result["columns"] = [[None if math.isnan(v) else float(v)] for v in y[:, 0]]
print(json.dumps(result))
