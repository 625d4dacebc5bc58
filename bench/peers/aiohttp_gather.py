"""Seeds 000/001 style: one aiohttp ClientSession, a Semaphore(N), gather(..., return_exceptions=True).
The session's connector is sized to N (aiohttp's default stops at 100 connections).

    /usr/bin/python3 bench/peers/aiohttp_gather.py <list> <out_dir> [concurrency=64]

Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any URL failed.
"""
import asyncio
import json
import os
import sys
import time
from urllib.parse import urlparse

import aiohttp


async def download_one(session, semaphore, url, out_dir):
    async with semaphore:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status} for {url}")
            data = await resp.read()
    filename = urlparse(url).path.split("/")[-1]
    with open(os.path.join(out_dir, filename), "wb") as fp:
        fp.write(data)
    return len(data)


async def download_many(urls, out_dir, concurrency):
    semaphore = asyncio.Semaphore(concurrency)
    # aiohttp's default connector holds at most 100 connections: without this, W7 (512) would run at 100.
    # At 64 it changes nothing (the semaphore is the limit).
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [download_one(session, semaphore, url, out_dir) for url in urls]
        return await asyncio.gather(*tasks, return_exceptions=True)


def main():
    list_path, out_dir = sys.argv[1], sys.argv[2]
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    with open(list_path) as fp:
        urls = [line.strip() for line in fp if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    results = asyncio.run(download_many(urls, out_dir, concurrency))
    seconds = time.perf_counter() - t0
    sizes = [r for r in results if isinstance(r, int)]
    failed = len(results) - len(sizes)
    print(json.dumps({"downloaded": len(sizes), "failed": failed, "bytes": sum(sizes), "seconds": seconds}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
