"""Subscribe to the rules change feed on NATS JetStream with a durable consumer.

    python examples/nats_subscriber.py nats://127.0.0.1:4222 [SUBJECT_FILTER] [DURABLE] [STREAM]

SUBJECT_FILTER defaults to rules.changes.> (every region); one region is
rules.changes.<region token>.> (README, "Change feed"). The durable consumer remembers
what was acknowledged, so a subscriber away for a day resumes where it stopped.
"""

import asyncio
import json
import sys

import nats


async def main(url: str, subject: str, durable: str, stream: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream)
    seen: set[str] = set()  # de-duplicate by change id (JetStream already drops re-sends)
    while True:
        try:
            messages = await sub.fetch(100, timeout=5)
        except nats.errors.TimeoutError:
            continue
        for message in messages:
            change = json.loads(message.data)
            if change["changeId"] not in seen:
                seen.add(change["changeId"])
                print(json.dumps(change, ensure_ascii=False), flush=True)
            await message.ack()  # after handling it


defaults = ["nats://127.0.0.1:4222", "rules.changes.>", "my-system", "RULES_CHANGES"]
given = sys.argv[1:] + defaults[len(sys.argv) - 1 :]
asyncio.run(main(*given))
