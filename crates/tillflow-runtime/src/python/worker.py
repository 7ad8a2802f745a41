# tillflow's Python function worker: one process per operator instance that calls Python
# user-defined functions, fed batches of rows over its stdin and answering on its stdout.
# Started by tillflow (crates/tillflow-runtime/src/python/mod.rs, which documents the framing);
# needs only the standard library. What a function prints goes to stderr.
import datetime
import decimal
import importlib
import inspect
import json
import os
import pickle
import signal
import struct
import sys
import traceback
from array import array

EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_ORDINAL = 719163
MICRO = datetime.timedelta(microseconds=1)

T_BOOL, T_INT, T_DOUBLE, T_STRING, T_BYTES, T_DECIMAL, T_DATE, T_TIMESTAMP, T_TIME = range(1, 10)


class FunctionError(Exception):
    """A function's failure at one row, with Python's traceback."""

    def __init__(self, function, row, message, tb):
        super().__init__(message)
        self.function, self.row, self.message, self.tb = function, row, message, tb


class FunctionContext:
    """What PyFlink's FunctionContext offers a function's open(): job parameters."""

    def __init__(self, params):
        self._params = params

    def get_job_parameter(self, key, default_value):
        return self._params.get(key, default_value)

    def get_metric_group(self):
        raise NotImplementedError("tillflow's Python functions have no metric group")


# PyFlink's DataType classes by name, for functions decorated with PyFlink's @udf
_SIMPLE = {
    "BooleanType": "BOOLEAN", "TinyIntType": "TINYINT", "SmallIntType": "SMALLINT",
    "IntType": "INT", "BigIntType": "BIGINT", "FloatType": "FLOAT", "DoubleType": "DOUBLE",
    "DateType": "DATE", "BinaryType": "BYTES", "VarBinaryType": "BYTES",
}


def type_sql(t):
    """The SQL text of a result type: a string as written, or one of PyFlink's DataTypes."""
    if isinstance(t, str):
        return t
    name = type(t).__name__
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name in ("VarCharType", "CharType"):
        return "STRING"
    if name == "DecimalType":
        return "DECIMAL(%d, %d)" % (t.precision, t.scale)
    if name == "TimestampType":
        return "TIMESTAMP(%d)" % getattr(t, "precision", 6)
    if name == "LocalZonedTimestampType":
        return "TIMESTAMP_LTZ(%d)" % getattr(t, "precision", 6)
    if name == "TimeType":
        return "TIME(%d)" % getattr(t, "precision", 0)
    raise TypeError("result type %r is not one tillflow's Python functions return" % (t,))


def _defines(func, name):
    """Whether an aggregate function has method `name` of its own (PyFlink's base class
    defines retract and merge as doing nothing: those do not count)."""
    if not callable(getattr(func, name, None)):
        return False
    for cls in type(func).__mro__:
        if name in cls.__dict__:
            return not (cls.__module__ or "").startswith("pyflink.")
    return True  # set on the instance


def is_aggregate(func):
    return all(callable(getattr(func, m, None))
               for m in ("create_accumulator", "accumulate", "get_value"))


def resolve_aggregate(obj, func, target, params, do_open):
    """An aggregate function (PyFlink's AggregateFunction / @udaf): its result type from
    `result_type` (`_result_type` on PyFlink's wrapper) or `get_result_type()`."""
    t = None
    for holder, name in ((obj, "result_type"), (obj, "_result_type"), (func, "result_type")):
        t = getattr(holder, name, None)
        if t is not None and not callable(t):
            break
        t = None
    if t is None and _defines(func, "get_result_type"):
        t = func.get_result_type()
    if t is None:
        attr = target.rpartition(".")[2]
        raise ValueError(
            "%s has no result type: decorate it with PyFlink's @udaf(result_type=...), set "
            "%s.result_type = 'DOUBLE' or give it a get_result_type() method" % (target, attr))
    close = None
    if do_open and callable(getattr(func, "open", None)):
        func.open(FunctionContext(params))
    if callable(getattr(func, "close", None)):
        close = func.close
    if do_open:
        check_pickles(func, target)
    info = {"aggregate": True, "retract": _defines(func, "retract"),
            "merge": _defines(func, "merge")}
    return func, [type_sql(t)], True, close, info


def check_pickles(func, target):
    """Fails, naming the function, when a new accumulator cannot be pickled: state keeps it
    pickled, and a window that fires without handing rows to Python early would otherwise
    pickle one only much later."""
    try:
        acc = func.create_accumulator()
    except Exception as e:
        raise ValueError("%s.create_accumulator() failed: %s: %s" % (target, type(e).__name__, e))
    try:
        pickle.dumps(acc, protocol=4)
    except Exception as e:
        raise ValueError(
            "the accumulator of %s cannot be pickled (state keeps it pickled; use lists, "
            "tuples, dicts, numbers, strings or classes defined at module level): "
            "create_accumulator() gave %s: %s: %s"
            % (target, type(acc).__name__, type(e).__name__, e))


def resolve(target, kind, params, do_open):
    """Imports `module.attr` and returns (callable, result types, deterministic, close, what
    it is); calls the function's open() when `do_open` (not while a query is planned). An
    aggregate function is recognised whatever kind was asked for (planning asks first)."""
    module, _, attr = target.rpartition(".")
    if not module:
        raise ValueError("'%s' is not 'module.function'" % target)
    obj = getattr(importlib.import_module(module), attr)
    if inspect.isclass(obj):
        obj = obj()
    if getattr(obj, "_func_type", "general") == "pandas":
        raise ValueError("%s is a vectorized (pandas) function (func_type='pandas'), which "
                         "tillflow does not run: use a general function" % target)
    inner = getattr(obj, "_func", obj)
    if inspect.isclass(inner):
        inner = inner()
    if is_aggregate(inner):
        return resolve_aggregate(obj, inner, target, params, do_open)
    if kind == "aggregate":
        raise ValueError("%s is not an aggregate function (it needs create_accumulator, "
                         "accumulate and get_value methods)" % target)
    if kind == "table":
        types = None
        for name in ("result_types", "_result_types"):
            types = getattr(obj, name, None)
            if types is not None:
                break
        if types is not None and not isinstance(types, (list, tuple)):
            types = [types]
    else:
        types = getattr(obj, "result_type", None)
        if types is None:
            types = getattr(obj, "_result_type", None)
        if types is not None:
            types = [types]
    if types is None:
        attr_name = "result_types" if kind == "table" else "result_type"
        raise ValueError(
            "%s has no %s attribute: decorate it with PyFlink's @%s(%s=...) or set "
            "%s.%s = %s" % (target, attr_name, "udtf" if kind == "table" else "udf", attr_name,
                            attr, attr_name, "['BIGINT']" if kind == "table" else "'BIGINT'"))
    func = getattr(obj, "_func", obj)  # PyFlink's wrapper keeps the function in _func
    deterministic = bool(getattr(obj, "_deterministic", getattr(obj, "deterministic", True)))
    close = None
    if hasattr(func, "eval"):  # a ScalarFunction / TableFunction instance
        if do_open and hasattr(func, "open"):
            func.open(FunctionContext(params))
        close = getattr(func, "close", None)
        if hasattr(func, "is_deterministic"):
            deterministic = deterministic and bool(func.is_deterministic())
        func = func.eval
    if not callable(func):
        raise TypeError("%s is not callable" % target)
    return func, [type_sql(t) for t in types], deterministic, close, {}


class Reader:
    def __init__(self, buf):
        self.mv = memoryview(buf)
        self.pos = 0

    def take(self, n):
        p = self.pos
        self.pos = p + n
        return self.mv[p:p + n]

    def u8(self):
        self.pos += 1
        return self.mv[self.pos - 1]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]


def read_column(r, n):
    tag = r.u8()
    has_nulls = r.u8()
    mask = bytes(r.take(n)) if has_nulls else None
    if tag == T_INT or tag == T_TIMESTAMP or tag == T_TIME:
        vals = r.take(8 * n).cast("q").tolist()
        if tag == T_TIMESTAMP:
            vals = [EPOCH + v * MICRO for v in vals]
        elif tag == T_TIME:
            vals = [(EPOCH + v * MICRO).time() for v in vals]
    elif tag == T_DOUBLE:
        vals = r.take(8 * n).cast("d").tolist()
    elif tag == T_BOOL:
        vals = [b != 0 for b in r.take(n)]
    elif tag == T_DATE:
        vals = [datetime.date.fromordinal(d + EPOCH_ORDINAL) for d in r.take(4 * n).cast("i").tolist()]
    elif tag in (T_STRING, T_DECIMAL):
        offs = r.take(4 * (n + 1)).cast("I").tolist()
        text = bytes(r.take(r.u32())).decode("utf-8")
        vals = [text[a:b] for a, b in zip(offs, offs[1:])]
        if tag == T_DECIMAL:
            vals = [decimal.Decimal(v) if v else None for v in vals]
    elif tag == T_BYTES:
        offs = r.take(4 * (n + 1)).cast("I").tolist()
        data = bytes(r.take(offs[-1] if offs else 0))
        vals = [data[a:b] for a, b in zip(offs, offs[1:])]
    else:
        raise ValueError("unknown column type %d" % tag)
    if mask is not None:
        vals = [v if m else None for v, m in zip(vals, mask)]
    return vals


def _slow(vals, convert, sql):
    """Values with NULLs (or of unexpected kinds): a mask, and each value converted."""
    mask = bytearray(len(vals))
    out = []
    for i, v in enumerate(vals):
        if v is None:
            out.append(None)
        else:
            mask[i] = 1
            try:
                out.append(convert(v))
            except Exception as e:
                raise BadResult(i, v, "not a %s (%s)" % (sql, e))
    return mask, out


class BadResult(Exception):
    def __init__(self, row, value, cause):
        super().__init__("returned %s (%s): %s" % (_short(value), type(value).__name__, cause))
        self.row = row


def _short(v):
    s = repr(v)
    return s if len(s) <= 200 else s[:200] + "..."


def _int(v):
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) or isinstance(v, decimal.Decimal) or isinstance(v, str):
            raise TypeError("an integer was expected")
    return int(v)


def _str(v):
    if not isinstance(v, str):
        raise TypeError("a str was expected")
    return v


def _bytes(v):
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("bytes were expected")
    return bytes(v)


def _dec(v):
    if isinstance(v, bool):
        raise TypeError("a number was expected")
    if isinstance(v, float):
        v = repr(v)
    return format(decimal.Decimal(v), "f")


def _ts(v):
    if v.tzinfo is not None:
        v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (v - EPOCH) // MICRO


def _time(v):
    return ((v.hour * 60 + v.minute) * 60 + v.second) * 1000000 + v.microsecond


def _bool(v):
    if not isinstance(v, bool):
        raise TypeError("a bool was expected")
    return v


def _float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError("a float was expected")
    return float(v)


DEC_CONTEXT = decimal.Context(prec=100)


def _dec(v, scale):
    if isinstance(v, (bool, str)):
        raise TypeError("a number was expected")
    if isinstance(v, float):
        v = repr(v)
    d = decimal.Decimal(v)
    if scale is not None:
        # as Flink stores a DECIMAL(p, s): rounded half up to its scale
        d = d.quantize(decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP,
                       context=DEC_CONTEXT)
    return format(d, "f")


def write_column(out, spec, vals):
    """Appends a result column; `spec` is (wire type, SQL type name, decimal scale), as the job
    declared the result."""
    t, sql, scale = spec
    n = len(vals)
    mask = None
    data = None
    text = None
    try:
        if t == T_INT:
            data = array("q", vals).tobytes()
        elif t == T_DOUBLE:
            if any(type(v) is str for v in vals):
                raise TypeError
            data = array("d", vals).tobytes()
        elif t == T_BOOL:
            if not all(v is True or v is False for v in vals):
                raise TypeError
            data = bytes(vals)
        elif t == T_STRING:
            text = "".join(vals)
        else:
            raise TypeError
    except (TypeError, OverflowError):
        conv = {
            T_INT: _int, T_DOUBLE: _float, T_BOOL: _bool, T_STRING: _str, T_BYTES: _bytes,
            T_DECIMAL: lambda v: _dec(v, scale),
            T_DATE: lambda v: v.toordinal() - EPOCH_ORDINAL,
            T_TIMESTAMP: _ts, T_TIME: _time,
        }[t]
        mask, vals = _slow(vals, conv, sql)
        if all(mask):
            mask = None
        fill = {T_INT: 0, T_DOUBLE: 0.0, T_BOOL: False, T_STRING: "", T_BYTES: b"",
                T_DECIMAL: "0", T_DATE: 0, T_TIMESTAMP: 0, T_TIME: 0}[t]
        vals = [fill if v is None else v for v in vals]
        if t == T_INT or t == T_TIMESTAMP or t == T_TIME:
            try:
                data = array("q", vals).tobytes()
            except OverflowError:
                row = next(i for i, v in enumerate(vals) if not -2**63 <= v < 2**63)
                raise BadResult(row, vals[row], "out of the range of %s" % sql)
        elif t == T_DOUBLE:
            data = array("d", vals).tobytes()
        elif t == T_BOOL:
            data = bytes(vals)
        elif t == T_DATE:
            try:
                data = array("i", vals).tobytes()
            except OverflowError:
                row = next(i for i, v in enumerate(vals) if not -2**31 <= v < 2**31)
                raise BadResult(row, vals[row], "out of the range of DATE")
        elif t in (T_STRING, T_DECIMAL):
            text = "".join(vals)
    out.append(bytes([t, 1 if mask is not None else 0]))
    if mask is not None:
        out.append(bytes(mask))
    if t in (T_STRING, T_DECIMAL):
        lens = array("I", [0])
        total = 0
        for v in vals:
            total += len(v)
            lens.append(total)
        try:
            enc = text.encode("utf-8")
        except UnicodeEncodeError:
            row = next(i for i, v in enumerate(vals) if not _encodes(v))
            raise BadResult(row, vals[row], "not valid Unicode text")
        out.append(lens.tobytes())
        out.append(struct.pack("<I", len(enc)))
        out.append(enc)
    elif t == T_BYTES:
        lens = array("I", [0])
        total = 0
        for v in vals:
            total += len(v)
            lens.append(total)
        out.append(lens.tobytes())
        out.extend(vals)
    else:
        out.append(data)
    return n


def _encodes(v):
    try:
        v.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def column_tag(sql):
    s = sql.strip().upper()
    base = s.split("(")[0].split("<")[0].strip()
    if base in ("TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT"):
        return T_INT
    if base in ("FLOAT", "DOUBLE", "REAL", "DOUBLE PRECISION"):
        return T_DOUBLE
    if base == "BOOLEAN":
        return T_BOOL
    if base in ("STRING", "VARCHAR", "CHAR"):
        return T_STRING
    if base in ("BYTES", "VARBINARY", "BINARY"):
        return T_BYTES
    if base in ("DECIMAL", "DEC", "NUMERIC"):
        return T_DECIMAL
    if base == "DATE":
        return T_DATE
    if base.startswith("TIMESTAMP"):
        return T_TIMESTAMP
    if base == "TIME":
        return T_TIME
    raise ValueError("result type %s is not one tillflow's Python functions return" % sql)


def call_scalar(name, func, cols, n):
    out = []
    app = out.append
    try:
        if cols:
            for args in zip(*cols):
                app(func(*args))
        else:
            for _ in range(n):
                app(func())
    except Exception as e:
        raise FunctionError(name, len(out), "%s: %s" % (type(e).__name__, e), traceback.format_exc())
    return out


def call_table(name, func, cols, n, width):
    index = array("I")
    res = [[] for _ in range(width)]
    i = 0
    try:
        for i, args in enumerate(zip(*cols) if cols else ((),) * n):
            r = func(*args)
            if r is None:
                continue
            for item in r:
                index.append(i)
                if width == 1:
                    if isinstance(item, (tuple, list)) and len(item) == 1:
                        item = item[0]
                    res[0].append(item)
                else:
                    if not isinstance(item, (tuple, list)) or len(item) != width:
                        raise TypeError("a row of %d values was expected, got %s"
                                        % (width, _short(item)))
                    for c, v in zip(res, item):
                        c.append(v)
    except Exception as e:
        raise FunctionError(name, i, "%s: %s" % (type(e).__name__, e), traceback.format_exc())
    return index, res


def call_aggregate(name, func, groups, signs, cols, want_state):
    """Each group's accumulator (unpickled, or created), other accumulators merged into it,
    its rows accumulated (or retracted), then its value and (`want_state`) its accumulator
    pickled again."""
    rows = list(zip(*cols)) if cols else [()] * len(signs)
    states = []
    vals = []
    i = 0
    for gi, (st, merges, n) in enumerate(groups):
        step = "create_accumulator"
        args = None
        try:
            if st:
                step = "unpickling the accumulator"
                acc = pickle.loads(st)
            else:
                acc = func.create_accumulator()
            if merges:
                step = "merge"
                func.merge(acc, [pickle.loads(m) for m in merges])
            for j in range(i, i + n):
                args = rows[j]
                if signs[j]:
                    step = "retract"
                    func.retract(acc, *args)
                else:
                    step = "accumulate"
                    func.accumulate(acc, *args)
            args = None
            step = "get_value"
            vals.append(func.get_value(acc))
            if want_state:
                step = "pickling the accumulator"
                states.append(pickle.dumps(acc, protocol=4))
        except Exception as e:
            where = step
            if args is not None:
                where = "%s(acc, %s)" % (step, ", ".join(_short(a) for a in args))
            raise FunctionError(name, gi, "%s: %s: %s" % (where, type(e).__name__, e),
                                traceback.format_exc())
        i += n
    return states, vals


def main():
    # Ctrl-C is the job's to handle: a worker stops when the job closes its pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    # what functions print must not reach the protocol's pipe
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def read_frame():
        head = proto_in.read(4)
        if len(head) < 4:
            return None
        (length,) = struct.unpack("<I", head)
        body = proto_in.read(length)
        if len(body) < length:
            return None
        return body

    max_frame = [1 << 30]

    def send(kind, parts):
        size = sum(len(p) for p in parts) + 1
        proto_out.write(b"".join([struct.pack("<I", size), kind] + parts))

    def send_answer(parts, sizes):
        """Sends an R frame; one larger than the job takes is reported as the failure of
        the function (`sizes`: each function's name and bytes) whose part is largest."""
        size = sum(len(p) for p in parts) + 1
        if size > max_frame[0]:
            name, most = max(sizes, key=lambda s: s[1]) if sizes else ("?", 0)
            send_json(b"E", {"function": name, "row": -2,
                             "message": "its answer of %d bytes (%d of them its own) is larger "
                                        "than a worker may send (%d MiB)"
                                        % (size, most, max_frame[0] >> 20),
                             "traceback": ""})
            return
        send(b"R", parts)

    def send_json(kind, obj):
        send(kind, [json.dumps(obj).encode("utf-8")])

    def send_failure(e, name):
        # a function's error as it is; any other exception is the worker's own fault, reported
        # against the function being called (not a crash that would be retried)
        if isinstance(e, FunctionError):
            send_json(b"E", {"function": e.function, "row": e.row, "message": e.message,
                             "traceback": e.tb})
        else:
            send_json(b"E", {"function": name, "row": -2,
                             "message": "%s: %s" % (type(e).__name__, e),
                             "traceback": traceback.format_exc()})

    functions = []  # (name, func, result specs, kind, close)
    while True:
        frame = read_frame()
        if frame is None:
            break
        kind, body = frame[:1], frame[1:]
        if kind == b"I":
            init = json.loads(body.decode("utf-8"))
            max_frame[0] = int(init.get("max_frame", max_frame[0]))
            for p in reversed(init.get("paths", [])):
                if p not in sys.path:
                    sys.path.insert(0, p)
            answers = []
            f = {"name": "?"}
            try:
                for f in init["functions"]:
                    func, types, det, close, info = resolve(f["target"], f["kind"],
                                                            init.get("params", {}),
                                                            init.get("open", False))
                    # the job's declared results (running), else the function's own (planning)
                    specs = [tuple(x) for x in f.get("results", [])] or [
                        (column_tag(t), t, None) for t in types]
                    functions.append((f["name"], func, specs, f["kind"], close))
                    answers.append(dict({"result_types": types, "deterministic": det}, **info))
            except Exception as e:
                send_json(b"E", {"function": f["name"], "row": -1,
                                 "message": "%s: %s" % (type(e).__name__, e),
                                 "traceback": traceback.format_exc()})
                continue
            send_json(b"I", {"functions": answers})
        elif kind == b"B":
            r = Reader(body)
            n = r.u32()
            ncalls = r.u16()
            out = []
            sizes = []
            name = "?"
            try:
                for _ in range(ncalls):
                    fi = r.u16()
                    nargs = r.u16()
                    name, func, specs, fkind, _ = functions[fi]
                    first = len(out)
                    try:
                        cols = [read_column(r, n) for _ in range(nargs)]
                    except Exception as e:
                        raise FunctionError(name, -2, "its arguments could not be given to Python: %s: %s"
                                            % (type(e).__name__, e), "")
                    if fkind == "table":
                        index, res = call_table(name, func, cols, n, len(specs))
                        out.append(struct.pack("<I", len(index)))
                        out.append(index.tobytes())
                        for spec, c in zip(specs, res):
                            try:
                                write_column(out, spec, c)
                            except BadResult as e:
                                raise FunctionError(name, index[e.row], str(e), "")
                    else:
                        vals = call_scalar(name, func, cols, n)
                        try:
                            write_column(out, specs[0], vals)
                        except BadResult as e:
                            raise FunctionError(name, e.row, str(e), "")
                    sizes.append((name, sum(len(p) for p in out[first:])))
            except Exception as e:
                send_failure(e, name)
                continue
            send_answer(out, sizes)
        elif kind == b"A":
            r = Reader(body)
            ncalls = r.u16()
            out = []
            sizes = []
            name = "?"
            try:
                for _ in range(ncalls):
                    fi = r.u16()
                    nargs = r.u16()
                    first = len(out)
                    want_state = r.u8() != 0
                    ngroups = r.u32()
                    name, func, specs, _, _ = functions[fi]
                    groups = []
                    for _ in range(ngroups):
                        st = bytes(r.take(r.u32()))
                        merges = [bytes(r.take(r.u32())) for _ in range(r.u32())]
                        groups.append((st, merges, r.u32()))
                    total = r.u32()
                    signs = bytes(r.take(total))
                    try:
                        cols = [read_column(r, total) for _ in range(nargs)]
                    except Exception as e:
                        raise FunctionError(name, -2, "its arguments could not be given to Python: %s: %s"
                                            % (type(e).__name__, e), "")
                    states, vals = call_aggregate(name, func, groups, signs, cols, want_state)
                    for st in states:
                        out.append(struct.pack("<I", len(st)))
                        out.append(st)
                    try:
                        write_column(out, specs[0], vals)
                    except BadResult as e:
                        raise FunctionError(name, e.row, str(e), "")
                    sizes.append((name, sum(len(p) for p in out[first:])))
            except Exception as e:
                send_failure(e, name)
                continue
            send_answer(out, sizes)
        elif kind == b"Q":
            break
    for f in functions:
        if f[4] is not None:
            try:
                f[4]()
            except Exception:
                traceback.print_exc()


if __name__ == "__main__":
    main()
