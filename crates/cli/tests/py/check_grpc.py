"""Funnel's gRPC endpoint read by the official Python KurrentDB client (kurrentdbclient).

Arguments: GRPC_ADDR CA_PEM HTTP_ADDR EXPORT_NDJSON AUDITOR_TOKEN MANAGER_TOKEN ENGINEER_TOKEN

The endpoint serves over TLS with a certificate CA_PEM signed: the Python client sends its
credentials only over TLS.

EXPORT_NDJSON is `funnel export events` of the same store, taken before this runs. The server's
sagas may write more events afterwards, so reads are compared up to the export's last position.
Every wait is bounded; nothing asserts on wall-clock time.
"""

import json
import sys
import threading
import urllib.request
import uuid

from kurrentdbclient import KurrentDBClient, NewEvent, StreamState
from kurrentdbclient.events import CaughtUp, Checkpoint
from kurrentdbclient.exceptions import (
    AccessDeniedError,
    NotFoundError,
    UnauthenticatedError,
)

PATIENCE = 120  # seconds: a guard against hanging, not a timing assertion

grpc_addr, ca_path, http_addr, export_path, auditor, manager, engineer = sys.argv[1:8]
ca = open(ca_path, "rb").read()

exported = [json.loads(line) for line in open(export_path, encoding="utf-8") if line.strip()]
assert exported, "the export is empty"
last = exported[-1]["position"]


def client(token):
    return KurrentDBClient(uri=f"kurrentdb://funnel:{token}@{grpc_addr}", root_certificates=ca)


def same(recorded, expected, what):
    """A recorded event from the client equals the exported one."""
    assert str(recorded.id) == expected["event_id"], (what, recorded.id, expected["event_id"])
    assert recorded.type == expected["event_type"], (what, recorded.type, expected)
    assert recorded.content_type == "application/json", (what, recorded.content_type)
    assert json.loads(recorded.data) == expected["payload"], (what, recorded.data, expected)
    assert recorded.stream_name == expected["stream"], (what, recorded.stream_name)
    assert recorded.stream_position == expected["version"] - 1, (what, recorded.stream_position)
    assert recorded.commit_position == expected["position"], (what, recorded.commit_position)
    envelope = json.loads(recorded.metadata)
    for key in ("event_id", "stream", "version", "position", "office", "actor", "command_id",
                "correlation_id", "causation_id", "occurred_at", "recorded_at", "schema_version"):
        assert envelope[key] == expected[key], (what, key, envelope[key], expected[key])
    assert recorded.recorded_at is not None and recorded.recorded_at.year >= 2000, what


def up_to_last(events):
    return [e for e in events if e.commit_position <= last]


def check_all(events, expected, what):
    assert len(events) == len(expected), (what, len(events), len(expected))
    for got, want in zip(events, expected):
        same(got, want, what)


auditor_client = client(auditor)

# $all from the start with the client's default filter (its exclusion regex of system events).
check_all(up_to_last(auditor_client.read_all()), exported, "read_all")

# $all from a position (inclusive), and backwards from the end.
middle = exported[len(exported) // 2]
check_all(
    up_to_last(auditor_client.read_all(commit_position=middle["position"])),
    exported[len(exported) // 2:],
    "read_all from a position",
)
check_all(
    list(auditor_client.read_all(commit_position=last, backwards=True, limit=len(exported) + 10)),
    list(reversed(exported)), "read_all backwards",
)
newest = list(auditor_client.read_all(backwards=True, limit=1))
assert len(newest) == 1 and newest[0].commit_position >= last, newest
check_all(
    list(auditor_client.read_all(commit_position=middle["position"], backwards=True, limit=3)),
    list(reversed(exported[: len(exported) // 2 + 1]))[:3],
    "read_all backwards from a position",
)

# Filters: stream prefix, stream regex, event type.
leads = [e for e in exported if e["stream"].startswith("lead-")]
check_all(
    up_to_last(auditor_client.read_all(filter_include=["lead-"], filter_by_stream_name=True,
                                       filter_by_prefix=True)),
    leads, "stream prefix filter",
)
check_all(
    up_to_last(auditor_client.read_all(filter_include=[r"lead-.*"], filter_by_stream_name=True)),
    leads, "stream regex filter",
)
registered = [e for e in exported if e["event_type"] == "lead.registered"]
assert registered, "the demo registers leads"
check_all(
    up_to_last(auditor_client.read_all(filter_include=["lead.registered"])),
    registered, "event type filter",
)
check_all(
    up_to_last(auditor_client.read_all(filter_exclude=[r"lead\..*", r"workflow\..*"])),
    [e for e in exported
     if not e["event_type"].startswith("lead.") and not e["event_type"].startswith("workflow.")],
    "event type exclusion",
)

# A stream forwards, from a revision, and backwards.
stream = registered[0]["stream"]
in_stream = [e for e in exported if e["stream"] == stream]
got = [e for e in auditor_client.get_stream(stream) if e.commit_position <= last]
check_all(got, in_stream, "get_stream")
if len(in_stream) > 2:
    check_all(
        [e for e in auditor_client.get_stream(stream, stream_position=1) if e.commit_position <= last],
        in_stream[1:], "get_stream from revision 1",
    )
check_all(
    [e for e in auditor_client.get_stream(stream, backwards=True) if e.commit_position <= last],
    list(reversed(in_stream)), "get_stream backwards",
)
try:
    auditor_client.get_stream("lead-00000000-0000-0000-0000-000000000000")
    raise AssertionError("a missing stream was read")
except NotFoundError:
    pass

# The office manager reads their office's events only, and not another office's stream.
manager_client = client(manager)
mine = up_to_last(manager_client.read_all())
offices = {json.loads(e.metadata)["office"] for e in mine}
assert len(offices) == 1 and None not in offices, offices
office = offices.pop()
check_all(mine, [e for e in exported if e["office"] == office], "the manager's read_all")
other = next(e["stream"] for e in registered if e["office"] != office)
try:
    manager_client.get_stream(other)
    raise AssertionError("another office's stream was read")
except AccessDeniedError as e:
    assert "office" in str(e), e
manager_client.close()

# With a token nobody holds: refused (the client itself will not connect over TLS without
# credentials).
for uri in (f"kurrentdb://funnel:not-a-token@{grpc_addr}",):
    anonymous = KurrentDBClient(uri=uri, root_certificates=ca)
    try:
        list(anonymous.read_all(limit=1))
        raise AssertionError(f"{uri} read the log")
    except UnauthenticatedError:
        pass
    anonymous.close()

# Appends are refused with access denied and a reason, one event (Append) or several
# (BatchAppend), to a domain stream or any other.
def new_event():
    return NewEvent(type="lead.registered", data=b"{}", id=uuid.uuid4())


for name, events in ((stream, new_event()), (stream, [new_event(), new_event()]),
                     ("scratch-1", new_event())):
    try:
        auditor_client.append_to_stream(name, events=events, current_version=StreamState.ANY)
        raise AssertionError(f"an append to {name} was accepted")
    except AccessDeniedError as e:
        assert "written only through its commands" in str(e) or isinstance(events, list), e
check_all(
    [e for e in auditor_client.get_stream(stream) if e.commit_position <= last],
    in_stream, "the stream after the refused appends",
)

# Catch-up subscriptions: history, caught-up, then a live event written by a command over HTTP.
def http(method, path, token, body=None):
    req = urllib.request.Request(
        f"http://{http_addr}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=PATIENCE) as r:
        return json.loads(r.read())


all_sub = auditor_client.subscribe_to_all(
    commit_position=middle["position"], include_caught_up=True, include_checkpoints=True,
    filter_include=["lead-"], filter_by_stream_name=True, filter_by_prefix=True,
    window_size=2, checkpoint_interval_multiplier=1, timeout=PATIENCE,
)
stream_sub = auditor_client.subscribe_to_stream(stream, include_caught_up=True, timeout=PATIENCE)

received = []
caught_up = []
checkpoints = []


def follow(sub, into):
    for item in sub:
        if isinstance(item, CaughtUp):
            caught_up.append(item)
            continue
        if isinstance(item, Checkpoint):
            checkpoints.append(item)
            continue
        into.append(item)
        if item.commit_position > last:
            return


stream_events = []
t = threading.Thread(target=follow, args=(stream_sub, stream_events), daemon=True)
t.start()

# History of the $all subscription: the lead events after the position (exclusive).
history = []
for item in all_sub:
    if isinstance(item, CaughtUp):
        caught_up.append(item)
        break
    if isinstance(item, Checkpoint):
        checkpoints.append(item)
        continue
    history.append(item)
check_all(up_to_last(history),
          [e for e in leads if e["position"] > middle["position"]], "subscribe_to_all history")
assert checkpoints, "a filtered subscription sends checkpoints"
assert all(c.commit_position <= checkpoints[-1].commit_position for c in checkpoints)

me = http("GET", "/me", engineer)
written = http("POST", "/leads", engineer, {
    "customer_name": "远景测试科技", "project_name": "二期", "industry": "real_estate",
    "purchase_mode": "independent", "channel": "building_sweep", "office": me["office"],
    "location": "上海市", "need": "对讲", "contact": {"name": "李经理", "phone": "13900000000"},
})
new_stream = f"lead-{written['id']}"

live = None
for item in all_sub:
    if isinstance(item, (CaughtUp, Checkpoint)):
        continue
    if item.stream_name == new_stream:
        live = item
        break
assert live is not None and live.type == "lead.registered", live
assert live.commit_position > last, live
all_sub.stop()

# The stream subscription saw the stream's history and caught up (no new event on that stream).
check_all([e for e in stream_events if e.commit_position <= last], in_stream,
          "subscribe_to_stream history")
stream_sub.stop()
t.join(PATIENCE)

# A subscription to the new stream from its start sees its registration.
sub = auditor_client.subscribe_to_stream(new_stream, timeout=PATIENCE)
first = next(iter(sub))
assert first.id == live.id and first.stream_position == 0, first
sub.stop()

auditor_client.close()
print(f"ok: {len(exported)} events, {len(leads)} lead events, office {office}: {len(mine)}")
