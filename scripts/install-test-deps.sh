#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (run as root): Debian packages for the
# network-namespace labs and reference peers, then the npm dependencies (which also builds native code
# and generates protobuf code).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  iproute2 nftables iputils-ping iperf3 procps psmisc   # namespaces, NAT, ping, throughput, process tools
  wireguard-go wireguard-tools                          # independent WireGuard peer for interop tests
  coturn                                                # STUN/TURN reference
  postgresql                                            # store tests on PostgreSQL
  dnsutils netcat-openbsd socat curl openssl           # lab utilities, TLS test certificates
  chromium                                              # dashboard end-to-end tests (playwright-core)
  python3 make g++                                      # node-gyp for the native addons
)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
node -e 'const [maj]=process.versions.node.split(".").map(Number); if (maj < 20) { console.error("Node.js >= 20 is required, found " + process.version); process.exit(1); }'
# The registry connection sometimes drops mid-download (ECONNRESET); npm ci then starts over cleanly.
for attempt in 1 2 3; do
  npm ci --no-audit --no-fund && break
  if [ "$attempt" = 3 ]; then
    echo "npm ci failed 3 times: check the connection to the npm registry, then run this script again" >&2
    exit 1
  fi
  echo "npm ci failed (attempt $attempt of 3); retrying in $((attempt * 10)) s" >&2
  sleep $((attempt * 10))
done
