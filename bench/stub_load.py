"""``python -m bench.stub_load``: drive the probe stub as hard as it goes, in a process of
its own, with pyreqwest (the cheapest client measured here), and print what it got as JSON.

The stub's own counters say what it served; this process only has to keep enough requests
in flight that the stub, not the client, is the limit.
"""

import argparse
import asyncio
import json
import time
from datetime import timedelta

import orjson
import uvloop
from pyreqwest.client import ClientBuilder
from pyreqwest.exceptions import PyreqwestError


async def drive(url: str, token: str, seconds: float, concurrency: int) -> dict[str, float]:
    client = (
        ClientBuilder()
        .max_connections(concurrency)
        .pool_max_idle_per_host(concurrency)
        .default_headers({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        .build()
    )
    counts = {"ok": 0, "failed": 0}
    timeout = timedelta(seconds=10)
    deadline = time.monotonic() + seconds

    async def worker(first_id: int) -> None:
        message_id = first_id
        while time.monotonic() < deadline:
            body = orjson.dumps({"id": message_id, "phone": 79000000000, "text": "capacity"})
            try:
                response = (
                    await (
                        client.post(f"{url}/send/{message_id}").body_bytes(body).timeout(timeout)
                    )
                    .build()
                    .send()
                )
                await response.bytes()
                counts["ok" if response.status == 200 else "failed"] += 1
            except PyreqwestError:
                counts["failed"] += 1
            message_id += concurrency

    started = time.monotonic()
    async with client:
        await asyncio.gather(*(worker(n) for n in range(1, concurrency + 1)))
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
