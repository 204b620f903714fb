//! End-to-end tests of the client protocol against an in-process zooid server, driven over TCP by
//! the third-party `zookeeper-client` crate. Scenarios the library cannot express (malformed
//! bytes, handshake layout, four-letter words, requests it refuses to send) are in `raw.rs`.
//! Expected values follow ZooKeeper 3.8 semantics (the layouts of `crates/proto/src/records.rs`).

#[macro_use]
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::zk::EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};
use common::zk::{self, AddWatchMode, Permission, SessionState};
use common::*;

/// `alice:` + base64(sha1("alice:secret")), computed independently of the server.
const ALICE_DIGEST_ID: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

/// Upper bound for a whole test.
const TEST_BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_BOUND:?}"))
}

/// A client that talks to the server as if it were older than 3.5, so that `create` is sent
/// as plain create (op 1), whose reply carries the path only.
fn pre_3_5() -> zk::Connector {
    zk::Client::connector().with_server_version(3, 4, 0)
}

fn ttl_options(mode: zk::CreateMode, ttl_ms: u64) -> zk::CreateOptions<'static> {
    mode.with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(ttl_ms))
}

/// The server's BADARGUMENTS as the library reports it.
const SERVER_BAD_ARGUMENTS: zk::Error = zk::Error::BadArguments(&"server error");

// =============================================================================================
// 1. Node types
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_node_create_and_read() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        let (stat, _) = c.create("/p", b"hello", &PERSISTENT).await.unwrap();
        assert!(
            stat.czxid > 0,
            "czxid of a created node is positive: {stat:?}"
        );
        assert_eq!(stat.mzxid, stat.czxid, "mzxid == czxid at creation");
        assert_eq!(stat.pzxid, stat.czxid, "pzxid == czxid at creation");
        assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
        assert_eq!(stat.ephemeral_owner, 0);
        assert_eq!(stat.data_length, 5);
        assert_eq!(stat.num_children, 0);
        assert_eq!(stat.ctime, stat.mtime);
        assert!(
            stat.ctime > 1_600_000_000_000,
            "ctime is ms since the epoch: {}",
            stat.ctime
        );

        let (data, read_stat) = c.get_data("/p").await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(read_stat, stat, "getData returns the stat create2 returned");
        assert_eq!(c.check_stat("/p").await.unwrap(), Some(stat));
        assert_eq!(c.check_stat("/none").await.unwrap(), None);

        // Plain create (op 1).
        let old = server.connect(pre_3_5()).await;
        old.create("/p1", b"", &PERSISTENT).await.unwrap();
        let (_, p1) = c.get_data("/p1").await.unwrap();
        assert!(p1.czxid > stat.czxid, "{p1:?}");
        assert_eq!((p1.version, p1.data_length, p1.ephemeral_owner), (0, 0, 0));

        assert_eq!(
            sorted(c.list_children("/").await.unwrap()),
            strings(&["p", "p1", "zookeeper"])
        );
        assert_eq!(
            c.create("/p", b"", &PERSISTENT).await.unwrap_err(),
            zk::Error::NodeExists
        );
        assert_eq!(
            c.create("/missing/child", b"", &PERSISTENT)
                .await
                .unwrap_err(),
            zk::Error::NoNode
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_node_lifecycle() {
    bounded(async {
        let server = TestServer::start().await;
        let owner = server.client().await;
        let observer = server.client().await;
        let owner_id = owner.session_id().0;
        assert_ne!(owner_id, 0);
        assert_ne!(owner_id, observer.session_id().0);

        let (stat, _) = owner.create("/e", b"x", &EPHEMERAL).await.unwrap();
        assert_eq!(
            stat.ephemeral_owner, owner_id,
            "ephemeralOwner is the creating session"
        );
        assert_eq!(stat.czxid, stat.pzxid);

        assert_eq!(
            owner
                .create("/e/child", b"", &PERSISTENT)
                .await
                .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        assert_eq!(
            observer
                .create("/e/child", b"", &EPHEMERAL)
                .await
                .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        assert_eq!(
            observer
                .create("/e/seq-", b"", &PERSISTENT_SEQUENTIAL)
                .await
                .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );

        let (_, seen_stat, watcher) = observer.get_and_watch_data("/e").await.unwrap();
        assert_eq!(seen_stat.ephemeral_owner, owner_id);

        // Dropping the last handle of an attached client sends closeSession; closing the
        // owner's session removes its ephemerals.
        let mut state = owner.state_watcher();
        drop(owner);
        assert_eq!(next_state(&mut state).await, SessionState::Closed);
        assert_eq!(fired(watcher).await, event(NodeDeleted, "/e"));
        assert_eq!(observer.check_stat("/e").await.unwrap(), None);
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_nodes_are_named_from_parent_cversion() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.create("/s", b"", &PERSISTENT).await.unwrap();

        let (st0, seq0) = c
            .create("/s/n-", b"a", &PERSISTENT_SEQUENTIAL)
            .await
            .unwrap();
        assert_eq!(seq0.to_string(), "0000000000");
        let (_, got0) = c.get_data("/s/n-0000000000").await.unwrap();
        assert_eq!((got0.czxid, got0.ephemeral_owner), (st0.czxid, 0));

        let (st1, seq1) = c.create("/s/e-", b"", &EPHEMERAL_SEQUENTIAL).await.unwrap();
        assert_eq!(seq1.to_string(), "0000000001");
        assert_eq!(st1.ephemeral_owner, c.session_id().0);

        // The sequence number is the parent's internal create counter. A delete does not
        // advance it, but the cversion clients see is 2 * creates - numChildren
        // (DataNode.copyStat), so it does count deletes.
        c.create("/s/plain", b"", &PERSISTENT).await.unwrap();
        let (_, mid) = c.get_children("/s").await.unwrap();
        assert_eq!((mid.cversion, mid.num_children), (3, 3));
        c.delete("/s/plain", None).await.unwrap();
        let (_, mid) = c.get_children("/s").await.unwrap();
        assert_eq!(
            (mid.cversion, mid.num_children),
            (4, 2),
            "a delete shows as a cversion change"
        );
        let (st3, seq3) = c
            .create("/s/n-", b"", &PERSISTENT_SEQUENTIAL)
            .await
            .unwrap();
        assert_eq!(
            seq3.to_string(),
            "0000000003",
            "deletes do not consume sequence numbers"
        );
        // Plain create (op 1) of a sequential node returns the full name too.
        let old = server.connect(pre_3_5()).await;
        let (_, seq4) = old
            .create("/s/", b"", &PERSISTENT_SEQUENTIAL)
            .await
            .unwrap();
        assert_eq!(seq4.to_string(), "0000000004");

        let (children, parent) = c.get_children("/s").await.unwrap();
        assert_eq!(
            sorted(children),
            strings(&["0000000004", "e-0000000001", "n-0000000000", "n-0000000003"])
        );
        assert_eq!(parent.cversion, 6, "2 * 5 creates - 4 children");
        assert_eq!(parent.num_children, 4);
        assert!(
            parent.pzxid > st3.czxid,
            "pzxid is the zxid of the last child change"
        );
        assert_eq!(
            parent.version, 0,
            "child changes do not touch the data version"
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_deleted_after_its_last_child() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        let (stat, _) = c.create("/c", b"", &CONTAINER).await.unwrap();
        assert_eq!(
            stat.ephemeral_owner, 0,
            "containers report ephemeralOwner 0"
        );
        // A container that never had a child stays (maxNeverUsedIntervalMs = 0).
        c.create("/never-used", b"", &CONTAINER).await.unwrap();

        c.create("/c/a", b"", &PERSISTENT).await.unwrap();
        c.create("/c/b", b"", &PERSISTENT).await.unwrap();
        let (_, _, watcher) = c.get_and_watch_data("/c").await.unwrap();
        c.delete("/c/a", None).await.unwrap();
        c.delete("/c/b", None).await.unwrap();

        assert_eq!(fired(watcher).await, event(NodeDeleted, "/c"));
        assert_eq!(c.check_stat("/c").await.unwrap(), None);
        assert!(
            c.check_stat("/never-used").await.unwrap().is_some(),
            "never-used container must stay"
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_node_is_deleted_after_ttl() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        use zk::CreateMode::{Persistent, PersistentSequential};

        // A TTL node with a child is not reaped.
        c.create("/t-parent", b"", &ttl_options(Persistent, 100))
            .await
            .unwrap();
        c.create("/t-parent/child", b"", &PERSISTENT).await.unwrap();

        let created = Instant::now();
        let (stat, _) = c
            .create("/t", b"d", &ttl_options(Persistent, 300))
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report ephemeralOwner 0");
        assert_eq!((stat.data_length, stat.version), (1, 0));
        let (_, _, watcher) = c.get_and_watch_data("/t").await.unwrap();

        assert_eq!(fired(watcher).await, event(NodeDeleted, "/t"));
        let elapsed = created.elapsed();
        assert!(
            elapsed >= Duration::from_millis(300),
            "deleted after {elapsed:?}, before its 300 ms TTL"
        );
        assert!(
            c.check_stat("/t-parent").await.unwrap().is_some(),
            "TTL node with a child must stay"
        );

        // Sequential TTL nodes are named as usual.
        let (_, seq) = c
            .create(
                "/t-parent/q-",
                b"",
                &ttl_options(PersistentSequential, 60_000),
            )
            .await
            .unwrap();
        assert_eq!(seq.to_string(), "0000000001");
        // Invalid TTL requests are refused by the library itself; raw.rs sends them.
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_requires_extended_types() {
    bounded(async {
        let server = TestServer::start_with(|cfg| cfg.extended_types_enabled = false).await;
        let c = server.client().await;
        let ttl = ttl_options(zk::CreateMode::Persistent, 10_000);
        assert_eq!(
            c.create("/t", b"", &ttl).await.unwrap_err(),
            zk::Error::Unimplemented
        );
        assert_eq!(c.check_stat("/t").await.unwrap(), None);
        server.stop().await;
    })
    .await
}

// =============================================================================================
// 2. Requests
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_delete_versions_and_errors() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        let (created, _) = c.create("/a", b"v0", &PERSISTENT).await.unwrap();
        let s1 = c.set_data("/a", b"v1-longer", Some(0)).await.unwrap();
        assert_eq!(s1.version, 1);
        assert_eq!((s1.czxid, s1.ctime), (created.czxid, created.ctime));
        assert!(s1.mzxid > created.mzxid, "mzxid advances: {s1:?}");
        assert_eq!(s1.pzxid, created.pzxid, "setData does not touch pzxid");
        assert_eq!(s1.data_length, 9);
        assert!(s1.mtime >= created.mtime);

        assert_eq!(
            c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        let s2 = c.set_data("/a", b"v2", Some(-1)).await.unwrap();
        assert_eq!(s2.version, 2, "version -1 means any");
        assert_eq!(c.get_data("/a").await.unwrap().0, b"v2");
        assert_eq!(
            c.set_data("/nope", b"", None).await.unwrap_err(),
            zk::Error::NoNode
        );

        let (child, _) = c.create("/a/b", b"", &PERSISTENT).await.unwrap();
        let (children, parent) = c.get_children("/a").await.unwrap();
        assert_eq!(children, strings(&["b"]));
        assert_eq!(
            (parent.num_children, parent.cversion, parent.version),
            (1, 1, 2)
        );
        assert_eq!(parent.pzxid, child.czxid);
        assert_eq!(c.list_children("/a").await.unwrap(), strings(&["b"]));
        assert_eq!(c.list_children("/a/b").await.unwrap(), Vec::<String>::new());
        assert_eq!(
            c.list_children("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );
        assert_eq!(
            c.get_children("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );

        assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
        assert_eq!(
            c.delete("/a/b", Some(3)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        assert_eq!(
            c.delete("/nope", None).await.unwrap_err(),
            zk::Error::NoNode
        );
        c.delete("/a/b", Some(0)).await.unwrap();
        let (_, after) = c.get_children("/a").await.unwrap();
        assert_eq!((after.num_children, after.cversion), (0, 2));
        assert!(after.pzxid > child.czxid, "delete advances pzxid");
        c.delete("/a", Some(2)).await.unwrap();

        assert_eq!(
            c.check_stat("/a").await.unwrap(),
            None,
            "exists on a missing node"
        );
        assert_eq!(c.get_data("/a").await.unwrap_err(), zk::Error::NoNode);
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_nodes() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        for path in ["/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert_eq!(
                c.delete(path, None).await.unwrap_err(),
                SERVER_BAD_ARGUMENTS,
                "delete {path}"
            );
        }
        let (data, config_stat) = c.get_config().await.unwrap();
        assert!(
            data.is_empty(),
            "standalone /zookeeper/config is empty, got {:?}",
            String::from_utf8_lossy(&data)
        );
        assert_eq!(
            c.get_data("/zookeeper/config").await.unwrap(),
            (data, config_stat)
        );
        let (root_data, root) = c.get_data("/").await.unwrap();
        assert!(root_data.is_empty());
        assert_eq!((root.czxid, root.mzxid), (0, 0), "root czxid/mzxid are 0");
        assert_eq!(
            sorted(c.list_children("/zookeeper").await.unwrap()),
            strings(&["config", "quota"])
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_descendants_number() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        // Fresh tree: /zookeeper, /zookeeper/quota, /zookeeper/config below "/".
        assert_eq!(c.count_descendants_number("/").await.unwrap(), 3);
        assert_eq!(c.count_descendants_number("/zookeeper").await.unwrap(), 2);
        assert_eq!(
            c.count_descendants_number("/zookeeper/quota")
                .await
                .unwrap(),
            0
        );

        c.create("/d", b"", &PERSISTENT).await.unwrap();
        c.create("/d/1", b"", &PERSISTENT).await.unwrap();
        c.create("/d/1/2", b"", &PERSISTENT).await.unwrap();
        c.create("/d/3", b"", &EPHEMERAL).await.unwrap();
        assert_eq!(
            c.count_descendants_number("/d").await.unwrap(),
            3,
            "all descendants, not the node itself"
        );
        assert_eq!(c.count_descendants_number("/d/1").await.unwrap(), 1);
        assert_eq!(c.count_descendants_number("/d/1/2").await.unwrap(), 0);
        assert_eq!(c.count_descendants_number("/").await.unwrap(), 7);
        assert_eq!(
            c.count_descendants_number("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ephemerals_of_own_session() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let other = server.client().await;

        c.create("/d", b"", &PERSISTENT).await.unwrap();
        c.create("/d/1", b"", &PERSISTENT).await.unwrap();
        c.create("/d/e1", b"", &EPHEMERAL).await.unwrap();
        c.create("/d/1/e2", b"", &EPHEMERAL).await.unwrap();
        c.create("/dx", b"", &EPHEMERAL).await.unwrap();
        other.create("/d/theirs", b"", &EPHEMERAL).await.unwrap();

        assert_eq!(
            sorted(c.list_ephemerals("/").await.unwrap()),
            strings(&["/d/1/e2", "/d/e1", "/dx"])
        );
        // ZooKeeper filters with a plain string prefix, so "/d" also matches "/dx". (The
        // prefixes "" and "/d/", which the library refuses to send, are in raw.rs.)
        assert_eq!(
            sorted(c.list_ephemerals("/d").await.unwrap()),
            strings(&["/d/1/e2", "/d/e1", "/dx"])
        );
        assert_eq!(
            c.list_ephemerals("/d/1").await.unwrap(),
            strings(&["/d/1/e2"])
        );
        assert_eq!(
            c.list_ephemerals("/d/e1").await.unwrap(),
            strings(&["/d/e1"]),
            "the prefix node itself is included"
        );
        assert_eq!(
            c.list_ephemerals("/nope").await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            other.list_ephemerals("/").await.unwrap(),
            strings(&["/d/theirs"])
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_node_acls() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        // Built-in nodes: "/", /zookeeper and /zookeeper/quota are OPEN_ACL_UNSAFE, config is
        // READ_ACL_UNSAFE.
        let mut got = Vec::new();
        for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            got.push((path, c.get_acl(path).await.unwrap().0));
        }
        let all = vec![anyone(Permission::ALL)];
        let read = vec![anyone(Permission::READ)];
        assert_eq!(
            got,
            vec![
                ("/", all.clone()),
                ("/zookeeper", all.clone()),
                ("/zookeeper/quota", all),
                ("/zookeeper/config", read)
            ]
        );
        assert_eq!(
            c.set_data("/zookeeper/config", b"x", None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_acl_and_set_acl_with_version() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        let (created, _) = c.create("/acl", b"", &PERSISTENT).await.unwrap();
        let read_only = vec![anyone(Permission::READ)];
        assert_eq!(
            c.set_acl("/acl", &read_only, Some(1)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        let stat = c.set_acl("/acl", &read_only, Some(0)).await.unwrap();
        assert_eq!(stat.aversion, 1);
        assert_eq!(stat.version, 0, "setACL does not touch the data version");
        assert_eq!(stat.mzxid, created.mzxid, "setACL does not touch mzxid");
        let (got, stat2) = c.get_acl("/acl").await.unwrap();
        assert_eq!(got, read_only);
        assert_eq!(stat2.aversion, 1);
        assert_eq!(
            c.set_data("/acl", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        // No ADMIN any more either.
        let open = vec![anyone(Permission::ALL)];
        assert_eq!(
            c.set_acl("/acl", &open, None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(c.get_acl("/nope").await.unwrap_err(), zk::Error::NoNode);
        assert_eq!(
            c.set_acl("/nope", &open, None).await.unwrap_err(),
            zk::Error::NoNode
        );

        // Duplicate entries are removed.
        c.create("/dup", b"", &PERSISTENT).await.unwrap();
        let dup = vec![anyone(Permission::ALL), anyone(Permission::ALL)];
        c.set_acl("/dup", &dup, None).await.unwrap();
        assert_eq!(c.get_acl("/dup").await.unwrap().0, open);
        server.stop().await;
    })
    .await
}

fn auth_users(users: Vec<zk::AuthUser>) -> Vec<(String, String)> {
    let mut v: Vec<_> = users
        .iter()
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_who_am_i() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        c.create("/x", b"", &PERSISTENT).await.unwrap();
        // The library checks that the reply carries a path; raw.rs checks that it is echoed.
        c.sync("/x").await.unwrap();
        c.sync("/").await.unwrap();

        let ip = ("ip".to_string(), "127.0.0.1".to_string());
        assert_eq!(
            auth_users(c.list_auth_users().await.unwrap()),
            vec![ip.clone()]
        );
        c.auth("digest", b"alice:secret").await.unwrap();
        assert_eq!(
            auth_users(c.list_auth_users().await.unwrap()),
            vec![("digest".to_string(), "alice".to_string()), ip]
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_unknown_scheme_fails_the_session() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let bystander = server.client().await;
        let mut state = c.state_watcher();
        assert_eq!(
            c.auth("nosuch", b"whatever").await.unwrap_err(),
            zk::Error::AuthFailed
        );
        assert_eq!(next_state(&mut state).await, SessionState::AuthFailed);
        assert_eq!(
            c.check_stat("/").await.unwrap_err(),
            zk::Error::AuthFailed,
            "the session is unusable after AUTHFAILED"
        );
        // That the server closes the connection after the reply is checked in raw.rs.
        assert!(bystander.check_stat("/").await.unwrap().is_some());
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let (m0, _) = c.create("/m", b"orig", &PERSISTENT).await.unwrap();

        // A failing op in the middle: nothing is applied. (The library reports the first
        // failing op; earlier ops carry err 0, which it skips.)
        let mut w = c.new_multi_writer();
        w.add_create("/m/1", b"one", &PERSISTENT).unwrap();
        w.add_set_data("/m", b"changed", Some(5)).unwrap();
        w.add_create("/m/2", b"two", &PERSISTENT).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadVersion
            }
        );
        // A failed multi consumes one zxid: the next write is m0.czxid + 2.
        let (probe, _) = c.create("/probe", b"", &PERSISTENT).await.unwrap();
        assert_eq!(
            probe.czxid,
            m0.czxid + 2,
            "a failed multi consumes one zxid"
        );
        assert_eq!(
            c.check_stat("/m/1").await.unwrap(),
            None,
            "create before the failure rolled back"
        );
        assert_eq!(c.check_stat("/m/2").await.unwrap(), None);
        let (data, m_stat) = c.get_data("/m").await.unwrap();
        assert_eq!(data, b"orig");
        assert_eq!(
            (m_stat.version, m_stat.cversion, m_stat.mzxid),
            (0, 0, m0.mzxid)
        );

        // First op failing.
        let mut w = c.new_multi_writer();
        w.add_delete("/m/missing", None).unwrap();
        w.add_create("/m/3", b"", &PERSISTENT).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::NoNode
            }
        );
        assert_eq!(c.check_stat("/m/3").await.unwrap(), None);

        // Success: every op applied with one zxid; later ops see the effects of earlier ones.
        let mut w = c.new_multi_writer();
        w.add_create("/m/1", b"one", &PERSISTENT).unwrap();
        w.add_create("/m/2", b"two", &PERSISTENT).unwrap();
        w.add_set_data("/m", b"changed", Some(0)).unwrap();
        w.add_check_version("/m", 1).unwrap();
        w.add_create("/m/s-", b"", &PERSISTENT_SEQUENTIAL).unwrap();
        let results = w.commit().await.unwrap();
        use zk::MultiWriteResult as W;
        let [W::Create {
            path: p1,
            stat: s1,
        }, W::Create {
            path: p2,
            stat: s2,
        }, W::SetData { stat: s3 }, W::Check, W::Create { path: p5, .. }] = results.as_slice()
        else {
            panic!("unexpected multi results: {results:?}")
        };
        let zxid = s1.czxid;
        assert_eq!(
            zxid,
            probe.czxid + 2,
            "the failed multi after the probe consumed one zxid too"
        );
        assert_eq!((p1.as_str(), s1.data_length), ("/m/1", 3));
        assert_eq!(
            (p2.as_str(), s2.czxid),
            ("/m/2", zxid),
            "one zxid for the whole multi"
        );
        assert_eq!((s3.version, s3.mzxid, s3.num_children), (1, zxid, 2));
        assert_eq!(
            p5, "/m/s-0000000002",
            "sequence from the cversion inside the multi"
        );

        let (children, parent) = c.get_children("/m").await.unwrap();
        assert_eq!(sorted(children), strings(&["1", "2", "s-0000000002"]));
        assert_eq!(
            (parent.cversion, parent.pzxid, parent.version),
            (3, zxid, 1)
        );

        let mut w = c.new_multi_writer();
        w.add_delete("/m/1", Some(0)).unwrap();
        w.add_delete("/m/2", None).unwrap();
        assert_eq!(
            w.commit().await.unwrap(),
            vec![
                zk::MultiWriteResult::Delete,
                zk::MultiWriteResult::Delete
            ]
        );
        assert_eq!(
            c.list_children("/m").await.unwrap(),
            strings(&["s-0000000002"])
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_reports_errors_per_op() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let (r_stat, _) = c.create("/r", b"data", &PERSISTENT).await.unwrap();
        let (child, _) = c.create("/r/c1", b"", &PERSISTENT).await.unwrap();

        let mut r = c.new_multi_reader();
        r.add_get_data("/r").unwrap();
        r.add_get_children("/r").unwrap();
        r.add_get_data("/missing").unwrap();
        r.add_get_children("/missing").unwrap();
        let results = r.commit().await.unwrap();
        use zk::MultiReadResult as R;
        let [R::Data { data, stat }, R::Children { children }, R::Error { err: e1 }, R::Error { err: e2 }] =
            results.as_slice()
        else {
            panic!("unexpected multiRead results: {results:?}")
        };
        let mut expected_stat = r_stat;
        expected_stat.cversion = 1;
        expected_stat.num_children = 1;
        expected_stat.pzxid = child.czxid;
        assert_eq!((data.as_slice(), *stat), (&b"data"[..], expected_stat));
        assert_eq!(children, &strings(&["c1"]));
        assert_eq!((e1, e2), (&zk::Error::NoNode, &zk::Error::NoNode));
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_version_guards_writes() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.create("/k", b"v0", &PERSISTENT).await.unwrap();

        // Check ops alone in a multi. (A standalone check, op 13, is in raw.rs.)
        let mut w = c.new_multi_writer();
        w.add_check_version("/k", 0).unwrap();
        w.add_check_version("/k", -1).unwrap();
        assert_eq!(
            w.commit().await.unwrap(),
            vec![zk::MultiWriteResult::Check, zk::MultiWriteResult::Check]
        );
        let mut w = c.new_multi_writer();
        w.add_check_version("/k", 4).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::BadVersion
            }
        );

        // Check + write.
        let mut w = c.new_check_writer("/k", Some(0)).unwrap();
        w.add_set_data("/k", b"v1", None).unwrap();
        let ok = w.commit().await.unwrap();
        assert!(
            matches!(ok.as_slice(), [zk::MultiWriteResult::SetData { stat }] if stat.version == 1),
            "{ok:?}"
        );
        let mut w = c.new_check_writer("/k", Some(0)).unwrap();
        w.add_create("/k/child", b"", &PERSISTENT).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::CheckWriteError::CheckFailed {
                source: zk::Error::BadVersion
            }
        );
        let mut w = c.new_check_writer("/missing", None).unwrap();
        w.add_create("/k/child", b"", &PERSISTENT).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::CheckWriteError::CheckFailed {
                source: zk::Error::NoNode
            }
        );
        assert_eq!(c.check_stat("/k/child").await.unwrap(), None);
        let (data, stat) = c.get_data("/k").await.unwrap();
        assert_eq!((data.as_slice(), stat.version), (&b"v1"[..], 1));
        server.stop().await;
    })
    .await
}

// =============================================================================================
// 3. Watches
//
// The library hands each server notification to the watchers registered on its path and
// silently drops notifications no watcher of the session asked for; raw.rs checks with `wchc`
// that one-shot watches are consumed on the server.
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_on_change_and_delete() {
    bounded(async {
        let server = TestServer::start().await;
        let w = server.client().await;
        let writer = server.client().await;
        writer.create("/w", b"0", &PERSISTENT).await.unwrap();

        let (_, _, watcher) = w.get_and_watch_data("/w").await.unwrap();
        writer.set_data("/w", b"1", None).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeDataChanged, "/w"));

        // One-shot: this change is not reported (no watch is set).
        writer.set_data("/w", b"2", None).await.unwrap();

        // getData and exists watches on one path by one session both see the change.
        let (data, _, by_get) = w.get_and_watch_data("/w").await.unwrap();
        assert_eq!(data, b"2");
        let (stat, by_exists) = w.check_and_watch_stat("/w").await.unwrap();
        assert_eq!(stat.unwrap().version, 2);
        writer.set_data("/w", b"3", None).await.unwrap();
        assert_eq!(fired(by_get).await, event(NodeDataChanged, "/w"));
        assert_eq!(fired(by_exists).await, event(NodeDataChanged, "/w"));

        let (_, _, watcher) = w.get_and_watch_data("/w").await.unwrap();
        writer.delete("/w", None).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeDeleted, "/w"));
        writer.create("/w", b"", &PERSISTENT).await.unwrap();
        let (stat, watcher) = w.check_and_watch_stat("/w").await.unwrap();
        assert_eq!(stat.map(|s| s.version), Some(0));
        writer.set_data("/w", b"4", None).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeDataChanged, "/w"));
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_watch_on_missing_node_fires_created() {
    bounded(async {
        let server = TestServer::start().await;
        let w = server.client().await;
        let writer = server.client().await;

        let (stat, watcher) = w.check_and_watch_stat("/nx").await.unwrap();
        assert_eq!(stat, None);
        let (created, _) = writer.create("/nx", b"", &PERSISTENT).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeCreated, "/nx"));
        assert_eq!(w.check_stat("/nx").await.unwrap(), Some(created));
        // getData on a missing node fails and sets no watch (raw.rs checks the server side).
        assert_eq!(
            w.get_and_watch_data("/ny").await.unwrap_err(),
            zk::Error::NoNode
        );
        let (stat, watcher) = w.check_and_watch_stat("/nx").await.unwrap();
        assert_eq!(stat, Some(created));
        writer.delete("/nx", None).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeDeleted, "/nx"));
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_children_changed() {
    bounded(async {
        let server = TestServer::start().await;
        let w = server.client().await;
        let writer = server.client().await;
        writer.create("/cw", b"", &PERSISTENT).await.unwrap();

        let (children, watcher) = w.list_and_watch_children("/cw").await.unwrap();
        assert!(children.is_empty());
        writer.create("/cw/a", b"", &PERSISTENT).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeChildrenChanged, "/cw"));

        let (children, stat, watcher) = w.get_and_watch_children("/cw").await.unwrap();
        assert_eq!((children, stat.num_children), (strings(&["a"]), 1));
        writer.delete("/cw/a", None).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeChildrenChanged, "/cw"));

        // A data change does not fire a child watch; deleting the node fires both.
        let (_, child_watcher) = w.list_and_watch_children("/cw").await.unwrap();
        let (_, _, data_watcher) = w.get_and_watch_data("/cw").await.unwrap();
        writer.set_data("/cw", b"data", None).await.unwrap();
        assert_eq!(fired(data_watcher).await, event(NodeDataChanged, "/cw"));
        let (_, _, data_watcher) = w.get_and_watch_data("/cw").await.unwrap();
        writer.delete("/cw", None).await.unwrap();
        assert_eq!(fired(data_watcher).await, event(NodeDeleted, "/cw"));
        assert_eq!(
            fired(child_watcher).await,
            event(NodeDeleted, "/cw"),
            "the child watch set before the data change fires only now"
        );
        let (stat, watcher) = w.check_and_watch_stat("/cw").await.unwrap();
        assert_eq!(stat, None);
        writer.create("/cw", b"", &PERSISTENT).await.unwrap();
        assert_eq!(fired(watcher).await, event(NodeCreated, "/cw"));
        assert_eq!(
            w.list_children("/nope").await.unwrap_err(),
            zk::Error::NoNode
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_fires_repeatedly() {
    bounded(async {
        let server = TestServer::start().await;
        let w = server.client().await;
        let c = server.client().await;

        let mut watcher = w.watch("/pw", AddWatchMode::Persistent).await.unwrap();
        c.create("/pw", b"", &PERSISTENT).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeCreated, "/pw"));
        c.set_data("/pw", b"1", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDataChanged, "/pw"));
        c.set_data("/pw", b"2", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDataChanged, "/pw"));
        c.create("/pw/c", b"", &PERSISTENT).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeChildrenChanged, "/pw"));
        // Not recursive: a child's own changes are not reported.
        c.set_data("/pw/c", b"x", None).await.unwrap();
        c.create("/pw/c/g", b"", &PERSISTENT).await.unwrap();
        c.delete("/pw/c/g", None).await.unwrap();
        c.delete("/pw/c", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeChildrenChanged, "/pw"));
        c.delete("/pw", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDeleted, "/pw"));
        // Still armed after the node is gone.
        c.create("/pw", b"", &PERSISTENT).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeCreated, "/pw"));
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_recursive_watch_covers_descendants() {
    bounded(async {
        let server = TestServer::start().await;
        let w = server.client().await;
        let c = server.client().await;

        let mut watcher = w
            .watch("/rw", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        c.create("/rw", b"", &PERSISTENT).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeCreated, "/rw"));
        c.create("/rw/a", b"", &PERSISTENT).await.unwrap();
        assert_eq!(
            next(&mut watcher).await,
            event(NodeCreated, "/rw/a"),
            "no NodeChildrenChanged"
        );
        c.create("/rw/a/b", b"", &PERSISTENT).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeCreated, "/rw/a/b"));
        c.set_data("/rw/a/b", b"x", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDataChanged, "/rw/a/b"));
        c.delete("/rw/a/b", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDeleted, "/rw/a/b"));
        // Outside the subtree (including a sibling sharing the name prefix): nothing.
        c.create("/rwx", b"", &PERSISTENT).await.unwrap();
        c.create("/other", b"", &PERSISTENT).await.unwrap();
        c.set_data("/rw", b"y", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDataChanged, "/rw"));
        c.delete("/rw/a", None).await.unwrap();
        assert_eq!(next(&mut watcher).await, event(NodeDeleted, "/rw/a"));
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_event_arrives_before_new_data_is_visible() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let other = server.client().await;
        c.create("/o", b"old", &PERSISTENT).await.unwrap();

        // Same session: the notification precedes the setData reply. (The library handles
        // frames in arrival order, so a watcher fired by an earlier frame is ready when the
        // reply's future completes.)
        let (_, _, watcher) = c.get_and_watch_data("/o").await.unwrap();
        c.set_data("/o", b"mine", None).await.unwrap();
        assert_eq!(
            fired_already(watcher).await,
            Some(event(NodeDataChanged, "/o")),
            "event must precede the setData reply"
        );

        // Another session writes; once a read shows the new data, the event has arrived.
        let (_, _, watcher) = c.get_and_watch_data("/o").await.unwrap();
        other.set_data("/o", b"theirs", None).await.unwrap();
        assert_eq!(c.get_data("/o").await.unwrap().0, b"theirs");
        assert_eq!(
            fired_already(watcher).await,
            Some(event(NodeDataChanged, "/o")),
            "event must precede a read showing the change"
        );

        // Same for a create seen through getChildren after a child watch.
        let (_, watcher) = c.list_and_watch_children("/o").await.unwrap();
        other.create("/o/k", b"", &PERSISTENT).await.unwrap();
        assert_eq!(c.list_children("/o").await.unwrap(), strings(&["k"]));
        assert_eq!(
            fired_already(watcher).await,
            Some(event(NodeChildrenChanged, "/o"))
        );
        server.stop().await;
    })
    .await
}

// =============================================================================================
// 4. ACLs
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_acl_requires_auth() {
    bounded(async {
        let server = TestServer::start().await;
        let alice = server.client().await;
        alice.auth("digest", b"alice:secret").await.unwrap();

        let creator_all = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        alice
            .create("/secret", b"s3cr3t", &creator_all)
            .await
            .unwrap();
        let (got, _) = alice.get_acl("/secret").await.unwrap();
        assert_eq!(
            got,
            vec![acl(Permission::ALL, "digest", ALICE_DIGEST_ID)],
            "auth: expands to the digest id only"
        );
        assert_eq!(alice.get_data("/secret").await.unwrap().0, b"s3cr3t");

        let stranger = server.client().await;
        let open = vec![anyone(Permission::ALL)];
        assert_eq!(
            stranger.get_data("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger.set_data("/secret", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger.list_children("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger
                .create("/secret/c", b"", &PERSISTENT)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger.get_acl("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger.set_acl("/secret", &open, None).await.unwrap_err(),
            zk::Error::NoAuth
        );

        // A wrong password is accepted as authentication but yields a different id.
        let impostor = server.client().await;
        impostor.auth("digest", b"alice:wrong").await.unwrap();
        assert_eq!(
            impostor.get_data("/secret").await.unwrap_err(),
            zk::Error::NoAuth
        );

        stranger.auth("digest", b"alice:secret").await.unwrap();
        assert_eq!(stranger.get_data("/secret").await.unwrap().0, b"s3cr3t");
        assert_eq!(
            stranger
                .set_data("/secret", b"new", Some(0))
                .await
                .unwrap()
                .version,
            1
        );

        // Readable by anyone, ALL for alice: without ADMIN, getACL masks digest ids as "user:x".
        let mixed = vec![
            anyone(Permission::READ),
            acl(Permission::ALL, "digest", ALICE_DIGEST_ID),
        ];
        alice
            .create(
                "/mixed",
                b"m",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&mixed)),
            )
            .await
            .unwrap();
        let nobody = server.client().await;
        assert_eq!(nobody.get_data("/mixed").await.unwrap().0, b"m");
        assert_eq!(
            nobody.set_data("/mixed", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            nobody.get_acl("/mixed").await.unwrap().0,
            vec![
                anyone(Permission::READ),
                acl(Permission::ALL, "digest", "alice:x")
            ]
        );
        assert_eq!(alice.get_acl("/mixed").await.unwrap().0, mixed);
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_read_only_node_refuses_writes() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let read_only = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
        c.create("/ro", b"r", &read_only).await.unwrap();

        assert_eq!(c.get_data("/ro").await.unwrap().0, b"r");
        assert_eq!(
            c.set_data("/ro", b"w", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.create("/ro/child", b"", &PERSISTENT).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            c.set_acl("/ro", &[anyone(Permission::ALL)], None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(c.get_data("/ro").await.unwrap().1.version, 0);
        // Deleting needs DELETE on the parent ("/" is open), not on the node.
        c.delete("/ro", None).await.unwrap();

        // CREATE without DELETE on a parent: children can be made but not removed.
        let create_only = [anyone(Permission::READ | Permission::CREATE)];
        c.create(
            "/cr",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&create_only)),
        )
        .await
        .unwrap();
        c.create("/cr/kid", b"", &PERSISTENT).await.unwrap();
        assert_eq!(
            c.delete("/cr/kid", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acls_are_rejected() {
    bounded(async {
        let server = TestServer::start().await;
        let c = server.client().await;

        // (An empty list is refused by the library itself; raw.rs sends one.)
        let creator_all = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        assert_eq!(
            c.create("/bad", b"", &creator_all).await.unwrap_err(),
            zk::Error::InvalidAcl,
            "auth scheme without an authenticated id"
        );
        for (scheme, id) in [
            ("world", "somebody"),
            ("nosuch", "x"),
            ("digest", "no-colon"),
            ("ip", "not-an-ip"),
        ] {
            let list = [acl(Permission::ALL, scheme, id)];
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&list));
            assert_eq!(
                c.create("/bad", b"", &options).await.unwrap_err(),
                zk::Error::InvalidAcl,
                "{scheme}:{id}"
            );
        }
        assert_eq!(c.check_stat("/bad").await.unwrap(), None);

        // Valid non-world ids are accepted as given.
        let ok = vec![
            acl(Permission::READ, "ip", "10.0.0.0/8"),
            anyone(Permission::ALL),
        ];
        c.create(
            "/ok",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&ok)),
        )
        .await
        .unwrap();
        assert_eq!(c.get_acl("/ok").await.unwrap().0, ok);
        assert_eq!(
            c.set_acl("/ok", &[], None).await.unwrap_err(),
            zk::Error::InvalidAcl
        );
        assert_eq!(
            c.set_acl("/ok", &zk::Acls::creator_all(), None)
                .await
                .unwrap_err(),
            zk::Error::InvalidAcl
        );
        assert_eq!(c.get_acl("/ok").await.unwrap().1.aversion, 0);
        server.stop().await;
    })
    .await
}

// =============================================================================================
// 5. Sessions
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeout_is_negotiated_within_bounds() {
    bounded(async {
        let server = TestServer::start().await;
        for (asked, granted) in [(100, 400), (800, 800), (60_000, 20_000)] {
            let c = server
                .connect(zk::Client::connector().with_session_timeout(Duration::from_millis(asked)))
                .await;
            assert_eq!(
                c.session_timeout(),
                Duration::from_millis(granted),
                "asked for {asked} ms, the server allows 400..=20000"
            );
        }
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_removes_ephemerals() {
    bounded(async {
        let server = TestServer::start().await;
        let short = || zk::Client::connector().with_session_timeout(Duration::from_millis(800));
        let observer = server.client().await;
        // A session with the same short timeout that keeps pinging must survive.
        let keeper = server.connect(short()).await;
        keeper.create("/kept", b"", &EPHEMERAL).await.unwrap();

        // A detached client leaves its session open when dropped: it closes the connection
        // without closeSession and stops pinging, so the server must expire the session.
        let doomed = server.connect(short().with_detached()).await;
        assert_eq!(doomed.session_timeout(), Duration::from_millis(800));
        let (stat, _) = doomed.create("/exp", b"", &EPHEMERAL).await.unwrap();
        assert_eq!(stat.ephemeral_owner, doomed.session_id().0);
        let (_, _, watcher) = observer.get_and_watch_data("/exp").await.unwrap();

        let mut state = doomed.state_watcher();
        let session = doomed.into_session();
        assert_eq!(next_state(&mut state).await, SessionState::Closed);
        let dropped = Instant::now();
        assert_eq!(fired(watcher).await, event(NodeDeleted, "/exp"));
        let elapsed = dropped.elapsed();
        assert!(
            elapsed >= Duration::from_millis(500),
            "expired {elapsed:?} after disconnect (timeout 800 ms)"
        );
        assert!(
            elapsed <= Duration::from_millis(2500),
            "expired only {elapsed:?} after disconnect (timeout 800 ms)"
        );
        assert_eq!(observer.check_stat("/exp").await.unwrap(), None);
        assert!(
            observer.check_stat("/kept").await.unwrap().is_some(),
            "a pinging session must not expire"
        );

        // Re-attaching the expired session is refused (raw.rs checks the reply bytes).
        assert_eq!(
            server
                .try_connect(zk::Client::connector().with_session(session))
                .await
                .unwrap_err(),
            zk::Error::SessionExpired
        );
        assert_eq!(
            keeper.list_ephemerals("/").await.unwrap(),
            strings(&["/kept"])
        );
        server.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reattach_keeps_ephemerals() {
    bounded(async {
        let server = TestServer::start().await;
        let first = server
            .connect(zk::Client::connector().with_detached())
            .await;
        let sid = first.session_id();
        first.create("/re", b"", &EPHEMERAL).await.unwrap();
        // Connection lost, session alive.
        let mut state = first.state_watcher();
        let session = first.into_session();
        assert_eq!(next_state(&mut state).await, SessionState::Closed);

        let second = server
            .connect(zk::Client::connector().with_session(session.clone()))
            .await;
        assert_eq!(second.session_id(), sid, "re-attached to the same session");
        let (_, stat) = second.get_data("/re").await.unwrap();
        assert_eq!(stat.ephemeral_owner, sid.0);
        assert_eq!(
            second.list_ephemerals("/").await.unwrap(),
            strings(&["/re"])
        );
        let (stat2, _) = second.create("/re2", b"", &EPHEMERAL).await.unwrap();
        assert_eq!(stat2.ephemeral_owner, sid.0);

        // Closing the re-attached session (dropping an attached client sends closeSession)
        // removes all of its ephemerals, and it cannot be resumed.
        let observer = server.client().await;
        let (_, _, watcher) = observer.get_and_watch_data("/re").await.unwrap();
        let mut state = second.state_watcher();
        drop(second);
        assert_eq!(next_state(&mut state).await, SessionState::Closed);
        assert_eq!(fired(watcher).await, event(NodeDeleted, "/re"));
        assert_eq!(observer.check_stat("/re2").await.unwrap(), None);
        assert_eq!(
            server
                .try_connect(zk::Client::connector().with_session(session))
                .await
                .unwrap_err(),
            zk::Error::SessionExpired,
            "closed session refused"
        );
        server.stop().await;
    })
    .await
}
