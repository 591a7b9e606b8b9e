#!/usr/bin/env python3
"""Reads a report written by exhaust with readers that share no code with it
(pyarrow for Parquet and Arrow IPC, openpyxl for xlsx) and prints it as JSON,
for the Rust tests to compare with the CSV of the same batch.

Usage: read_typed.py parquet|arrow|xlsx FILE

Arrow/Parquet: {"schema": {"metadata": {...}, "fields": [{"name", "type",
"nullable", "metadata"}]}, "rows": [[cell, ...], ...]} with dates as
"YYYY-MM-DD", timestamps as epoch milliseconds, null as null.

xlsx: {"sheets": [{"name", "freeze", "filter", "rows": [[{"t": type,
"v": value, "f": number format}, ...]]}]} with dates and date-times as
"YYYY-MM-DD HH:MM:SS.mmm" (rounded to the millisecond).
"""
import datetime
import json
import sys


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(3)


def arrow_table(kind, path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        fail("pyarrow is missing: pip install pyarrow")
    if kind == "parquet":
        return pq.read_table(path)
    with pa.ipc.open_file(path) as f:
        return f.read_all()


def meta(m):
    return {k.decode(): v.decode() for k, v in (m or {}).items()}


def cell(v):
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def dump_arrow(kind, path):
    t = arrow_table(kind, path)
    fields = [
        {"name": f.name, "type": str(f.type), "nullable": f.nullable, "metadata": meta(f.metadata)}
        for f in t.schema
    ]
    import pyarrow as pa

    cols = []
    for i, f in enumerate(t.schema):
        col = t.column(i)
        if pa.types.is_timestamp(f.type):
            # Epoch milliseconds, exactly: no float on the way.
            col = col.cast(pa.int64())
        cols.append(col.to_pylist())
    rows = [[cell(c[r]) for c in cols] for r in range(t.num_rows)]
    return {"schema": {"metadata": meta(t.schema.metadata), "fields": fields}, "rows": rows}


def xcell(c):
    v = c.value
    if v is None:
        return {"t": "blank", "v": None, "f": c.number_format}
    if isinstance(v, datetime.datetime):
        ms = round(v.microsecond / 1000)
        v = v.replace(microsecond=0) + datetime.timedelta(milliseconds=ms)
        return {"t": "datetime", "v": v.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (v.microsecond // 1000), "f": c.number_format}
    if isinstance(v, bool):
        return {"t": "bool", "v": v, "f": c.number_format}
    if isinstance(v, (int, float)):
        return {"t": "number", "v": v, "f": c.number_format}
    # Text in a workbook escapes characters XML cannot hold (a carriage
    # return is `_x000D_`, ECMA-376 ST_Xstring) and Excel shows them
    # unescaped; openpyxl returns the escaped form, so undo it as Excel does.
    return {"t": "str", "v": unescape(str(v)), "f": c.number_format}


def dump_xlsx(path):
    try:
        import openpyxl
    except ImportError:
        fail("openpyxl is missing: pip install openpyxl")
    global unescape
    from openpyxl.utils.escape import unescape
    wb = openpyxl.load_workbook(path)
    sheets = []
    for ws in wb.worksheets:
        rows = [[xcell(c) for c in row] for row in ws.iter_rows()]
        sheets.append({
            "name": ws.title,
            "freeze": ws.freeze_panes,
            "filter": ws.auto_filter.ref,
            "rows": rows,
        })
    return {"sheets": sheets}


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    kind, path = sys.argv[1], sys.argv[2]
    out = dump_xlsx(path) if kind == "xlsx" else dump_arrow(kind, path)
    json.dump(out, sys.stdout, ensure_ascii=False)


main()
