#!/usr/bin/env bash
# Install headless Chromium (Debian's package) for the web-map browser tests.
# Idempotent: does nothing when chromium and a system font are already there.
# The tests drive Chromium over the DevTools protocol on a pipe, so no driver
# binary (chromedriver) is needed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
command -v chromium > /dev/null 2>&1 || need+=(chromium)
# The page uses system fonts only; DejaVu gives the screenshots readable text.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-chromium: need root to install ${need[*]}" >&2
    exit 1
  fi
  # apt lists may be missing on a fresh machine; update once if so.
  if ! apt-cache policy "${need[0]}" | grep -q Candidate: || \
     apt-cache policy "${need[0]}" | grep -q 'Candidate: (none)'; then
    apt-get update -qq
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" > /dev/null
fi
command -v chromium > /dev/null
