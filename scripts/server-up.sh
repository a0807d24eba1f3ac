#!/usr/bin/env bash
# Installs netbird-ts on a fresh Debian machine and starts netbird-server in the foreground on its safe
# local default (localhost, SQLite under ./data). Extra arguments go to netbird-server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for p in python3 make g++ iproute2; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "missing Debian packages ${need[*]}: run as root (sudo) or install them first" >&2; exit 1; fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "netbird-ts needs Node.js 20 or newer (https://nodejs.org or your distribution's nodejs package)" >&2
  exit 1
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
exec bin/netbird-server "$@"
