"""Seeds 000/001 style (the "Fluent Python" flags example): one aiohttp ClientSession, a Semaphore(N) around each
request, gather(..., return_exceptions=True). Per country: metadata.json, then the flag, saved as CC-Name.gif
beside CC-Name.json (its metadata); in the name, spaces and slashes become underscores (as imgdl's flags plugin).
The session's connector is sized to N (aiohttp's default stops at 100 connections).

    /usr/bin/python3 bench/peers/flags_aiohttp.py <base_url> <codes, comma separated> <out_dir> [concurrency=64]

Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any country failed.
"""
import asyncio
import json
import os
import re
import sys
import time

import aiohttp


async def fetch(session, semaphore, url):
    async with semaphore:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status} for {url}")
            return await resp.read()


async def download_one(session, semaphore, base_url, cc, out_dir):
    lc = cc.lower()
    metadata = json.loads(await fetch(session, semaphore, f"{base_url}/{lc}/metadata.json"))
    country = re.sub(r"[\s/\\]+", "_", metadata["country"].strip())
    image = await fetch(session, semaphore, f"{base_url}/{lc}/{lc}.gif")
    name = f"{cc.upper()}-{country}"
    with open(os.path.join(out_dir, f"{name}.gif"), "wb") as fp:
        fp.write(image)
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as fp:
        json.dump(metadata, fp, ensure_ascii=False)
    return len(image)


async def download_many(base_url, codes, out_dir, concurrency):
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [download_one(session, semaphore, base_url, cc, out_dir) for cc in codes]
        return await asyncio.gather(*tasks, return_exceptions=True)


def main():
    base_url, codes, out_dir = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    codes = [cc for cc in re.split(r"[\s,]+", codes) if cc]
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    results = asyncio.run(download_many(base_url, codes, out_dir, concurrency))
    seconds = time.perf_counter() - t0
    sizes = [r for r in results if isinstance(r, int)]
    failed = len(results) - len(sizes)
    for r in results:
        if not isinstance(r, int):
            print(f"failed: {r!r}", file=sys.stderr)
            break
    print(json.dumps({"downloaded": len(sizes), "failed": failed, "bytes": sum(sizes), "seconds": seconds}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
