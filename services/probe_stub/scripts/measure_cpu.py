"""Measure the stub's own CPU per request: start it, push a bounded loopback load, read its stats.

Run: ``uv run python services/probe_stub/scripts/measure_cpu.py --requests 20000``. The stub
reports its process CPU (user+sys) in ``/_stub/stats``, so the client's cost never counts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from typing import Any

import aiohttp

TOKEN = "dev-probe-token"  # noqa: S105 - the stub's development token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/_stub/stats") as response:
        stats: dict[str, Any] = await response.json()
        return stats


async def _send(session: aiohttp.ClientSession, base: str, ids: range) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for msg_id in ids:
        body = {"id": msg_id, "phone": 79_000_000_000 + msg_id, "text": "benchmark text"}
        async with session.post(f"{base}/v1/send/{msg_id}", json=body, headers=headers) as reply:
            await reply.read()


async def _wait_until_up(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise RuntimeError("the stub did not start")


async def measure(base: str, requests: int, concurrency: int) -> None:
    await _wait_until_up(base)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _send(session, base, range(1_000_000, 1_001_000))  # warm up
        before = await _stats(session, base)
        started = time.perf_counter()
        share = requests // concurrency
        await asyncio.gather(
            *(
                _send(session, base, range(worker * share, (worker + 1) * share))
                for worker in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - started
        after = await _stats(session, base)
    sent = share * concurrency
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    print(
        f"{sent} requests in {elapsed:.2f} s ({sent / elapsed:.0f}/s, client-bound); "
        f"stub CPU {cpu:.3f} s = {cpu / sent * 1e6:.1f} us per request; "
        f"by outcome {after['by_outcome']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--url", help="measure a stub already running here instead")
    options = parser.parse_args()
    if options.url:
        asyncio.run(measure(options.url, options.requests, options.concurrency))
        return
    port = _free_port()
    # Our own stub, fixed arguments: nothing untrusted reaches the command line.
    command = [sys.executable, "-m", "herald_probe_stub", "--port", str(port)]
    stub = subprocess.Popen(command)  # noqa: S603
    try:
        asyncio.run(measure(f"http://127.0.0.1:{port}", options.requests, options.concurrency))
    finally:
        stub.terminate()
        stub.wait(timeout=10)


if __name__ == "__main__":
    main()
