#!/usr/bin/env bash
# Test-only tools from Debian: Chromium (the real-browser test; Playwright drives /usr/bin/chromium, never
# `playwright install`) and the ffmpeg CLI (an independent PSNR cross-check). Tests skip with a reason
# when a tool is missing; this script makes sure they are not missing on Debian/Ubuntu machines.
set -uo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
[ ${#need[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "[test-tools] no apt-get: ${need[*]} not installed" >&2; exit 1; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[test-tools] installing ${need[*]} (apt, one-time)" >&2
$SUDO apt-get update -qq >/dev/null 2>&1
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1
[ -x /usr/bin/chromium ] && command -v ffmpeg >/dev/null
