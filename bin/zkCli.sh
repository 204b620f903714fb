#!/usr/bin/env bash
# zkCli.sh for zooid: ZooKeeper's command-line shell, as `zooid cli`, which takes zkCli's
# arguments and prints what zkCli prints:
#
#   bin/zkCli.sh [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [cmd args...]
#
# This script only finds the binary: $ZOOID_BIN, else ../target/release/zooid or
# ../target/debug/zooid next to this script, else zooid on PATH. Set ZKCLI to the path of a
# ZooKeeper 3.x bin/zkCli.sh to run that (Java) shell instead.

if [ -n "$ZKCLI" ]; then
  if [ -x "$ZKCLI" ]; then
    exec "$ZKCLI" "$@"
  fi
  echo "Error: ZKCLI is set to $ZKCLI, which is not an executable file." >&2
  exit 1
fi

# Where the script really is (its ../target, in a zooid checkout), symlinks resolved.
ZOOBIN_REAL="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

ZOOID="$ZOOID_BIN"
if [ -z "$ZOOID" ]; then
  for candidate in "$ZOOBIN_REAL/../target/release/zooid" "$ZOOBIN_REAL/../target/debug/zooid"; do
    if [ -x "$candidate" ]; then
      ZOOID="$candidate"
      break
    fi
  done
fi
if [ -z "$ZOOID" ]; then
  ZOOID="$(command -v zooid)"
fi
if [ -z "$ZOOID" ] || [ ! -x "$ZOOID" ]; then
  echo "Error: the zooid binary was not found: set ZOOID_BIN, build it (cargo build --release)," \
    "or put zooid on PATH" >&2
  exit 1
fi

exec "$ZOOID" cli "$@"
