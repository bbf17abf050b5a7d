"""Reads Funnel's Parquet exports back with DuckDB and checks them against the NDJSON export and
`funnel pipeline --json`, computed independently of Funnel's own code.

Usage: check_parquet.py EVENTS.parquet EVENTS.ndjson LEADS.parquet PIPELINE.json
Exits non-zero, saying what differs, on the first disagreement.
"""

import collections
import json
import sys

import duckdb

events_pq, events_nd, leads_pq, pipeline_json = sys.argv[1:5]
con = duckdb.connect()
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: parquet says {got!r}, expected {want!r}")


lines = [json.loads(l) for l in open(events_nd, encoding="utf-8") if l.strip()]
check("events", con.execute(f"select count(*) from '{events_pq}'").fetchone()[0], len(lines))

by_type = collections.Counter(l["event_type"] for l in lines)
rows = con.execute(f"select type, count(*) from '{events_pq}' group by type").fetchall()
check("events per type", dict(rows), dict(by_type))

positions = [p for (p,) in con.execute(f"select position from '{events_pq}'").fetchall()]
check("log order", positions, [l["position"] for l in lines])

first = con.execute(
    f"select event_id, stream, version, schema_version, actor_kind, payload, "
    f"epoch_us(occurred_at) from '{events_pq}' order by position limit 1"
).fetchone()
l0 = lines[0]
check("first event id", first[0], l0["event_id"])
check("first stream", first[1], l0["stream"])
check("first version", first[2], l0["version"])
check("first schema version", first[3], l0["schema_version"])
check("first actor kind", first[4], l0["actor"]["kind"])
check("first payload", json.loads(first[5]), l0["payload"])

tz = con.execute(f"describe select occurred_at from '{events_pq}'").fetchone()[1]
check("occurred_at type", tz, "TIMESTAMP WITH TIME ZONE")

# Leads against the pipeline report: leads and amounts per office and stage.
pipeline = json.load(open(pipeline_json, encoding="utf-8"))
want = {}
for office in pipeline["offices"]:
    for stage, bucket in office["by_stage"].items():
        if bucket["leads"]:
            want[(office["office"], stage)] = (bucket["leads"], bucket["amount_cny"])
got = {
    (o, s): (n, int(a))
    for o, s, n, a in con.execute(
        f"select office_id, stage, count(*), coalesce(sum(amount_cny), 0) "
        f"from '{leads_pq}' group by office_id, stage"
    ).fetchall()
}
check("leads and amounts per office and stage", got, want)
ageing = sum(o["ageing_total"] for o in pipeline["offices"])
check("ageing leads", con.execute(f"select count(*) from '{leads_pq}' where ageing").fetchone()[0], ageing)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"ok: {len(lines)} events, {sum(n for n, _ in want.values())} leads")
