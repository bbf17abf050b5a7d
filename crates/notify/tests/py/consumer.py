"""A native consumer of Funnel's notifications, as an integration in another language writes one.

It subscribes through JetStream with a subject filter (an ordered consumer over the whole
notification stream), parses every message with the CloudEvents SDK and prints one JSON line per
event: subject, id, type, log position and the lead it concerns.

Usage: consumer.py NATS_URL SUBJECT_FILTER COUNT TIMEOUT_SECONDS
"""

import asyncio
import json
import sys

import nats
from cloudevents.core.formats.json import JSONFormat


async def main(url: str, subject: str, count: int, timeout: float) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe(subject, ordered_consumer=True)
    fmt = JSONFormat()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = 0
    while seen < count:
        left = deadline - loop.time()
        if left <= 0:
            print(f"timed out after {seen} of {count} events", file=sys.stderr)
            await nc.close()
            return 1
        try:
            msg = await sub.next_msg(timeout=min(left, 5.0))
        except nats.errors.TimeoutError:
            continue
        if msg.headers.get("Content-Type") != fmt.CONTENT_TYPE:
            print(f"unexpected content type {msg.headers!r}", file=sys.stderr)
            await nc.close()
            return 1
        event = fmt.read(None, msg.data)
        data = event.get_data()
        print(
            json.dumps(
                {
                    "subject": msg.subject,
                    "id": event.get_id(),
                    "type": event.get_type(),
                    "position": event.get_extension("funnelposition"),
                    "lead": data.get("lead_id") if isinstance(data, dict) else None,
                }
            ),
            flush=True,
        )
        seen += 1
    await nc.close()
    return 0


if __name__ == "__main__":
    url, subject, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    sys.exit(asyncio.run(main(url, subject, count, timeout)))
