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
