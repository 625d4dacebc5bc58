"""W10's peer, in the seeds' style: one aiohttp session and a Semaphore(N) to download, Pillow in a thread pool to
decode, resize (the shorter side to SIZE, as img2dataset's keep-ratio) and write WebP files, the way seed 003
checks images with PIL.

    /usr/bin/python3 bench/peers/aiohttp_pillow.py <list> <out_dir> [concurrency=64] [size=256] [threads=cpu count]

Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any URL failed.
"""
import asyncio
import io
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import aiohttp
from PIL import Image


def resize_to_webp(data, size, path):
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        img.save(path, "WEBP")


async def one(session, semaphore, pool, url, out_dir, size):
    async with semaphore:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status} for {url}")
            data = await resp.read()
    name = os.path.splitext(urlparse(url).path.split("/")[-1])[0] + ".webp"
    await asyncio.get_running_loop().run_in_executor(pool, resize_to_webp, data, size, os.path.join(out_dir, name))
    return len(data)


async def main_async(urls, out_dir, concurrency, size, threads):
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        async with aiohttp.ClientSession(connector=connector) as session:
            return await asyncio.gather(*(one(session, semaphore, pool, u, out_dir, size) for u in urls), return_exceptions=True)


def main():
    list_file, out_dir = sys.argv[1], sys.argv[2]
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else (os.cpu_count() or 2)
    with open(list_file) as fp:
        urls = [line.strip() for line in fp if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    started = time.monotonic()
    results = asyncio.run(main_async(urls, out_dir, concurrency, size, threads))
    seconds = time.monotonic() - started
    failed = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    print(json.dumps({"downloaded": len(done), "failed": len(failed), "bytes": sum(done), "seconds": round(seconds, 3)}))
    for r in failed[:5]:
        print(f"failed: {r!r}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
