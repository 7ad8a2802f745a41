"""Python functions the Python UDF tests register with CREATE FUNCTION ... LANGUAGE PYTHON.

`udf` and `udtf` below are the three-line stand-ins for PyFlink's decorators: they record the
result type(s) on the function, which is all tillflow reads. `reference.py` computes what the
tests' queries should give by calling these same functions in plain Python.
"""
import datetime
import decimal
import os


def udf(result_type):
    def wrap(f):
        f.result_type = result_type
        return f
    return wrap


def udtf(result_types):
    def wrap(f):
        f.result_types = result_types
        return f
    return wrap


@udf(result_type="DOUBLE")
def with_tax(price):
    return None if price is None else round(price * 1.2, 2)


@udf(result_type="STRING")
def norm_sku(s):
    return None if s is None else s.strip().upper().replace(" ", "-")


@udf(result_type="BOOLEAN")
def is_bulk(qty):
    return qty is not None and qty >= 3


@udf(result_type="BIGINT")
def add_one(x):
    return None if x is None else x + 1


@udf(result_type="DECIMAL(12, 2)")
def discounted(price, pct):
    if price is None:
        return None
    return (decimal.Decimal(repr(price)) * (100 - pct) / 100).quantize(decimal.Decimal("0.01"))


@udf(result_type="DECIMAL(10, 2)")
def dec_half(d):
    return None if d is None else d / 2


@udf(result_type="STRING")
def family(sku):
    return sku.split("-")[0].lower() if sku else None


@udf(result_type="DATE")
def day_of(ts):
    return ts.date()


@udf(result_type="TIMESTAMP(3)")
def hour_of(ts):
    return ts.replace(minute=0, second=0, microsecond=0)


@udf(result_type="INT")
def name_len(s):
    return None if s is None else len(s)


class Scaled:
    """A class-based function, as PyFlink's ScalarFunction: open() runs once, eval() per row."""

    result_type = "DOUBLE"

    def open(self, function_context):
        self.factor = 10.0

    def eval(self, x):
        return None if x is None else x * self.factor


scaled = Scaled()


class _DoubleType:
    """Shaped as PyFlink's DataTypes.DOUBLE() (its class name is what tillflow reads)."""


_DoubleType.__name__ = "DoubleType"


class _Wrapper:
    """Shaped as what PyFlink's @udf returns: the function in _func, the type in _result_type."""

    def __init__(self, func, result_type):
        self._func = func
        self._result_type = result_type


pyflink_style = _Wrapper(lambda x: None if x is None else x / 2, _DoubleType())


@udtf(result_types=["STRING", "INT"])
def words(s):
    if not s:
        return
    for i, w in enumerate(s.split(" ")):
        if w:
            yield w, i


@udtf(result_types="STRING")
def letters(s):
    for c in s or "":
        yield c


@udf(result_type="DOUBLE")
def ratio(a, b):
    return a / b


@udf(result_type="BIGINT")
def wrong_type(x):
    return "not a number"


def untyped(x):
    return x


@udf(result_type="BIGINT")
def dies_once(x):
    marker = os.environ.get("TILLFLOW_TEST_MARKER")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return x


@udf(result_type="BIGINT")
def always_dies(x):
    os._exit(4)


@udf(result_type="BIGINT")
def chatty(x):
    print("a print from Python must not break the protocol", x)
    return x


# Aggregate functions (PyFlink's AggregateFunction / @udaf), in the three ways a result type
# can be given: PyFlink's wrapper (_func, _result_type), get_result_type(), and a stand-in
# decorator that sets result_type.

def udaf(result_type, accumulator_type=None):
    def wrap(cls):
        cls.result_type = result_type
        return cls
    return wrap


class WeightedAvg:
    """sum(price * qty) / sum(qty); the accumulator is [weighted sum, weight]."""

    def create_accumulator(self):
        return [0.0, 0]

    def accumulate(self, acc, price, qty):
        if price is not None and qty is not None:
            acc[0] += price * qty
            acc[1] += qty

    def retract(self, acc, price, qty):
        if price is not None and qty is not None:
            acc[0] -= price * qty
            acc[1] -= qty

    def merge(self, acc, accs):
        for a in accs:
            acc[0] += a[0]
            acc[1] += a[1]

    def get_value(self, acc):
        return None if acc[1] == 0 else acc[0] / acc[1]


weighted_avg = _Wrapper(WeightedAvg(), _DoubleType())


class TopSkus:
    """The 3 SKUs sold most often (by rows, then by name), distinct, as 'sku:rows,...'; it has
    no retract: an append-only input only."""

    def get_result_type(self):
        return "STRING"

    def create_accumulator(self):
        return {}

    def accumulate(self, acc, sku):
        if sku is not None:
            acc[sku] = acc.get(sku, 0) + 1

    def get_value(self, acc):
        top = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        return ",".join("%s:%d" % kv for kv in top)


top_skus = TopSkus


@udaf(result_type="BIGINT", accumulator_type="ARRAY<BIGINT>")
class PySum:
    """SUM as a Python aggregate (NULL over no values), with retract and without merge."""

    def create_accumulator(self):
        return [0, 0]

    def accumulate(self, acc, x):
        if x is not None:
            acc[0] += x
            acc[1] += 1

    def retract(self, acc, x):
        if x is not None:
            acc[0] -= x
            acc[1] -= 1

    def get_value(self, acc):
        return acc[0] if acc[1] else None


py_sum = PySum


@udaf(result_type="BIGINT")
class FragileSum(PySum):
    """PySum that cannot stand a 7."""

    def accumulate(self, acc, x):
        if x == 7:
            raise ValueError("seven is unlucky")
        PySum.accumulate(self, acc, x)


fragile_sum = FragileSum


@udaf(result_type="BIGINT")
class PySumMerging(PySum):
    """PySum with merge: HOP panes and CUMULATE steps given to Python early merge."""

    def merge(self, acc, accs):
        if not getattr(self, "said", False):
            self.said = True
            print("py_sum_m merged accumulators")  # to stderr: the tests look for it
        for a in accs:
            acc[0] += a[0]
            acc[1] += a[1]


py_sum_m = PySumMerging


@udaf(result_type="BIGINT")
class FragileSumMerging(PySumMerging):
    """PySumMerging that cannot stand a 7."""

    def accumulate(self, acc, x):
        if x == 7:
            raise ValueError("seven is unlucky")
        PySumMerging.accumulate(self, acc, x)


fragile_sum_m = FragileSumMerging


@udaf(result_type="BIGINT")
class UnpicklableSum(PySum):
    """PySum whose accumulator holds a lambda: pickle cannot save it."""

    def create_accumulator(self):
        return [0, 0, lambda: 0]


unpicklable_sum = UnpicklableSum


# Shaped as PyFlink's @udaf(result_type=..., func_type="pandas"): a vectorized function, refused.
pandas_mean = _Wrapper(lambda v: v.mean(), _DoubleType())
pandas_mean._func_type = "pandas"
