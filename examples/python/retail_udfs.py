"""Python functions for examples/python/basket_margin.sql (CREATE FUNCTION ... LANGUAGE PYTHON).

The result types are set as PyFlink's @udf / @udtf / @udaf record them; with PyFlink installed,
`from pyflink.table.udf import udf` and `@udf(result_type='DOUBLE')` work the same (and
`weighted_price = udaf(WeightedPrice(), result_type=DataTypes.DOUBLE(), ...)`).
"""


def price_band(unit_price):
    """A retail price band: the label a category manager reports by."""
    if unit_price is None:
        return None
    if unit_price < 1:
        return "under 1"
    if unit_price < 5:
        return "1-5"
    if unit_price < 20:
        return "5-20"
    return "20+"


price_band.result_type = "STRING"


def sku_parts(sku):
    """The SKU's prefix and number, one row each (a table function)."""
    if not sku or "-" not in sku:
        return
    prefix, _, number = sku.partition("-")
    yield "prefix", prefix
    yield "number", number.lstrip("0") or "0"


sku_parts.result_types = ["STRING", "STRING"]


class WeightedPrice:
    """The average unit price weighted by quantity (an aggregate function, as PyFlink's
    AggregateFunction): the accumulator is [sum of price * qty, sum of qty]."""

    result_type = "DOUBLE"

    def create_accumulator(self):
        return [0.0, 0]

    def accumulate(self, acc, unit_price, qty):
        if unit_price is not None and qty is not None:
            acc[0] += unit_price * qty
            acc[1] += qty

    def retract(self, acc, unit_price, qty):
        if unit_price is not None and qty is not None:
            acc[0] -= unit_price * qty
            acc[1] -= qty

    def merge(self, acc, accs):
        for a in accs:
            acc[0] += a[0]
            acc[1] += a[1]

    def get_value(self, acc):
        return None if acc[1] == 0 else round(acc[0] / acc[1], 2)


weighted_price = WeightedPrice
