//! Snapshots (`version-2/snapshot.<zxid>[.gz|.snappy]`) in ZooKeeper's format.
