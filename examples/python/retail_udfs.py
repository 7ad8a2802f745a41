"""Python functions for examples/python/basket_margin.sql (CREATE FUNCTION ... LANGUAGE PYTHON).

The result types are set as PyFlink's @udf / @udtf record them; with PyFlink installed,
`from pyflink.table.udf import udf` and `@udf(result_type='DOUBLE')` work the same.
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
