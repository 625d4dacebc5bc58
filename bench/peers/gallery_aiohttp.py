"""A plain asyncio gallery crawler in the seeds' style: one aiohttp ClientSession, a Semaphore(N) around each
request, pages read in order (a page's rel=next link is known only once it is read), and each page's images
started as tasks as soon as it is read, so images of several pages are in flight at once. Images are found
with a regular expression (<img src=...>); the bench's gallery is that simple.

    /usr/bin/python3 bench/peers/gallery_aiohttp.py <start_url> <out_dir> [concurrency=64] [max_depth=19]

Prints {"downloaded","failed","pages","bytes","seconds"} on stdout; exits 1 if any page or image failed.
"""
import asyncio
import json
import os
import re
import sys
import time
from urllib.parse import urljoin, urlparse

import aiohttp

IMG = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", re.I)
NEXT = re.compile(r"<(?:link|a)\b[^>]*\brel=\"[^\"]*\bnext\b[^\"]*\"[^>]*\bhref=\"([^\"]+)\"", re.I)


async def fetch(session, semaphore, url):
    async with semaphore:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status} for {url}")
            return await resp.read()


async def download_image(session, semaphore, url, out_dir):
    data = await fetch(session, semaphore, url)
    with open(os.path.join(out_dir, urlparse(url).path.split("/")[-1]), "wb") as fp:
        fp.write(data)
    return len(data)


async def crawl(start_url, out_dir, concurrency, max_depth):
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    tasks, seen, pages, page_errors = [], set(), 0, 0
    async with aiohttp.ClientSession(connector=connector) as session:
        url, depth = start_url, 0
        while url and depth <= max_depth:
            try:
                html = (await fetch(session, semaphore, url)).decode("utf-8", "replace")
            except Exception as error:  # noqa: BLE001 - reported, like gather's return_exceptions
                print(f"failed: {error!r}", file=sys.stderr)
                page_errors += 1
                break
            pages += 1
            for src in IMG.findall(html):
                image = urljoin(url, src)
                if image not in seen:
                    seen.add(image)
                    tasks.append(asyncio.ensure_future(download_image(session, semaphore, image, out_dir)))
            found = NEXT.search(html)
            url, depth = (urljoin(url, found.group(1)) if found else None), depth + 1
        results = await asyncio.gather(*tasks, return_exceptions=True)
    return results, pages, page_errors


def main():
    start_url, out_dir = sys.argv[1], sys.argv[2]
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    max_depth = int(sys.argv[4]) if len(sys.argv) > 4 else 19
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    results, pages, page_errors = asyncio.run(crawl(start_url, out_dir, concurrency, max_depth))
    seconds = time.perf_counter() - t0
    sizes = [r for r in results if isinstance(r, int)]
    failed = len(results) - len(sizes)
    print(json.dumps({"downloaded": len(sizes), "failed": failed, "pages": pages, "bytes": sum(sizes), "seconds": seconds}))
    sys.exit(1 if failed or page_errors else 0)


if __name__ == "__main__":
    main()
