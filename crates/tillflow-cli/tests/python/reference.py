"""The Python UDF tests' input and what each query should give, computed by calling the
functions of udfs.py in plain Python (no tillflow, no bundles, no wire format).

  reference.py gen PATH N       writes N events to PATH (NDJSON, with NULLs and non-ASCII text)
  reference.py CASE PATH        prints the rows CASE's query gives over PATH, as JSON lines
"""
import datetime
import decimal
import json
import random
import sys

import udfs

SKUS = ["SKU-0001", "SKU-0002", "sku-0003 ", "ÄPFEL-0004", "süß-tee", "B-12", None]
NOTES = ["fresh bread", "", None, "two  spaces", "ünïcödé wörds here", "x", "a b c d e f g"]


def gen(path, n):
    rng = random.Random(7)
    t = datetime.datetime(2024, 3, 1, 8, 0, 0)
    with open(path, "w") as f:
        for i in range(n):
            t += datetime.timedelta(milliseconds=rng.randint(0, 2000))
            row = {
                "event_time": t.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (t.microsecond // 1000),
                "store_id": rng.randint(1, 6),
                "sku": rng.choice(SKUS),
                "qty": rng.choice([1, 1, 2, 3, 4, 7, None]),
                "unit_price": rng.choice([0.99, 1.49, 2.5, 10.0, 54.95, 189.99, None]),
                "customer_id": rng.choice(["C1", "C22", "Ç333", None]),
                "channel": rng.choice(["store", "web", "app"]),
                "note": rng.choice(NOTES),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def rows(path):
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            r["event_time"] = datetime.datetime.strptime(r["event_time"], "%Y-%m-%d %H:%M:%S.%f")
            yield r


def ts(v):
    """As Flink's JSON format writes TIMESTAMP(3): the fraction only when it is not zero."""
    text = v.strftime("%Y-%m-%d %H:%M:%S")
    return text + (".%03d" % (v.microsecond // 1000) if v.microsecond else "")


def dec_half(price):
    """dec_half(CAST(price AS DECIMAL(10, 2))) as DECIMAL(10, 2): rounded half up, as Flink."""
    if price is None:
        return None
    d = udfs.dec_half(decimal.Decimal(repr(price)).quantize(decimal.Decimal("0.01")))
    return float(d.quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP))


def scalar(path):
    udfs.scaled.open(None)
    for r in rows(path):
        if not (udfs.is_bulk(r["qty"]) and r["store_id"] != 3):
            continue
        d = udfs.discounted(r["unit_price"], 10)
        yield {
            "sku": r["sku"],
            "taxed": udfs.with_tax(r["unit_price"]),
            "ns": udfs.norm_sku(r["sku"]),
            "q1": udfs.add_one(r["qty"]),
            "d": None if d is None else float(d),
            "fam": udfs.family(r["sku"]),
            "d0": udfs.day_of(r["event_time"]).isoformat(),
            "h": ts(udfs.hour_of(r["event_time"])),
            "nl": udfs.name_len(r["customer_id"]),
            "s10": udfs.scaled.eval(r["unit_price"]),
            "half": udfs.pyflink_style._func(r["unit_price"]),
            "dh": dec_half(r["unit_price"]),
        }


def nested(path):
    for r in rows(path):
        y = udfs.add_one(udfs.add_one(r["qty"]))
        if y is None or not y > 3:
            continue
        yield {"x": udfs.norm_sku(udfs.family(r["sku"])), "y": y, "z": udfs.add_one(r["qty"])}


def window(path):
    sums = {}
    for r in rows(path):
        start = r["event_time"].replace(minute=0, second=0, microsecond=0)
        key = (ts(start), udfs.family(r["sku"]))
        taxed = udfs.with_tax(r["unit_price"])
        n, s = sums.get(key, (0, None))
        if taxed is not None:
            s = taxed if s is None else s + taxed
        sums[key] = (n + 1, s)
    for (start, fam), (n, s) in sums.items():
        yield {"window_start": start, "fam": fam, "n": n, "total": s}


def table(path):
    for r in rows(path):
        for w, pos in udfs.words(r["note"]) or []:
            yield {"customer_id": r["customer_id"], "w": w, "pos": pos}


def left_table(path):
    for r in rows(path):
        out = list(udfs.letters(r["sku"] if r["store_id"] == 1 else None))
        if not out:
            yield {"store_id": r["store_id"], "c": None}
        for c in out:
            yield {"store_id": r["store_id"], "c": c}


def aggregate(func, groups, signs=None):
    """What tillflow should give for each group of argument tuples: the aggregate function's
    accumulator, each tuple accumulated in order, its value."""
    out = {}
    for key, args in groups.items():
        acc = func.create_accumulator()
        for a in args:
            func.accumulate(acc, *a)
        out[key] = func.get_value(acc)
    return out


def udaf_window(path):
    """Per 10-minute TUMBLE window and store: weighted_avg(unit_price, qty), top_skus(sku),
    COUNT(*)."""
    prices, skus, counts = {}, {}, {}
    for r in rows(path):
        t = r["event_time"]
        start = t.replace(minute=t.minute - t.minute % 10, second=0, microsecond=0)
        key = (ts(start), r["store_id"])
        prices.setdefault(key, []).append((r["unit_price"], r["qty"]))
        skus.setdefault(key, []).append((r["sku"],))
        counts[key] = counts.get(key, 0) + 1
    wa = aggregate(udfs.weighted_avg._func, prices)
    top = aggregate(udfs.top_skus(), skus)
    for key in counts:
        yield {"window_start": key[0], "store_id": key[1], "wa": wa[key], "top": top[key],
               "n": counts[key]}


def udaf_updating(path):
    """Per store, over the final rows of the updating per-(store, SKU) aggregate:
    weighted_avg(units, n) and COUNT(*)."""
    per = {}
    for r in rows(path):
        units, n = per.get((r["store_id"], r["sku"]), (None, 0))
        if r["qty"] is not None:
            units = r["qty"] if units is None else units + r["qty"]
        per[(r["store_id"], r["sku"])] = (units, n + 1)
    groups = {}
    for (store, _), (units, n) in per.items():
        groups.setdefault(store, []).append((None if units is None else float(units), n))
    wa = aggregate(udfs.weighted_avg._func, groups)
    for store, args in groups.items():
        yield {"store_id": store, "wa": wa[store], "skus": len(args)}


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    else:
        for row in globals()[sys.argv[1]](sys.argv[2]):
            print(json.dumps(row, ensure_ascii=False))
