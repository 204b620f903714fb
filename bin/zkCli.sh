#!/usr/bin/env bash
# zkCli.sh for zooid. zooid's own shell (`zooid cli`) is not written yet, so this runs the Java
# zkCli.sh of Debian's zookeeper package (apt-get install zookeeper), which works unchanged
# against zooid:   bin/zkCli.sh -server 127.0.0.1:2181 [command args...]
# Set ZKCLI to use another ZooKeeper 3.x zkCli.sh.

ZKCLI="${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}"
if [ -x "$ZKCLI" ]; then
  exec "$ZKCLI" "$@"
fi
echo "Error: zooid has no shell of its own yet and no ZooKeeper zkCli.sh was found at $ZKCLI." >&2
echo "Install one (apt-get install zookeeper) or set ZKCLI to a ZooKeeper 3.x bin/zkCli.sh." >&2
exit 1
