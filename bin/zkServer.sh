#!/usr/bin/env bash
# zkServer.sh for zooid: the commands of ZooKeeper's bin/zkServer.sh, so tutorials and init
# scripts written for ZooKeeper work unchanged:
#
#   bin/zkServer.sh [--config <conf-dir>] {start|start-foreground|stop|restart|status|version} [cfg]
#
# Everything is done by `zooid server ...` (see `zooid --help`); this script only finds the
# binary and the config:
#   zooid     $ZOOID_BIN, else ../target/release/zooid or ../target/debug/zooid next to this
#             script, else zooid on PATH
#   config    [cfg] as in zkServer.sh: a bare name is looked up in $ZOOCFGDIR, a path is used
#             as is; without it $ZOOCFG, then $ZOOCFGDIR/zoo.cfg (ZOOCFGDIR defaults to
#             ../conf next to this script, as called or with symlinks resolved, when that
#             holds a zoo.cfg), then ./zoo.cfg
#   env       ZOO_LOG_DIR (where zookeeper-$USER-server-$HOSTNAME.out goes; default: dataDir),
#             ZOOPIDFILE (default: dataDir/zookeeper_server.pid) and SERVER_JVMFLAGS (its
#             -Dzookeeper.* settings) are read by zooid itself.
# Unlike ZooKeeper's script there is no JVM: nothing about JMX is printed, and `start` waits
# until the server answers, or prints why it could not start.

# Where the script was called (its ../conf, as in a ZooKeeper install) and where it really is
# (its ../target, in a zooid checkout), which differ when it is a symlink.
ZOOBIN="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZOOBIN_REAL="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

if [ "$1" = "--config" ]; then
  if [ -z "$2" ] || [ ! -d "$2" ]; then
    echo "Error: --config needs an existing directory, got: ${2:-nothing}" >&2
    exit 1
  fi
  ZOOCFGDIR="$2"
  shift 2
fi

if [ -z "$ZOOCFGDIR" ]; then
  for dir in "$ZOOBIN/../conf" "$ZOOBIN_REAL/../conf"; do
    if [ -f "$dir/zoo.cfg" ]; then
      ZOOCFGDIR="$(cd "$dir" && pwd)"
      break
    fi
  done
fi
[ -n "$ZOOCFGDIR" ] && export ZOOCFGDIR

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

CFG=()
if [ -n "$2" ]; then
  case "$2" in
    */*) CFG=("$2") ;;
    *) if [ -n "$ZOOCFGDIR" ]; then CFG=("$ZOOCFGDIR/$2"); else CFG=("$2"); fi ;;
  esac
fi

case "$1" in
  start|start-foreground|stop|restart|status)
    exec "$ZOOID" server "$1" "${CFG[@]}"
    ;;
  version)
    exec "$ZOOID" version
    ;;
  *)
    echo "Usage: $0 [--config <conf-dir>] {start|start-foreground|stop|version|restart|status}" >&2
    exit 1
    ;;
esac
