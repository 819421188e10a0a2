#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser, driven by Playwright with
# executable_path): installed with apt when absent. Playwright's own browser download is never
# used. Needs root (or sudo) the first time only.
set -euo pipefail
for candidate in chromium chromium-browser; do
  if command -v "$candidate" >/dev/null 2>&1; then exit 0; fi
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_chromium: need root to apt-get install chromium" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Chromium (apt-get install chromium)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
