"""Reads the events Parquet file of `GET /export/events.parquet` back with DuckDB and checks it
against the same caller's pages of `GET /events` (one JSON object per line), independently of
Funnel's own code.

Usage: check_events_export.py EVENTS.parquet EVENTS.ndjson UPTO [OFFICE_ID]
The pages were read before the file, up to position UPTO; the server's sagas may have written more
since, so the file is compared up to UPTO. With OFFICE_ID, every row must be of that office (an
office role's read scope). Exits non-zero, saying what differs.
"""

import collections
import json
import sys

import duckdb

file, events_nd, upto = sys.argv[1], sys.argv[2], int(sys.argv[3])
office = sys.argv[4] if len(sys.argv) > 4 else None
con = duckdb.connect()
con.execute(f"create view e as select * from '{file}' where position <= {upto}")
events_pq = "e"
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: parquet says {got!r}"[:400] + f", expected {want!r}"[:400])


lines = [json.loads(l) for l in open(events_nd, encoding="utf-8") if l.strip()]
check("events", con.execute(f"select count(*) from {events_pq}").fetchone()[0], len(lines))
rows = con.execute(f"select type, count(*) from {events_pq} group by type").fetchall()
check("events per type", dict(rows), dict(collections.Counter(l["event_type"] for l in lines)))
ids = [i for (i,) in con.execute(f"select event_id from {events_pq} order by position").fetchall()]
check("event ids in log order", ids, [l["event_id"] for l in lines])
payloads = [json.loads(p) for (p,) in con.execute(f"select payload from {events_pq} order by position").fetchall()]
check("payloads", payloads, [l["payload"] for l in lines])
if office is not None:
    offices = {o for (o,) in con.execute(f"select distinct office_id from {events_pq}").fetchall()}
    check("offices", offices, {office})

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
