//! The txn log (`version-2/log.<zxid>`): writing with preallocation and group fsync, reading back with torn-tail detection.
