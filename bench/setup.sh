#!/usr/bin/env bash
# Installs the Debian peers the benchmark compares imgdl against.
# Idempotent: does nothing when every peer is already present.
set -euo pipefail

missing=()
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
command -v wget2 >/dev/null 2>&1 || missing+=(wget2)
/usr/bin/python3 -c 'import aiohttp' >/dev/null 2>&1 || missing+=(python3-aiohttp)
/usr/bin/python3 -c 'import requests' >/dev/null 2>&1 || missing+=(python3-requests)
/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1 || missing+=(python3-pil) # W10's peer resizes with Pillow
command -v taskset >/dev/null 2>&1 || missing+=(util-linux) # --pin

if [ "${#missing[@]}" -eq 0 ]; then
  echo "bench peers: all present (aria2c, wget2, python3-aiohttp, python3-requests, python3-pil, taskset)"
  exit 0
fi

echo "bench peers: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
