#!/usr/bin/env bash
# Runs every zooid test. Installs what the tests need first: Apache ZooKeeper 3.8 and its
# C client and Curator from Debian (the oracle and third-party clients), libfaketime, nftables
# (the fault harness's partitions and loss), ZooKeeper 3.9.3
# (the second oracle, scripts/zookeeper-3.9.sh), kazoo, pure-sasl (kazoo's SASL), pyOpenSSL and
# pyjks (kazoo's own test harness) and pytest from PyPI.
# Each install step is skipped when its tool is already there, so re-runs start at once.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
[ -x /usr/lib/zookeeper/bin/cli_mt ] || missing+=(zookeeper-bin)
command -v java >/dev/null || missing+=(default-jre-headless)
command -v nc >/dev/null || missing+=(netcat-openbsd)
[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
[ -f /usr/share/java/curator-framework.jar ] || missing+=(libcurator-framework-java libcurator-client-java)
command -v javac >/dev/null || missing+=(default-jdk-headless)
command -v nft >/dev/null || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import kazoo, pytest, puresasl, OpenSSL, jks' 2>/dev/null; then
  python3 -m pip install -q -r tests/py/requirements.txt
fi
# ZooKeeper 3.9.3, the second oracle, into a cache folder (once).
scripts/zookeeper-3.9.sh >/dev/null

cargo build --quiet --bins
cargo test --workspace --quiet
ZOOID_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/zooid" \
  ZOOID_SIM_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/zooid-sim" python3 -m pytest -q tests/py
