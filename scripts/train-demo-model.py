#!/usr/bin/env python3
"""Trains the retail demo's offline model, examples/retail/demo/models/units_ratio.onnx.

    python3 scripts/train-demo-model.py [TILLFLOW_BINARY]

Runs tillflow over the first simulated week of the demo's chain with another seed than the
demo's (seed 1000, 60 receipts per store-hour: the demo's rate), takes each store × category
hour's units over its level (its mean over the previous 14 opening hours, as
examples/retail/demo/80_units_forecast.sql computes it), and fits scikit-learn's gradient boosting
(100 trees of depth 3, seed 0) of that ratio on the hour, weekday, average discount and share of
discounted lines; exports it with skl2onnx (scripts/setup.sh pins both). The ratio makes the model
independent of a store's size and of the generator's rate.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/tillflow-target")), "release", "tillflow")
demo = os.path.join(root, "examples", "retail", "demo")
tables = open(os.path.join(demo, "00_tables.sql")).read()
pipeline = open(os.path.join(demo, "80_units_forecast.sql")).read()
# the pipeline's views, without its models and sink
views = pipeline[: pipeline.index("CREATE MODEL")]
features = ["hour_no", "weekday_no", "avg_discount", "promo_share"]
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "hours")
    job = os.path.join(tmp, "job.sql")
    with open(job, "w") as f:
        f.write(tables + "\n" + views + f"""
CREATE TABLE hours (units DOUBLE, level DOUBLE, {", ".join(c + " DOUBLE" for c in features)})
WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json');
INSERT INTO hours SELECT units, level, {", ".join(features)} FROM category_levels;
""")
    args = [binary, "run", job, "--quiet", "--no-http"]
    for k, v in {
        "SEED": "1000", "DURATION": "7d", "START": "2024-03-01 00:00:00", "END": "2024-03-08 00:00:00",
        "PACING": "max", "RATE": "60", "OUT_OF_ORDER": "0", "LATE": "0", "ANOMALIES": "",
        "TREND_SKU": "40", "TREND_START": "2024-03-05 00:00:00", "DB": os.path.join(tmp, "db.sqlite"),
    }.items():
        args += ["--var", f"{k}={v}"]
    subprocess.run(args, check=True)
    rows = []
    for name in sorted(os.listdir(out)):
        if not name.startswith("."):
            rows += [json.loads(line) for line in open(os.path.join(out, name)) if line.strip()]
rows = [r for r in rows if r["level"] is not None and r["level"] > 0]
X = np.array([[float(r[c]) for c in features] for r in rows])
y = np.array([r["units"] / r["level"] for r in rows])
model = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, len(features)]))])
target = os.path.join(demo, "models", "units_ratio.onnx")
with open(target, "wb") as f:
    f.write(onx.SerializeToString())
print(f"{target}: {len(rows)} store-category hours, R^2 on them {model.score(X, y):.3f}")
