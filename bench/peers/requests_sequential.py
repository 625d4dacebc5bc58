"""Seed 004's first program: one requests.get after another, each image saved before the next.

    /usr/bin/python3 bench/peers/requests_sequential.py <list> <out_dir>

Prints {"downloaded","failed","bytes","seconds"} on stdout; exits 1 if any URL failed.
"""
import json
import os
import sys
import time
from urllib.parse import urlparse

import requests


def main():
    list_path, out_dir = sys.argv[1], sys.argv[2]
    with open(list_path) as fp:
        urls = [line.strip() for line in fp if line.strip()]
    os.makedirs(out_dir, exist_ok=True)
    downloaded = failed = total = 0
    t0 = time.perf_counter()
    for url in urls:
        try:
            resp = requests.get(url, timeout=30)
            if resp.status_code != 200:
                failed += 1
                continue
            with open(os.path.join(out_dir, urlparse(url).path.split("/")[-1]), "wb") as fp:
                fp.write(resp.content)
            downloaded += 1
            total += len(resp.content)
        except Exception:
            failed += 1
    seconds = time.perf_counter() - t0
    print(json.dumps({"downloaded": downloaded, "failed": failed, "bytes": total, "seconds": seconds}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
