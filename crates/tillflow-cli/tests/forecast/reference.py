"""Reference values for tillflow's forecasting functions, from independent implementations.

    python3 reference.py SERIES.json ALPHA BETA GAMMA SEASON HORIZON EW_ALPHA

SERIES.json is a JSON array of numbers. Prints one JSON object:
  hw1[i]      statsmodels' one-step forecast after value i (for i >= SEASON-1), i.e. the value
              tillflow's HOLT_WINTERS(y, a, b, g, m, 1) has after row i;
  hwh[i]      statsmodels' HORIZON-step forecast after value i (every 7th i), refitting the
              prefix with the same fixed parameters;
  level[i]    statsmodels' smoothed level after value i;
  ewma[i]     pandas' ewm(alpha, adjust=False).mean();
  ewmvar[i]   pandas' ewm(alpha, adjust=False).var(bias=True).
Initialisation as tillflow's: level = mean of the first season, trend = 0, seasonal terms = first
season - level, passed to statsmodels as initialization_method='known' on the rest of the series.
"""
import json
import sys

import numpy as np
import pandas as pd
from statsmodels.tsa.holtwinters import ExponentialSmoothing

series = np.array(json.load(open(sys.argv[1])), dtype=float)
a, b, g = (float(x) for x in sys.argv[2:5])
m, h = int(sys.argv[5]), int(sys.argv[6])
ew = float(sys.argv[7])

first = series[:m]
level0 = first.mean()
season0 = first - level0


def fit(y):
    model = ExponentialSmoothing(
        y,
        trend="add",
        seasonal="add",
        seasonal_periods=m,
        initialization_method="known",
        initial_level=level0,
        initial_trend=0.0,
        initial_seasonal=season0,
    )
    return model.fit(smoothing_level=a, smoothing_trend=b, smoothing_seasonal=g, optimized=False)


rest = series[m:]
full = fit(rest)
fitted = np.asarray(full.fittedvalues)
hw1 = {}
# after value m-1 (the warm-up's end) the first forecast is fitted[0], and so on
for k in range(len(rest)):
    hw1[m - 1 + k] = float(fitted[k])
hw1[len(series) - 1] = float(np.asarray(full.forecast(1))[0])
level = {m - 1 + 1 + k: float(v) for k, v in enumerate(np.asarray(full.level))}
hwh = {}
for i in range(m + 1, len(series), 7):
    f = fit(series[m : i + 1])
    hwh[i] = float(np.asarray(f.forecast(h))[h - 1])
s = pd.Series(series)
out = {
    "hw1": hw1,
    "hwh": hwh,
    "level": level,
    "ewma": s.ewm(alpha=ew, adjust=False).mean().tolist(),
    "ewmvar": s.ewm(alpha=ew, adjust=False).var(bias=True).tolist(),
}
print(json.dumps(out))
