#!/usr/bin/env bash
# Prints a Java classpath that runs Apache ZooKeeper 3.9.3, the second oracle of the tests,
# installing it first if needed. The jars are Debian 13 (trixie)'s packages, fetched from the
# Debian archive this machine's apt already uses and unpacked into a cache folder; nothing is
# installed system-wide. They run on the Java and the dependency jars Debian 12's `zookeeper`
# package (3.8.0) brings, which scripts/test.sh installs.
#
#   java -cp "$(scripts/zookeeper-3.9.sh)" org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg
#   java -cp "$(scripts/zookeeper-3.9.sh)" org.apache.zookeeper.ZooKeeperMain -server 127.0.0.1:2181
#
# Cache folder: $ZOOID_ZK39_HOME (default ~/.cache/zooid/zookeeper-3.9.3).
set -euo pipefail
version=3.9.3-1+deb13u1
home=${ZOOID_ZK39_HOME:-$HOME/.cache/zooid/zookeeper-3.9.3}
repo=$home/root/usr/share/maven-repo/org/apache/zookeeper
server_jar=$repo/zookeeper/3.9.3/zookeeper-3.9.3.jar
jute_jar=$repo/zookeeper-jute/3.9.3/zookeeper-jute-3.9.3.jar

if [ ! -f "$server_jar" ] || [ ! -f "$jute_jar" ]; then
  if [ ! -f /usr/share/java/zookeeper.jar ]; then
    echo "zookeeper-3.9.sh: Debian's zookeeper package (3.8.0) is needed for the dependency jars; run scripts/test.sh or apt-get install zookeeper" >&2
    exit 1
  fi
  archive=$(grep -rhoE '^[^#]*(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
            | grep -oE 'https?://[^ ]+/debian' | head -n 1 || true)
  if [ -z "$archive" ]; then
    # deb822 sources (Types/URIs lines)
    archive=$(grep -rhoE '^URIs: *https?://[^ ]+/debian/?' /etc/apt/sources.list.d/ 2>/dev/null \
              | grep -oE 'https?://[^ ]+/debian' | head -n 1 || true)
  fi
  if [ -z "$archive" ]; then
    echo "zookeeper-3.9.sh: found no Debian archive in /etc/apt/sources.list*; cannot fetch ZooKeeper 3.9.3" >&2
    exit 1
  fi
  mkdir -p "$home/lists/partial" "$home/debs/partial" "$home/root"
  echo "deb [trusted=yes] ${archive%/} trixie main" > "$home/trixie.list"
  apt_opts=(-o Dir::Etc::SourceList="$home/trixie.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$home/lists" -o Dir::Cache::Archives="$home/debs")
  # As root, apt would hand the downloads to its _apt user, who may not write to this cache.
  [ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq >/dev/null
  (cd "$home/debs" && apt-get "${apt_opts[@]}" download "libzookeeper-java=$version" "zookeeper=$version" >/dev/null)
  for deb in "$home"/debs/*.deb; do dpkg -x "$deb" "$home/root"; done
  [ -f "$server_jar" ] || { echo "zookeeper-3.9.sh: $server_jar missing after unpacking" >&2; exit 1; }
fi

# The 3.9.3 jute jar must come before Debian's 3.8.0 one, which the 3.9.3 jar's manifest names.
deps=$(ls /usr/share/java/*.jar | grep -v '/zookeeper' | tr '\n' ':')
echo "/etc/zookeeper/conf:$jute_jar:$server_jar:${deps%:}"
