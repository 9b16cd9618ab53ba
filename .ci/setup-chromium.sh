#!/usr/bin/env bash
# Install headless Chromium (Debian's package) for the web-map browser tests, and
# axe-core (npm registry) whose axe.min.js the tests inject from local disk.
# Idempotent: does nothing when chromium, a system font and axe-core are already there.
# The tests drive Chromium over the DevTools protocol on a pipe, so no driver
# binary (chromedriver) is needed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
command -v chromium > /dev/null 2>&1 || need+=(chromium)
# The page uses system fonts only; DejaVu gives the screenshots readable text.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# npm (Debian's nodejs + npm) installs axe-core below.
command -v npm > /dev/null 2>&1 || need+=(npm)

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

# The accessibility engine of the browser tests (tests/api/test_webmap_responder.py
# reads DCM_AXE_JS, by default this path).
AXE_VERSION=4.14.1
AXE_DIR=/opt/dcm-test/axe
if [ ! -e "$AXE_DIR/node_modules/axe-core/axe.min.js" ] || \
   ! grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json"; then
  mkdir -p "$AXE_DIR"
  npm install --silent --no-save --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" > /dev/null
fi
test -s "$AXE_DIR/node_modules/axe-core/axe.min.js"
