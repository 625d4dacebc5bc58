"""Seed 004 style: requests + ThreadPoolExecutor(20), one requests.Session per thread.

    /usr/bin/python3 bench/peers/requests_threads.py <list> <out_dir> [workers=20]

Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any URL failed.
"""
import json
import os
import sys
import threading
import time
from concurrent import futures
from urllib.parse import urlparse

import requests

local = threading.local()


def session():
    if not hasattr(local, "session"):
        local.session = requests.Session()
    return local.session


def download_one(url, out_dir):
    try:
        resp = session().get(url, timeout=30)
        if resp.status_code != 200:
            return -1
        filename = urlparse(url).path.split("/")[-1]
        with open(os.path.join(out_dir, filename), "wb") as fp:
            fp.write(resp.content)
        return len(resp.content)
    except Exception:
        return -1


def main():
    list_path, out_dir = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with open(list_path) as fp:
        urls = [line.strip() for line in fp if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(min(workers, len(urls) or 1)) as executor:
        results = list(executor.map(lambda url: download_one(url, out_dir), urls))
    seconds = time.perf_counter() - t0
    sizes = [r for r in results if r >= 0]
    failed = len(results) - len(sizes)
    print(json.dumps({"downloaded": len(sizes), "failed": failed, "bytes": sum(sizes), "seconds": seconds}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
