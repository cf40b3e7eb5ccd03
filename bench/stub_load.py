"""``python -m bench.stub_load``: drive the probe stub as hard as it goes, in a process of
its own, with the senders' own client (pyreqwest, the cheapest measured here), and print
what it got as JSON.

The stub's own counters say what it served; this process only has to keep enough requests
in flight that the stub, not the client, is the limit.
"""

import argparse
import asyncio
import json
import time

import uvloop
from pydantic import SecretStr

from herald_sender.probe_client import ProbeTransportError, ReqwestProbeClient


async def drive(url: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    """``concurrency`` workers, each sending one request after another until ``seconds``."""
    counts = {"ok": 0, "failed": 0}
    deadline = time.monotonic() + seconds

    async def worker(client: ReqwestProbeClient, first_id: int) -> None:
        message_id = first_id
        while time.monotonic() < deadline:
            try:
                response = await client.send(message_id, 79000000000, "capacity", timeout=10)
                counts["ok" if response.status == 200 else "failed"] += 1
            except ProbeTransportError:
                counts["failed"] += 1
            message_id += concurrency

    started = time.monotonic()
    async with ReqwestProbeClient(url, SecretStr(token), concurrency=concurrency) as client:
        await asyncio.gather(*(worker(client, n) for n in range(1, concurrency + 1)))
    return {**counts, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stub_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=1000)
    options = parser.parse_args()
    result = uvloop.run(drive(options.url, options.token, options.seconds, options.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
