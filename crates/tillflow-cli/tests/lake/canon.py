"""Reads what tillflow wrote with independent readers and prints it canonically, one row a line.

  canon.py json DIR        every JSON line of the visible files of DIR
  canon.py parquet DIR     every row of the Parquet files of DIR, read by pyarrow
  canon.py schema DIR      the pyarrow schema of the Parquet files of DIR
  canon.py duckdb DIR SQL  DuckDB's answer to SQL over read_parquet(DIR/**), as `t`
  canon.py duckdb-hive DIR SQL  the same over DIR's Hive partition directories (values as text)
  canon.py write FILE      writes a Parquet file of many types with pyarrow (and prints its rows)
  canon.py avro DIR        every record of the Avro container files of DIR, read by fastavro
  canon.py avro-schema DIR the writer schema of the first Avro file of DIR, as JSON
  canon.py avro-datums DIR SCHEMA_FILE  each file of DIR one raw Avro datum (a Kafka message)
                           of the writer schema in SCHEMA_FILE, read by fastavro
  canon.py iceberg SOURCE   every row of an Iceberg table's current snapshot: pyiceberg lists the
                           live files of its manifests, pyarrow reads them, equality deletes are
                           merged as the spec says (a delete hides rows of files with a lower
                           data sequence number)
  canon.py iceberg-scan SOURCE  the same rows through pyiceberg's own scan (to_arrow), which
                           refuses equality deletes (and reads a NULL list of structs as [])
  canon.py iceberg-snapshots SOURCE  one line a snapshot, oldest first: operation, the
                           tillflow.checkpoint of its summary, added-records, added-equality-deletes
  canon.py iceberg-schema SOURCE  the table's fields: id, name, type, required; identifier ids
      SOURCE: sql:DB_FILE:CATALOG:NS.TABLE (pyiceberg's SqlCatalog over SQLite),
              hadoop:TABLE_DIR (metadata/version-hint.text), or file:METADATA_JSON
  canon.py write-avro FILE writes an Avro file with fastavro (fields reordered, one the table
                           lacks; logical types; NULLs) and prints its rows in the table's order

Canonical values: timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff', dates ISO, decimals normalized,
floats by repr, NULL as None; columns in order; rows sorted (a multiset: duplicates show).
"""
import datetime
import decimal
import glob
import json
import os
import sys


def visible(d):
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith(('.', '_'))]
        out += [os.path.join(root, f) for f in files if not f.startswith(('.', '_'))]
    return sorted(out)


def canon(v):
    if v is None:
        return 'None'
    if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, tuple) and len(x) == 2 for x in v)):
        # a ROW (fields in order) or a MAP (entries in order; pyarrow gives (key, value) pairs)
        items = v.items() if isinstance(v, dict) else v
        return '{' + ','.join(f'{k}={canon(x)}' for k, x in items) + '}'
    if isinstance(v, list):
        return '[' + ','.join(canon(x) for x in v) + ']'
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, datetime.datetime):
        return v.strftime('%Y-%m-%d %H:%M:%S.%f')
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        s = format(v.normalize(), 'f')
        return '0' if s in ('-0', '0') else s
    if isinstance(v, float):
        return repr(v)
    return str(v)


def typed(v, t):
    """A pyarrow value with its maps as dicts (pyarrow gives a map as (key, value) pairs, so an
    empty one would look like an empty list)."""
    import pyarrow as pa
    if v is None:
        return None
    if pa.types.is_map(t):
        return {k: typed(x, t.item_type) for k, x in v}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [typed(x, t.value_type) for x in v]
    if pa.types.is_struct(t):
        return {t.field(i).name: typed(v[t.field(i).name], t.field(i).type) for i in range(t.num_fields)}
    return v


def from_json(v, kind):
    if v is None:
        return None
    if kind == 'ts':
        date, _, frac = v.partition('.')
        return datetime.datetime.strptime(date + '.' + (frac + '000000')[:6], '%Y-%m-%d %H:%M:%S.%f')
    if kind == 'date':
        return datetime.date.fromisoformat(v)
    if kind == 'dec':
        return decimal.Decimal(str(v))
    if kind == 'float':
        return float(v)
    return v


def avro_row(record, schema):
    """An Avro record's values; a 32-bit float as its shortest text, as tillflow prints it."""
    import numpy
    def is_float(t):
        return t == 'float' or (isinstance(t, list) and 'float' in t)
    floats = {f['name'] for f in schema['fields'] if is_float(f['type'])}
    out = []
    for k, v in record.items():
        if isinstance(v, datetime.datetime):
            v = v.replace(tzinfo=None)
        if k in floats and v is not None:
            out.append(repr(float(str(numpy.float32(v)))))
        else:
            out.append(canon(v))
    return '|'.join(out)


def iceberg_table(source):
    kind, _, rest = source.partition(':')
    if kind == 'sql':
        from pyiceberg.catalog.sql import SqlCatalog
        db, catalog, ident = rest.split(':')
        return SqlCatalog(catalog, uri=f'sqlite:///{db}', init_catalog_tables='false').load_table(ident)
    from pyiceberg.table import StaticTable
    if kind == 'hadoop':
        v = open(os.path.join(rest, 'metadata', 'version-hint.text')).read().strip()
        return StaticTable.from_metadata(os.path.join(rest, 'metadata', f'v{v}.metadata.json'))
    return StaticTable.from_metadata(source)


def iceberg_rows(table):
    """The current snapshot's rows: pyiceberg lists the live files of its manifests (their
    content, sequence numbers and equality field ids); pyarrow reads each file."""
    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFileContent
    snap = table.current_snapshot()
    if snap is None:
        return []
    io = table.io
    data, deletes = [], []
    for m in snap.manifests(io):
        for e in m.fetch_manifest_entry(io, discard_deleted=True):
            f = e.data_file
            local = f.file_path.removeprefix('file://')
            if f.content == DataFileContent.DATA:
                data.append((e.sequence_number, local))
            elif f.content == DataFileContent.EQUALITY_DELETES:
                deletes.append((e.sequence_number, local, list(f.equality_ids)))
            else:
                raise SystemExit(f'unexpected {f.content} file {f.file_path}')
    schema = table.schema()
    names = [f.name for f in schema.fields]
    rows = []
    dels = []
    for seq, path, ids in deletes:
        cols = [schema.find_field(i).name for i in ids]
        keys = set(tuple(r[c] for c in cols) for r in pq.read_table(path).to_pylist())
        dels.append((seq, cols, keys))
    for seq, path in data:
        t = pq.read_table(path)
        types = {f.name: f.type for f in t.schema}
        for r in t.to_pylist():
            if any(dseq > seq and tuple(r[c] for c in cols) in keys for dseq, cols, keys in dels):
                continue
            rows.append([typed(r[n], types[n]) for n in names])
    return rows


def iceberg_scan(table):
    """pyiceberg's own scan of the current snapshot (no equality deletes)."""
    t = table.scan().to_arrow()
    types = [c.type for c in t.schema]
    return [[typed(v, ty) for v, ty in zip(r.values(), types)] for r in t.to_pylist()]


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode in ('iceberg', 'iceberg-scan'):
        read = iceberg_rows if mode == 'iceberg' else iceberg_scan
        rows = ['|'.join(canon(v) for v in r) for r in read(iceberg_table(path))]
        for r in sorted(rows):
            print(r)
        return
    if mode == 'iceberg-snapshots':
        t = iceberg_table(path)
        for s in sorted(t.metadata.snapshots, key=lambda s: s.sequence_number):
            p = s.summary.additional_properties if s.summary else {}
            print(s.summary.operation.value, p.get('tillflow.checkpoint', '-'), p.get('added-records', '0'), p.get('added-equality-deletes', '0'))
        return
    if mode == 'iceberg-schema':
        t = iceberg_table(path)
        sch = t.schema()
        for f in sch.fields:
            print(f.field_id, f.name, f.field_type, f.required)
        print('identifier', sorted(sch.identifier_field_ids))
        print('partition', [(f.name, str(f.transform)) for f in t.spec().fields])
        return
    if mode == 'json':
        # column kinds from argv[3]: name:kind,... (ts, date, dec, float, other)
        kinds = dict(x.split(':') for x in sys.argv[3].split(',')) if len(sys.argv) > 3 else {}
        rows = []
        for f in visible(path):
            for line in open(f):
                if line.strip():
                    o = json.loads(line, parse_float=decimal.Decimal)
                    rows.append('|'.join(canon(from_json(v, kinds.get(k, 'float' if isinstance(v, decimal.Decimal) else ''))) for k, v in o.items()))
    elif mode == 'parquet':
        import numpy
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows = []
        for f in visible(path):
            t = pq.read_table(f)
            # a FLOAT as its shortest 32-bit text, as tillflow and Flink print it
            single = [pa.types.is_float32(c.type) for c in t.schema]
            types = [c.type for c in t.schema]
            for r in t.to_pylist():
                rows.append('|'.join(
                    repr(float(str(numpy.float32(v)))) if s and v is not None else canon(typed(v, ty))
                    for s, v, ty in zip(single, r.values(), types)))
    elif mode == 'schema':
        import pyarrow.parquet as pq
        for f in visible(path)[:1]:
            print(pq.read_schema(f).to_string(show_schema_metadata=False))
        return
    elif mode == 'duckdb':
        import duckdb
        con = duckdb.connect()
        files = [f for f in visible(path)]
        listed = ', '.join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f'CREATE VIEW t AS SELECT * FROM read_parquet([{listed}])')
        for r in con.execute(sys.argv[3]).fetchall():
            print('|'.join(canon(v) for v in r))
        return
    elif mode == 'duckdb-hive':
        import duckdb
        con = duckdb.connect()
        listed = ', '.join("'" + f.replace("'", "''") + "'" for f in visible(path))
        con.execute(f'CREATE VIEW t AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true, hive_types_autocast = false)')
        rows = ['|'.join(canon(v) for v in r) for r in con.execute(sys.argv[3]).fetchall()]
    elif mode == 'avro':
        import fastavro
        rows = []
        for f in visible(path):
            with open(f, 'rb') as fo:
                reader = fastavro.reader(fo)
                for r in reader:
                    rows.append(avro_row(r, reader.writer_schema))
    elif mode == 'avro-datums':
        import fastavro
        schema = fastavro.parse_schema(json.load(open(sys.argv[3])))
        rows = []
        for f in visible(path):
            with open(f, 'rb') as fo:
                r = fastavro.schemaless_reader(fo, schema)
                if fo.read(1):
                    raise SystemExit(f'{f}: bytes after the datum')
                rows.append(avro_row(r, schema))
    elif mode == 'avro-schema':
        import fastavro
        for f in visible(path)[:1]:
            with open(f, 'rb') as fo:
                print(json.dumps(fastavro.reader(fo).writer_schema, sort_keys=True))
        return
    elif mode == 'write-avro':
        import fastavro
        schema = {
            'type': 'record', 'name': 'sale', 'fields': [
                {'name': 'extra', 'type': 'string'},
                {'name': 'qty', 'type': ['null', 'int']},
                {'name': 'sku', 'type': 'string'},
                {'name': 'ts', 'type': {'type': 'long', 'logicalType': 'timestamp-millis'}},
                {'name': 'price', 'type': ['null', {'type': 'bytes', 'logicalType': 'decimal', 'precision': 10, 'scale': 2}]},
                {'name': 'd', 'type': {'type': 'int', 'logicalType': 'date'}},
                {'name': 'ratio', 'type': 'double'},
                {'name': 'ok', 'type': 'boolean'},
                {'name': 'big', 'type': 'long'},
            ]}
        recs = []
        for i in range(500):
            recs.append({
                'extra': 'x' * (i % 5), 'qty': None if i % 9 == 0 else i % 7,
                'sku': f'SKU-{i:04d}-é',
                'ts': datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=12345 * i),
                'price': None if i % 11 == 0 else decimal.Decimal(i * 37 - 5000).scaleb(-2),
                'd': datetime.date(2024, 1, 1) + datetime.timedelta(days=i),
                'ratio': i / 3, 'ok': i % 2 == 0, 'big': i * 10**12,
            })
        with open(path, 'wb') as fo:
            fastavro.writer(fo, fastavro.parse_schema(schema), recs, codec='deflate')
        # the table's columns: sku, qty, ts, price, d, ratio, ok, big, missing
        for r in recs:
            print('|'.join(canon(v) for v in [r['sku'], r['qty'], r['ts'].replace(tzinfo=None), r['price'], r['d'], r['ratio'], r['ok'], r['big'], None]))
        return
    elif mode == 'write':
        import pyarrow as pa
        import pyarrow.parquet as pq
        n = 1000
        t = pa.table({
            'ts_ms': pa.array([datetime.datetime(2024, 3, 1) + datetime.timedelta(milliseconds=7919 * i) if i % 11 else None for i in range(n)], pa.timestamp('ms')),
            'ts_us': pa.array([datetime.datetime(1969, 12, 31, 23, 59, 59) + datetime.timedelta(microseconds=104729 * i) for i in range(n)], pa.timestamp('us')),
            'ts_ns': pa.array([datetime.datetime(2024, 3, 1) + datetime.timedelta(microseconds=3 * i) for i in range(n)], pa.timestamp('ns')),
            'ts_utc': pa.array([datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=i) for i in range(n)], pa.timestamp('us', tz='UTC')),
            'd': pa.array([datetime.date(2020, 1, 1) + datetime.timedelta(days=i - 500) for i in range(n)], pa.date32()),
            'i8': pa.array([i % 256 - 128 for i in range(n)], pa.int8()),
            'i16': pa.array([i * 31 - 15000 for i in range(n)], pa.int16()),
            'i32': pa.array([i * 1000003 - 500000000 if i % 5 else None for i in range(n)], pa.int32()),
            'i64': pa.array([i * 9876543210 - 4 * 10**12 for i in range(n)], pa.int64()),
            'f32': pa.array([i / 8 for i in range(n)], pa.float32()),
            'f64': pa.array([i * -0.001 for i in range(n)], pa.float64()),
            'b': pa.array([i % 3 == 0 if i % 7 else None for i in range(n)], pa.bool_()),
            's': pa.array([f'sku-{i}-ü' if i % 13 else None for i in range(n)], pa.string()),
            'dec': pa.array([decimal.Decimal(i * 12345 - 6000000).scaleb(-2) for i in range(n)], pa.decimal128(12, 2)),
        })
        pq.write_table(t, path, row_group_size=300, compression='zstd')
        for r in t.to_pylist():
            print('|'.join(canon(v.replace(tzinfo=None) if isinstance(v, datetime.datetime) else v) for v in r.values()))
        return
    for r in sorted(rows):
        print(r)


main()
