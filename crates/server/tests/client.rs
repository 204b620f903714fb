//! End-to-end tests of the client protocol against an in-process zooid server, through the small
//! wire-level client in `common` (see there why not `zookeeper-client`) and raw sockets.
//! Expected values follow ZooKeeper 3.8 semantics (see /work/shared/reference/client-protocol.md).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::flags::{
    CONTAINER, EPHEMERAL, EPHEMERAL_SEQUENTIAL, PERSISTENT, PERSISTENT_SEQUENTIAL,
};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `alice:` + base64(sha1("alice:secret")), computed independently of the server.
const ALICE_DIGEST_ID: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// =============================================================================================
// 1. Node types
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_node_create_and_read() {
    let server = TestServer::start().await;
    let c = server.client().await;

    let (path, stat) = c.create("/p", b"hello", PERSISTENT).await.unwrap();
    assert_eq!(path, "/p");
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

    let (data, read_stat) = c.get_data("/p", false).await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(read_stat, stat, "getData returns the stat create2 returned");
    assert_eq!(c.exists("/p", false).await.unwrap(), Some(stat));

    // Plain create (op 1) answers with the path only.
    assert_eq!(c.create1("/p1", b"", PERSISTENT).await.unwrap(), "/p1");

    assert_eq!(
        sorted(c.children("/", false).await.unwrap()),
        strings(&["p", "p1", "zookeeper"])
    );
    assert_eq!(
        c.create("/p", b"", PERSISTENT).await.unwrap_err(),
        err::NODE_EXISTS
    );
    assert_eq!(
        c.create("/missing/child", b"", PERSISTENT)
            .await
            .unwrap_err(),
        err::NO_NODE
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_node_lifecycle() {
    let server = TestServer::start().await;
    let owner = server.client().await;
    let observer = server.client().await;
    let owner_id = owner.session_id;
    assert_ne!(owner_id, 0);
    assert_ne!(owner_id, observer.session_id);

    let (_, stat) = owner.create("/e", b"x", EPHEMERAL).await.unwrap();
    assert_eq!(
        stat.ephemeral_owner, owner_id,
        "ephemeralOwner is the creating session"
    );
    assert_eq!(stat.czxid, stat.pzxid);

    assert_eq!(
        owner.create("/e/child", b"", PERSISTENT).await.unwrap_err(),
        err::NO_CHILDREN_FOR_EPHEMERALS
    );
    assert_eq!(
        observer
            .create("/e/child", b"", EPHEMERAL)
            .await
            .unwrap_err(),
        err::NO_CHILDREN_FOR_EPHEMERALS
    );
    assert_eq!(
        observer
            .create("/e/seq-", b"", PERSISTENT_SEQUENTIAL)
            .await
            .unwrap_err(),
        err::NO_CHILDREN_FOR_EPHEMERALS
    );

    let (_, seen_stat) = observer.get_data("/e", true).await.unwrap();
    assert_eq!(seen_stat.ephemeral_owner, owner_id);

    // Closing the owner's session removes its ephemerals.
    owner.close().await;
    assert_eq!(observer.next_event().await, Some(event(ev::DELETED, "/e")));
    assert_eq!(observer.exists("/e", false).await.unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_nodes_are_named_from_parent_cversion() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.create("/s", b"", PERSISTENT).await.unwrap();

    let (p0, st0) = c
        .create("/s/n-", b"a", PERSISTENT_SEQUENTIAL)
        .await
        .unwrap();
    assert_eq!(p0, "/s/n-0000000000");
    let (_, got0) = c.get_data("/s/n-0000000000", false).await.unwrap();
    assert_eq!((got0.czxid, got0.ephemeral_owner), (st0.czxid, 0));

    let (p1, st1) = c.create("/s/e-", b"", EPHEMERAL_SEQUENTIAL).await.unwrap();
    assert_eq!(p1, "/s/e-0000000001");
    assert_eq!(st1.ephemeral_owner, c.session_id);

    // The sequence number is the parent's internal create counter. A delete does not advance
    // it, but the cversion clients see is 2 * creates - numChildren (DataNode.copyStat), so it
    // does count deletes.
    c.create("/s/plain", b"", PERSISTENT).await.unwrap();
    let (_, mid) = c.children2("/s", false).await.unwrap();
    assert_eq!((mid.cversion, mid.num_children), (3, 3));
    c.delete("/s/plain", -1).await.unwrap();
    let (_, mid) = c.children2("/s", false).await.unwrap();
    assert_eq!(
        (mid.cversion, mid.num_children),
        (4, 2),
        "a delete shows as a cversion change"
    );
    let (p3, st3) = c.create("/s/n-", b"", PERSISTENT_SEQUENTIAL).await.unwrap();
    assert_eq!(
        p3, "/s/n-0000000003",
        "deletes do not consume sequence numbers"
    );
    // Plain create (op 1) of a sequential node returns the full name too.
    assert_eq!(
        c.create1("/s/", b"", PERSISTENT_SEQUENTIAL).await.unwrap(),
        "/s/0000000004"
    );

    let (children, parent) = c.children2("/s", false).await.unwrap();
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_deleted_after_its_last_child() {
    let server = TestServer::start().await;
    let c = server.client().await;

    let (_, stat) = c.create("/c", b"", CONTAINER).await.unwrap();
    assert_eq!(
        stat.ephemeral_owner, 0,
        "containers report ephemeralOwner 0"
    );
    // A container that never had a child stays (maxNeverUsedIntervalMs = 0).
    c.create("/never-used", b"", CONTAINER).await.unwrap();

    c.create("/c/a", b"", PERSISTENT).await.unwrap();
    c.create("/c/b", b"", PERSISTENT).await.unwrap();
    c.get_data("/c", true).await.unwrap();
    c.delete("/c/a", -1).await.unwrap();
    c.delete("/c/b", -1).await.unwrap();

    assert_eq!(c.next_event().await, Some(event(ev::DELETED, "/c")));
    assert_eq!(c.exists("/c", false).await.unwrap(), None);
    assert!(
        c.exists("/never-used", false).await.unwrap().is_some(),
        "never-used container must stay"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_node_is_deleted_after_ttl() {
    let server = TestServer::start().await;
    let c = server.client().await;
    use common::flags::{PERSISTENT_SEQUENTIAL_WITH_TTL as SEQ_TTL, PERSISTENT_WITH_TTL as TTL};

    // A TTL node with a child is not reaped.
    c.create_ttl("/t-parent", b"", TTL, 100).await.unwrap();
    c.create("/t-parent/child", b"", PERSISTENT).await.unwrap();

    let created = Instant::now();
    let (_, stat) = c.create_ttl("/t", b"d", TTL, 300).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report ephemeralOwner 0");
    assert_eq!((stat.data_length, stat.version), (1, 0));
    c.get_data("/t", true).await.unwrap();

    assert_eq!(c.next_event().await, Some(event(ev::DELETED, "/t")));
    let elapsed = created.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "deleted after {elapsed:?}, before its 300 ms TTL"
    );
    assert!(
        c.exists("/t-parent", false).await.unwrap().is_some(),
        "TTL node with a child must stay"
    );

    // Sequential TTL nodes are named as usual.
    let (p, _) = c
        .create_ttl("/t-parent/q-", b"", SEQ_TTL, 60_000)
        .await
        .unwrap();
    assert_eq!(p, "/t-parent/q-0000000001");

    // Invalid TTL requests.
    assert_eq!(
        c.create_ttl("/bad", b"", PERSISTENT, 1000)
            .await
            .unwrap_err(),
        err::BAD_ARGUMENTS
    );
    assert_eq!(
        c.create_ttl("/bad", b"", TTL, 0).await.unwrap_err(),
        err::BAD_ARGUMENTS
    );
    assert_eq!(
        c.create_ttl("/bad", b"", TTL, 0x100_0000_0000)
            .await
            .unwrap_err(),
        err::BAD_ARGUMENTS
    );
    assert_eq!(
        c.create("/bad", b"", TTL).await.unwrap_err(),
        err::BAD_ARGUMENTS,
        "TTL flag on create2"
    );
    assert_eq!(
        c.create("/bad", b"", 9).await.unwrap_err(),
        err::BAD_ARGUMENTS,
        "unknown flag"
    );
    assert_eq!(c.exists("/bad", false).await.unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_requires_extended_types() {
    let server = TestServer::start_with(|cfg| cfg.extended_types_enabled = false).await;
    let c = server.client().await;
    let ttl = common::flags::PERSISTENT_WITH_TTL;
    assert_eq!(
        c.create_ttl("/t", b"", ttl, 10_000).await.unwrap_err(),
        err::UNIMPLEMENTED
    );
    assert_eq!(c.exists("/t", false).await.unwrap(), None);
    server.stop().await;
}

// =============================================================================================
// 2. Requests
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_delete_versions_and_errors() {
    let server = TestServer::start().await;
    let c = server.client().await;

    let (_, created) = c.create("/a", b"v0", PERSISTENT).await.unwrap();
    let s1 = c.set_data("/a", b"v1-longer", 0).await.unwrap();
    assert_eq!(s1.version, 1);
    assert_eq!((s1.czxid, s1.ctime), (created.czxid, created.ctime));
    assert!(s1.mzxid > created.mzxid, "mzxid advances: {s1:?}");
    assert_eq!(s1.pzxid, created.pzxid, "setData does not touch pzxid");
    assert_eq!(s1.data_length, 9);
    assert!(s1.mtime >= created.mtime);

    assert_eq!(
        c.set_data("/a", b"x", 0).await.unwrap_err(),
        err::BAD_VERSION
    );
    let s2 = c.set_data("/a", b"v2", -1).await.unwrap();
    assert_eq!(s2.version, 2, "version -1 means any");
    assert_eq!(c.get_data("/a", false).await.unwrap().0, b"v2");
    assert_eq!(
        c.set_data("/nope", b"", -1).await.unwrap_err(),
        err::NO_NODE
    );

    let (_, child) = c.create("/a/b", b"", PERSISTENT).await.unwrap();
    let (children, parent) = c.children2("/a", false).await.unwrap();
    assert_eq!(children, strings(&["b"]));
    assert_eq!(
        (parent.num_children, parent.cversion, parent.version),
        (1, 1, 2)
    );
    assert_eq!(parent.pzxid, child.czxid);
    assert_eq!(c.children("/a", false).await.unwrap(), strings(&["b"]));
    assert_eq!(
        c.children("/a/b", false).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(c.children("/nope", false).await.unwrap_err(), err::NO_NODE);
    assert_eq!(c.children2("/nope", false).await.unwrap_err(), err::NO_NODE);

    assert_eq!(c.delete("/a", -1).await.unwrap_err(), err::NOT_EMPTY);
    assert_eq!(c.delete("/a/b", 3).await.unwrap_err(), err::BAD_VERSION);
    assert_eq!(c.delete("/nope", -1).await.unwrap_err(), err::NO_NODE);
    c.delete("/a/b", 0).await.unwrap();
    let (_, after) = c.children2("/a", false).await.unwrap();
    assert_eq!((after.num_children, after.cversion), (0, 2));
    assert!(after.pzxid > child.czxid, "delete advances pzxid");
    c.delete("/a", 2).await.unwrap();

    assert_eq!(
        c.exists("/a", false).await.unwrap(),
        None,
        "exists on a missing node"
    );
    assert_eq!(c.get_data("/a", false).await.unwrap_err(), err::NO_NODE);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_nodes() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for path in ["/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            c.delete(path, -1).await.unwrap_err(),
            err::BAD_ARGUMENTS,
            "delete {path}"
        );
    }
    let (data, _) = c.get_data("/zookeeper/config", false).await.unwrap();
    assert!(
        data.is_empty(),
        "standalone /zookeeper/config is empty, got {:?}",
        String::from_utf8_lossy(&data)
    );
    let (root_data, root) = c.get_data("/", false).await.unwrap();
    assert!(root_data.is_empty());
    assert_eq!((root.czxid, root.mzxid), (0, 0), "root czxid/mzxid are 0");
    assert_eq!(
        sorted(c.children("/zookeeper", false).await.unwrap()),
        strings(&["config", "quota"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_descendants_number() {
    let server = TestServer::start().await;
    let c = server.client().await;

    // Fresh tree: /zookeeper, /zookeeper/quota, /zookeeper/config below "/".
    assert_eq!(c.all_children_number("/").await.unwrap(), 3);
    assert_eq!(c.all_children_number("/zookeeper").await.unwrap(), 2);
    assert_eq!(c.all_children_number("/zookeeper/quota").await.unwrap(), 0);

    c.create("/d", b"", PERSISTENT).await.unwrap();
    c.create("/d/1", b"", PERSISTENT).await.unwrap();
    c.create("/d/1/2", b"", PERSISTENT).await.unwrap();
    c.create("/d/3", b"", EPHEMERAL).await.unwrap();
    assert_eq!(
        c.all_children_number("/d").await.unwrap(),
        3,
        "all descendants, not the node itself"
    );
    assert_eq!(c.all_children_number("/d/1").await.unwrap(), 1);
    assert_eq!(c.all_children_number("/d/1/2").await.unwrap(), 0);
    assert_eq!(c.all_children_number("/").await.unwrap(), 7);
    assert_eq!(
        c.all_children_number("/nope").await.unwrap_err(),
        err::NO_NODE
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ephemerals_of_own_session() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let other = server.client().await;

    c.create("/d", b"", PERSISTENT).await.unwrap();
    c.create("/d/1", b"", PERSISTENT).await.unwrap();
    c.create("/d/e1", b"", EPHEMERAL).await.unwrap();
    c.create("/d/1/e2", b"", EPHEMERAL).await.unwrap();
    c.create("/dx", b"", EPHEMERAL).await.unwrap();
    other.create("/d/theirs", b"", EPHEMERAL).await.unwrap();

    assert_eq!(
        sorted(c.get_ephemerals("/").await.unwrap()),
        strings(&["/d/1/e2", "/d/e1", "/dx"])
    );
    assert_eq!(
        sorted(c.get_ephemerals("").await.unwrap()),
        strings(&["/d/1/e2", "/d/e1", "/dx"])
    );
    // ZooKeeper filters with a plain string prefix, so "/d" also matches "/dx".
    assert_eq!(
        sorted(c.get_ephemerals("/d").await.unwrap()),
        strings(&["/d/1/e2", "/d/e1", "/dx"])
    );
    assert_eq!(
        sorted(c.get_ephemerals("/d/").await.unwrap()),
        strings(&["/d/1/e2", "/d/e1"])
    );
    assert_eq!(
        c.get_ephemerals("/d/1").await.unwrap(),
        strings(&["/d/1/e2"])
    );
    assert_eq!(
        c.get_ephemerals("/nope").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        other.get_ephemerals("/").await.unwrap(),
        strings(&["/d/theirs"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_node_acls() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // Built-in nodes: "/", /zookeeper and /zookeeper/quota are OPEN_ACL_UNSAFE, config is READ.
    let mut got = Vec::new();
    for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        got.push((path, c.get_acl(path).await.unwrap().0));
    }
    let all = vec![Acl::anyone(perms::ALL)];
    let read = vec![Acl::anyone(perms::READ)];
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
        c.set_data("/zookeeper/config", b"x", -1).await.unwrap_err(),
        err::NO_AUTH
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_acl_and_set_acl_with_version() {
    let server = TestServer::start().await;
    let c = server.client().await;

    let (_, created) = c.create("/acl", b"", PERSISTENT).await.unwrap();
    let read_only = vec![Acl::anyone(perms::READ)];
    assert_eq!(
        c.set_acl("/acl", &read_only, 1).await.unwrap_err(),
        err::BAD_VERSION
    );
    let stat = c.set_acl("/acl", &read_only, 0).await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(stat.version, 0, "setACL does not touch the data version");
    assert_eq!(stat.mzxid, created.mzxid, "setACL does not touch mzxid");
    let (acl, stat2) = c.get_acl("/acl").await.unwrap();
    assert_eq!(acl, read_only);
    assert_eq!(stat2.aversion, 1);
    assert_eq!(
        c.set_data("/acl", b"x", -1).await.unwrap_err(),
        err::NO_AUTH
    );
    // No ADMIN any more either.
    assert_eq!(
        c.set_acl("/acl", &open_acl(), -1).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(c.get_acl("/nope").await.unwrap_err(), err::NO_NODE);
    assert_eq!(
        c.set_acl("/nope", &open_acl(), -1).await.unwrap_err(),
        err::NO_NODE
    );

    // Duplicate entries are removed.
    c.create("/dup", b"", PERSISTENT).await.unwrap();
    let dup = vec![Acl::anyone(perms::ALL), Acl::anyone(perms::ALL)];
    c.set_acl("/dup", &dup, -1).await.unwrap();
    assert_eq!(c.get_acl("/dup").await.unwrap().0, open_acl());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_who_am_i() {
    let server = TestServer::start().await;
    let c = server.client().await;

    c.create("/x", b"", PERSISTENT).await.unwrap();
    assert_eq!(c.sync("/x").await.unwrap(), "/x", "sync echoes the path");
    assert_eq!(c.sync("/").await.unwrap(), "/");

    let ip = ("ip".to_string(), "127.0.0.1".to_string());
    assert_eq!(c.who_am_i().await.unwrap(), vec![ip.clone()]);
    c.auth("digest", b"alice:secret").await.unwrap();
    let mut users = c.who_am_i().await.unwrap();
    users.sort();
    assert_eq!(users, vec![("digest".to_string(), "alice".to_string()), ip]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_unknown_scheme_fails_and_closes() {
    let server = TestServer::start().await;
    let c = server.client().await;
    assert_eq!(
        c.auth("nosuch", b"whatever").await.unwrap_err(),
        err::AUTH_FAILED
    );
    let closed = tokio::time::timeout(Duration::from_secs(3), c.wait_closed()).await;
    assert!(
        closed.is_ok(),
        "server must close the connection after replying AUTHFAILED"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (_, m0) = c.create("/m", b"orig", PERSISTENT).await.unwrap();

    // A failing op in the middle: nothing is applied; earlier ops report 0, the failing one its
    // code, later ones RUNTIMEINCONSISTENCY.
    let zxid_before = c.last_zxid();
    let results = c
        .multi(&[
            Op::Create {
                path: "/m/1",
                data: b"one",
                flags: PERSISTENT,
            },
            Op::SetData {
                path: "/m",
                data: b"changed",
                version: 5,
            },
            Op::Create {
                path: "/m/2",
                data: b"two",
                flags: PERSISTENT,
            },
        ])
        .await
        .expect("a failed multi still has header err 0");
    assert_eq!(
        results,
        vec![
            OpResult::Error(err::OK),
            OpResult::Error(err::BAD_VERSION),
            OpResult::Error(err::RUNTIME_INCONSISTENCY)
        ]
    );
    assert_eq!(
        c.last_zxid(),
        zxid_before + 1,
        "a failed multi consumes one zxid"
    );
    assert_eq!(
        c.exists("/m/1", false).await.unwrap(),
        None,
        "create before the failure rolled back"
    );
    assert_eq!(c.exists("/m/2", false).await.unwrap(), None);
    let (data, m_stat) = c.get_data("/m", false).await.unwrap();
    assert_eq!(data, b"orig");
    assert_eq!(
        (m_stat.version, m_stat.cversion, m_stat.mzxid),
        (0, 0, m0.mzxid)
    );

    // First op failing.
    let results = c
        .multi(&[
            Op::Delete {
                path: "/m/missing",
                version: -1,
            },
            Op::Create {
                path: "/m/3",
                data: b"",
                flags: PERSISTENT,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            OpResult::Error(err::NO_NODE),
            OpResult::Error(err::RUNTIME_INCONSISTENCY)
        ]
    );
    assert_eq!(c.exists("/m/3", false).await.unwrap(), None);

    // Success: every op applied with one zxid; later ops see the effects of earlier ones.
    let results = c
        .multi(&[
            Op::Create {
                path: "/m/1",
                data: b"one",
                flags: PERSISTENT,
            },
            Op::Create {
                path: "/m/2",
                data: b"two",
                flags: PERSISTENT,
            },
            Op::SetData {
                path: "/m",
                data: b"changed",
                version: 0,
            },
            Op::Check {
                path: "/m",
                version: 1,
            },
            Op::Create {
                path: "/m/s-",
                data: b"",
                flags: PERSISTENT_SEQUENTIAL,
            },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 5, "{results:?}");
    let zxid = c.last_zxid();
    let OpResult::Create {
        path,
        stat: Some(s1),
    } = &results[0]
    else {
        panic!("expected create2 result: {results:?}")
    };
    assert_eq!((path.as_str(), s1.czxid, s1.data_length), ("/m/1", zxid, 3));
    let OpResult::Create {
        path,
        stat: Some(s2),
    } = &results[1]
    else {
        panic!("expected create2 result: {results:?}")
    };
    assert_eq!(
        (path.as_str(), s2.czxid),
        ("/m/2", zxid),
        "one zxid for the whole multi"
    );
    let OpResult::SetData(s3) = &results[2] else {
        panic!("expected setData result: {results:?}")
    };
    assert_eq!((s3.version, s3.mzxid, s3.num_children), (1, zxid, 2));
    assert_eq!(results[3], OpResult::Check);
    let OpResult::Create { path, .. } = &results[4] else {
        panic!("expected create result: {results:?}")
    };
    assert_eq!(
        path, "/m/s-0000000002",
        "sequence from the cversion inside the multi"
    );

    let (children, parent) = c.children2("/m", false).await.unwrap();
    assert_eq!(sorted(children), strings(&["1", "2", "s-0000000002"]));
    assert_eq!(
        (parent.cversion, parent.pzxid, parent.version),
        (3, zxid, 1)
    );

    let results = c
        .multi(&[
            Op::Delete {
                path: "/m/1",
                version: 0,
            },
            Op::Delete {
                path: "/m/2",
                version: -1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(results, vec![OpResult::Delete, OpResult::Delete]);
    assert_eq!(
        c.children("/m", false).await.unwrap(),
        strings(&["s-0000000002"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_reports_errors_per_op() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let (_, r_stat) = c.create("/r", b"data", PERSISTENT).await.unwrap();
    let (_, child) = c.create("/r/c1", b"", PERSISTENT).await.unwrap();

    let results = c
        .multi_read(&[
            ReadOp::GetData("/r"),
            ReadOp::GetChildren("/r"),
            ReadOp::GetData("/missing"),
            ReadOp::GetChildren("/missing"),
        ])
        .await
        .unwrap();
    let mut expected_stat = r_stat;
    expected_stat.cversion = 1;
    expected_stat.num_children = 1;
    expected_stat.pzxid = child.czxid;
    assert_eq!(
        results,
        vec![
            ReadResult::Data(b"data".to_vec(), expected_stat),
            ReadResult::Children(strings(&["c1"])),
            ReadResult::Error(err::NO_NODE),
            ReadResult::Error(err::NO_NODE),
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_version_guards_writes() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.create("/k", b"v0", PERSISTENT).await.unwrap();

    // Standalone check (op 13).
    c.check("/k", 0).await.unwrap();
    c.check("/k", -1).await.unwrap();
    assert_eq!(c.check("/k", 4).await.unwrap_err(), err::BAD_VERSION);
    assert_eq!(c.check("/missing", -1).await.unwrap_err(), err::NO_NODE);

    // Check + write in a multi (what the library calls a check writer).
    let ok = c
        .multi(&[
            Op::Check {
                path: "/k",
                version: 0,
            },
            Op::SetData {
                path: "/k",
                data: b"v1",
                version: -1,
            },
        ])
        .await
        .unwrap();
    assert!(
        matches!(ok.as_slice(), [OpResult::Check, OpResult::SetData(s)] if s.version == 1),
        "{ok:?}"
    );
    let failed = c
        .multi(&[
            Op::Check {
                path: "/k",
                version: 0,
            },
            Op::Create {
                path: "/k/child",
                data: b"",
                flags: PERSISTENT,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        failed,
        vec![
            OpResult::Error(err::BAD_VERSION),
            OpResult::Error(err::RUNTIME_INCONSISTENCY)
        ]
    );
    assert_eq!(c.exists("/k/child", false).await.unwrap(), None);
    let (data, stat) = c.get_data("/k", false).await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v1"[..], 1));
    server.stop().await;
}

// =============================================================================================
// 3. Watches
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_on_change_and_delete() {
    let server = TestServer::start().await;
    let w = server.client().await;
    let writer = server.client().await;
    writer.create("/w", b"0", PERSISTENT).await.unwrap();

    w.get_data("/w", true).await.unwrap();
    writer.set_data("/w", b"1", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/w")));

    // One-shot: this change is not reported (the next event is the delete below).
    writer.set_data("/w", b"2", -1).await.unwrap();

    // getData and exists watches on one path by one session give one event, not two.
    w.get_data("/w", true).await.unwrap();
    let stat = w.exists("/w", true).await.unwrap().unwrap();
    assert_eq!(stat.version, 2);
    writer.set_data("/w", b"3", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/w")));

    w.get_data("/w", true).await.unwrap();
    writer.delete("/w", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/w")));
    writer.create("/w", b"", PERSISTENT).await.unwrap();
    w.exists("/w", true).await.unwrap();
    writer.set_data("/w", b"4", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::DATA_CHANGED, "/w")),
        "no duplicate or stale events in between"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_watch_on_missing_node_fires_created() {
    let server = TestServer::start().await;
    let w = server.client().await;
    let writer = server.client().await;

    assert_eq!(w.exists("/nx", true).await.unwrap(), None);
    writer.create("/nx", b"", PERSISTENT).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::CREATED, "/nx")));
    // getData on a missing node leaves no watch behind.
    assert_eq!(w.get_data("/ny", true).await.unwrap_err(), err::NO_NODE);
    writer.create("/ny", b"", PERSISTENT).await.unwrap();
    w.exists("/nx", true).await.unwrap();
    writer.delete("/nx", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/nx")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_children_changed() {
    let server = TestServer::start().await;
    let w = server.client().await;
    let writer = server.client().await;
    writer.create("/cw", b"", PERSISTENT).await.unwrap();

    assert!(w.children("/cw", true).await.unwrap().is_empty());
    writer.create("/cw/a", b"", PERSISTENT).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CHILDREN_CHANGED, "/cw"))
    );

    let (children, stat) = w.children2("/cw", true).await.unwrap();
    assert_eq!((children, stat.num_children), (strings(&["a"]), 1));
    writer.delete("/cw/a", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CHILDREN_CHANGED, "/cw"))
    );

    // A data change does not fire a child watch; deleting the node fires one NodeDeleted even
    // with both a data and a child watch set.
    w.children("/cw", true).await.unwrap();
    w.get_data("/cw", true).await.unwrap();
    writer.set_data("/cw", b"data", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/cw")));
    writer.delete("/cw", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/cw")));
    w.exists("/cw", true).await.unwrap();
    writer.create("/cw", b"", PERSISTENT).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CREATED, "/cw")),
        "only one NodeDeleted"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_fires_repeatedly() {
    let server = TestServer::start().await;
    let w = server.client().await;
    let c = server.client().await;

    w.add_watch("/pw", 0).await.unwrap();
    c.create("/pw", b"", PERSISTENT).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::CREATED, "/pw")));
    c.set_data("/pw", b"1", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/pw")));
    c.set_data("/pw", b"2", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/pw")));
    c.create("/pw/c", b"", PERSISTENT).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CHILDREN_CHANGED, "/pw"))
    );
    // Not recursive: a child's own changes are not reported.
    c.set_data("/pw/c", b"x", -1).await.unwrap();
    c.create("/pw/c/g", b"", PERSISTENT).await.unwrap();
    c.delete("/pw/c/g", -1).await.unwrap();
    c.delete("/pw/c", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CHILDREN_CHANGED, "/pw"))
    );
    c.delete("/pw", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/pw")));
    // Still armed after the node is gone.
    c.create("/pw", b"", PERSISTENT).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::CREATED, "/pw")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_recursive_watch_covers_descendants() {
    let server = TestServer::start().await;
    let w = server.client().await;
    let c = server.client().await;

    w.add_watch("/rw", 1).await.unwrap();
    c.create("/rw", b"", PERSISTENT).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::CREATED, "/rw")));
    c.create("/rw/a", b"", PERSISTENT).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::CREATED, "/rw/a")),
        "no NodeChildrenChanged"
    );
    c.create("/rw/a/b", b"", PERSISTENT).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::CREATED, "/rw/a/b")));
    c.set_data("/rw/a/b", b"x", -1).await.unwrap();
    assert_eq!(
        w.next_event().await,
        Some(event(ev::DATA_CHANGED, "/rw/a/b"))
    );
    c.delete("/rw/a/b", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/rw/a/b")));
    // Outside the subtree (including a sibling sharing the name prefix): nothing.
    c.create("/rwx", b"", PERSISTENT).await.unwrap();
    c.create("/other", b"", PERSISTENT).await.unwrap();
    c.set_data("/rw", b"y", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DATA_CHANGED, "/rw")));
    c.delete("/rw/a", -1).await.unwrap();
    assert_eq!(w.next_event().await, Some(event(ev::DELETED, "/rw/a")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_event_arrives_before_new_data_is_visible() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let other = server.client().await;
    c.create("/o", b"old", PERSISTENT).await.unwrap();

    // Same session: the notification precedes the setData reply.
    c.get_data("/o", true).await.unwrap();
    c.set_data("/o", b"mine", -1).await.unwrap();
    assert_eq!(
        c.try_event(),
        Some(event(ev::DATA_CHANGED, "/o")),
        "event must precede the setData reply"
    );

    // Another session writes; once a read shows the new data, the event has already arrived.
    c.get_data("/o", true).await.unwrap();
    other.set_data("/o", b"theirs", -1).await.unwrap();
    assert_eq!(c.get_data("/o", false).await.unwrap().0, b"theirs");
    assert_eq!(
        c.try_event(),
        Some(event(ev::DATA_CHANGED, "/o")),
        "event must precede a read showing the change"
    );

    // Same for a create seen through getChildren after a child watch.
    c.children("/o", true).await.unwrap();
    other.create("/o/k", b"", PERSISTENT).await.unwrap();
    assert_eq!(c.children("/o", false).await.unwrap(), strings(&["k"]));
    assert_eq!(c.try_event(), Some(event(ev::CHILDREN_CHANGED, "/o")));
    server.stop().await;
}

// =============================================================================================
// 4. ACLs
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_acl_requires_auth() {
    let server = TestServer::start().await;
    let alice = server.client().await;
    alice.auth("digest", b"alice:secret").await.unwrap();

    let creator_all = vec![Acl::new(perms::ALL, "auth", "")];
    alice
        .create_acl("/secret", b"s3cr3t", &creator_all, PERSISTENT)
        .await
        .unwrap();
    let (acl, _) = alice.get_acl("/secret").await.unwrap();
    assert_eq!(
        acl,
        vec![Acl::new(perms::ALL, "digest", ALICE_DIGEST_ID)],
        "auth: expands to the digest id only"
    );
    assert_eq!(alice.get_data("/secret", false).await.unwrap().0, b"s3cr3t");

    let stranger = server.client().await;
    assert_eq!(
        stranger.get_data("/secret", false).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(
        stranger.set_data("/secret", b"x", -1).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(
        stranger.children("/secret", false).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(
        stranger
            .create("/secret/c", b"", PERSISTENT)
            .await
            .unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(stranger.get_acl("/secret").await.unwrap_err(), err::NO_AUTH);
    assert_eq!(
        stranger
            .set_acl("/secret", &open_acl(), -1)
            .await
            .unwrap_err(),
        err::NO_AUTH
    );

    // A wrong password is accepted as authentication but yields a different id.
    let impostor = server.client().await;
    impostor.auth("digest", b"alice:wrong").await.unwrap();
    assert_eq!(
        impostor.get_data("/secret", false).await.unwrap_err(),
        err::NO_AUTH
    );

    stranger.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(
        stranger.get_data("/secret", false).await.unwrap().0,
        b"s3cr3t"
    );
    assert_eq!(
        stranger
            .set_data("/secret", b"new", 0)
            .await
            .unwrap()
            .version,
        1
    );

    // Readable by anyone, ALL for alice: without ADMIN, getACL masks digest ids as "user:x".
    let mixed = vec![
        Acl::anyone(perms::READ),
        Acl::new(perms::ALL, "digest", ALICE_DIGEST_ID),
    ];
    alice
        .create_acl("/mixed", b"m", &mixed, PERSISTENT)
        .await
        .unwrap();
    let nobody = server.client().await;
    assert_eq!(nobody.get_data("/mixed", false).await.unwrap().0, b"m");
    assert_eq!(
        nobody.set_data("/mixed", b"x", -1).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(
        nobody.get_acl("/mixed").await.unwrap().0,
        vec![
            Acl::anyone(perms::READ),
            Acl::new(perms::ALL, "digest", "alice:x")
        ]
    );
    assert_eq!(alice.get_acl("/mixed").await.unwrap().0, mixed);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_read_only_node_refuses_writes() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.create_acl("/ro", b"r", &[Acl::anyone(perms::READ)], PERSISTENT)
        .await
        .unwrap();

    assert_eq!(c.get_data("/ro", false).await.unwrap().0, b"r");
    assert_eq!(c.set_data("/ro", b"w", -1).await.unwrap_err(), err::NO_AUTH);
    assert_eq!(
        c.create("/ro/child", b"", PERSISTENT).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(
        c.set_acl("/ro", &open_acl(), -1).await.unwrap_err(),
        err::NO_AUTH
    );
    assert_eq!(c.get_data("/ro", false).await.unwrap().1.version, 0);
    // Deleting needs DELETE on the parent ("/" is open), not on the node.
    c.delete("/ro", -1).await.unwrap();

    // CREATE without DELETE on a parent: children can be made but not removed.
    c.create_acl(
        "/cr",
        b"",
        &[Acl::anyone(perms::READ | perms::CREATE)],
        PERSISTENT,
    )
    .await
    .unwrap();
    c.create("/cr/kid", b"", PERSISTENT).await.unwrap();
    assert_eq!(c.delete("/cr/kid", -1).await.unwrap_err(), err::NO_AUTH);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acls_are_rejected() {
    let server = TestServer::start().await;
    let c = server.client().await;

    assert_eq!(
        c.create_acl("/bad", b"", &[], PERSISTENT)
            .await
            .unwrap_err(),
        err::INVALID_ACL,
        "empty list"
    );
    let creator_all = [Acl::new(perms::ALL, "auth", "")];
    assert_eq!(
        c.create_acl("/bad", b"", &creator_all, PERSISTENT)
            .await
            .unwrap_err(),
        err::INVALID_ACL,
        "auth scheme without an authenticated id"
    );
    for (scheme, id) in [
        ("world", "somebody"),
        ("nosuch", "x"),
        ("digest", "no-colon"),
        ("ip", "not-an-ip"),
    ] {
        let acl = [Acl::new(perms::ALL, scheme, id)];
        assert_eq!(
            c.create_acl("/bad", b"", &acl, PERSISTENT)
                .await
                .unwrap_err(),
            err::INVALID_ACL,
            "{scheme}:{id}"
        );
    }
    assert_eq!(c.exists("/bad", false).await.unwrap(), None);

    // Valid non-world ids are accepted as given.
    let ok = [
        Acl::new(perms::READ, "ip", "10.0.0.0/8"),
        Acl::new(perms::ALL, "world", "anyone"),
    ];
    c.create_acl("/ok", b"", &ok, PERSISTENT).await.unwrap();
    assert_eq!(c.get_acl("/ok").await.unwrap().0, ok.to_vec());
    assert_eq!(
        c.set_acl("/ok", &[], -1).await.unwrap_err(),
        err::INVALID_ACL
    );
    assert_eq!(
        c.set_acl("/ok", &creator_all, -1).await.unwrap_err(),
        err::INVALID_ACL
    );
    assert_eq!(c.get_acl("/ok").await.unwrap().1.aversion, 0);
    server.stop().await;
}

// =============================================================================================
// 5. Sessions
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_removes_ephemerals() {
    let server = TestServer::start().await;
    let observer = server.client().await;
    // A session with the same short timeout that keeps pinging must survive.
    let keeper = Zk::connect_with(server.addr, 800, 0, &[0; 16])
        .await
        .unwrap();
    keeper.create("/kept", b"", EPHEMERAL).await.unwrap();

    let doomed = Zk::connect_with(server.addr, 800, 0, &[0; 16])
        .await
        .unwrap();
    assert_eq!(doomed.timeout_ms, 800);
    let (_, stat) = doomed.create("/exp", b"", EPHEMERAL).await.unwrap();
    assert_eq!(stat.ephemeral_owner, doomed.session_id);
    observer.get_data("/exp", true).await.unwrap();

    // Drop the connection without closeSession and stop pinging.
    let (sid, passwd) = (doomed.session_id, doomed.passwd.clone());
    drop(doomed);
    let dropped = Instant::now();
    assert_eq!(
        observer.next_event().await,
        Some(event(ev::DELETED, "/exp"))
    );
    let elapsed = dropped.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500),
        "expired {elapsed:?} after disconnect (timeout 800 ms)"
    );
    assert!(
        elapsed <= Duration::from_millis(2500),
        "expired only {elapsed:?} after disconnect (timeout 800 ms)"
    );
    assert!(
        observer.exists("/kept", false).await.unwrap().is_some(),
        "a pinging session must not expire"
    );

    // Re-attaching the expired session is refused: timeOut 0, sessionId 0, zero password.
    let refused = Zk::connect_with(server.addr, 800, sid, &passwd)
        .await
        .err()
        .expect("expired session refused");
    assert_eq!(
        (refused.timeout_ms, refused.session_id, refused.passwd),
        (0, 0, vec![0u8; 16])
    );
    assert_eq!(
        keeper.get_ephemerals("/").await.unwrap(),
        strings(&["/kept"])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reattach_keeps_ephemerals() {
    let server = TestServer::start().await;
    let first = server.client().await;
    let sid = first.session_id;
    first.create("/re", b"", EPHEMERAL).await.unwrap();
    let passwd = first.passwd.clone();
    drop(first); // connection lost, session alive

    let second = Zk::connect_with(server.addr, 10_000, sid, &passwd)
        .await
        .expect("re-attach within the timeout");
    assert_eq!(second.session_id, sid);
    assert_eq!(second.passwd, passwd);
    let (_, stat) = second.get_data("/re", false).await.unwrap();
    assert_eq!(stat.ephemeral_owner, sid);
    assert_eq!(second.get_ephemerals("/").await.unwrap(), strings(&["/re"]));
    let (_, stat2) = second.create("/re2", b"", EPHEMERAL).await.unwrap();
    assert_eq!(stat2.ephemeral_owner, sid);

    // Closing the re-attached session removes all of its ephemerals, and it cannot be resumed.
    let observer = server.client().await;
    observer.get_data("/re", true).await.unwrap();
    second.close().await;
    assert_eq!(observer.next_event().await, Some(event(ev::DELETED, "/re")));
    assert_eq!(observer.exists("/re2", false).await.unwrap(), None);
    let refused = Zk::connect_with(server.addr, 10_000, sid, &passwd)
        .await
        .err()
        .expect("closed session refused");
    assert_eq!((refused.timeout_ms, refused.session_id), (0, 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_handshake_negotiation_and_reattach() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Timeout clamped to [min, max] = [400, 20000]; the readOnly byte is echoed only when sent.
    let (_a, r) = raw_handshake(addr, 100, 0, &[0; 16], Some(false)).await;
    assert_eq!(
        (r.protocol_version, r.timeout_ms, r.body_len, r.read_only),
        (0, 400, 37, Some(0))
    );
    let (_b, r) = raw_handshake(addr, 60_000, 0, &[0; 16], None).await;
    assert_eq!(
        (r.timeout_ms, r.body_len, r.read_only),
        (20_000, 36, None),
        "44-byte request gets 36-byte reply"
    );
    let (mut s1, r1) = raw_handshake(addr, 1_000, 0, &[0; 16], Some(false)).await;
    assert_eq!(r1.timeout_ms, 1_000);
    assert_ne!(r1.session_id, 0);
    assert_eq!(r1.passwd.len(), 16);

    // Re-attach with the right password: same id and password; the old connection is closed.
    let (mut s2, r2) = raw_handshake(addr, 5_000, r1.session_id, &r1.passwd, Some(false)).await;
    assert_eq!(
        (r2.session_id, r2.timeout_ms, &r2.passwd),
        (r1.session_id, 5_000, &r1.passwd)
    );
    assert!(
        until_closed!(&mut s1).is_empty(),
        "old connection of the session is closed"
    );
    // The new connection works: ping.
    write_frame(&mut s2, &Jute::new().int(-2).int(11).bytes()).await;
    let (xid, _, code, rest) = parse_reply(&read_frame(&mut s2).await.expect("ping reply"));
    assert_eq!((xid, code, rest.len()), (-2, 0, 0));

    // Wrong password: timeOut 0, sessionId 0, 16 zero bytes, then close.
    let mut bad = r1.passwd.clone();
    bad[0] ^= 0xff;
    let (mut s3, r3) = raw_handshake(addr, 5_000, r1.session_id, &bad, Some(false)).await;
    assert_eq!(
        (r3.timeout_ms, r3.session_id, r3.passwd.clone()),
        (0, 0, vec![0u8; 16])
    );
    assert!(until_closed!(&mut s3).is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_replies_then_closes() {
    let server = TestServer::start().await;
    let (mut s, r) = raw_session(server.addr).await;
    write_frame(&mut s, &Jute::new().int(5).int(op::CLOSE_SESSION).bytes()).await;
    let (xid, _, code, rest) = parse_reply(&read_frame(&mut s).await.expect("closeSession reply"));
    assert_eq!((xid, code, rest.len()), (5, 0, 0));
    assert!(
        until_closed!(&mut s).is_empty(),
        "socket closed after the closeSession reply"
    );
    let refused = Zk::connect_with(server.addr, 10_000, r.session_id, &r.passwd)
        .await
        .err();
    assert_eq!(
        refused.map(|r| (r.timeout_ms, r.session_id)),
        Some((0, 0)),
        "closed session cannot be resumed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_expires_and_its_socket_is_closed() {
    let server = TestServer::start().await;
    // Connected but never pinging: the server expires the session and closes the socket.
    let (mut s, r) = raw_handshake(server.addr, 400, 0, &[0; 16], Some(false)).await;
    assert_eq!(r.timeout_ms, 400);
    let start = Instant::now();
    assert!(until_closed!(&mut s).is_empty());
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed after {elapsed:?}, before the 400 ms timeout"
    );
    let refused = Zk::connect_with(server.addr, 10_000, r.session_id, &r.passwd)
        .await
        .err();
    assert_eq!(
        refused.map(|r| (r.timeout_ms, r.session_id)),
        Some((0, 0)),
        "expired session cannot be resumed"
    );
    server.stop().await;
}

// =============================================================================================
// 6. Bad input on raw sockets
// =============================================================================================

async fn assert_server_still_serves(server: &TestServer, path: &str) {
    let c = server.client().await;
    let (_, stat) = c.create(path, b"ok", PERSISTENT).await.unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(c.get_data(path, false).await.unwrap().0, b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_connection() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Before the handshake.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    s.write_all(&1_048_576i32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 64]).await.unwrap();
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to an oversized first frame"
    );

    // After the handshake: a frame of exactly jute.maxbuffer (1048575 bytes) is accepted ...
    let (mut s, _) = raw_session(addr).await;
    let acl = Jute::new().acls(&open_acl()).bytes();
    let fixed = 8 + (4 + "/big".len()) + 4 + acl.len() + 4;
    let data = vec![b'z'; 1_048_575 - fixed];
    let req = Jute::new()
        .int(1)
        .int(1)
        .string("/big")
        .buffer(&data)
        .raw(&acl)
        .int(0)
        .bytes();
    assert_eq!(req.len(), 1_048_575);
    write_frame(&mut s, &req).await;
    let (xid, _, code, body) = parse_reply(&read_frame(&mut s).await.expect("create reply"));
    assert_eq!(
        (xid, code),
        (1, 0),
        "a 1048575-byte frame is within jute.maxbuffer"
    );
    assert_eq!(Reader::new(&body).string(), "/big");
    // ... one byte more closes the connection.
    s.write_all(&1_048_576i32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 64]).await.unwrap();
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to an oversized frame"
    );

    // A negative length too.
    let (mut s, _) = raw_session(addr).await;
    s.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(until_closed!(&mut s).is_empty());

    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_gets_unimplemented_then_close() {
    let server = TestServer::start().await;
    let (mut s, r) = raw_session(server.addr).await;
    assert_ne!(r.session_id, 0);
    write_frame(&mut s, &Jute::new().int(7).int(999).bytes()).await;
    let (xid, _, code, rest) =
        parse_reply(&read_frame(&mut s).await.expect("a reply before the close"));
    assert_eq!(
        (xid, code),
        (7, err::UNIMPLEMENTED),
        "unknown opcode gives UNIMPLEMENTED"
    );
    assert!(rest.is_empty(), "error replies carry no body");
    assert!(
        until_closed!(&mut s).is_empty(),
        "connection closed after the error"
    );
    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_connect_request_closes_connection() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Too short to hold a ConnectRequest.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    write_frame(&mut s, &[0xff; 8]).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a truncated ConnectRequest"
    );

    // Password length pointing far past the end of the frame.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    let req = Jute::new()
        .int(0)
        .long(0)
        .int(10_000)
        .long(0)
        .int(0x7fff_ffff)
        .raw(&[0; 16])
        .boolean(false)
        .bytes();
    write_frame(&mut s, &req).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a malformed ConnectRequest"
    );

    // A request header where the ConnectRequest should be (an 8-byte ping).
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    write_frame(&mut s, &Jute::new().int(-2).int(11).bytes()).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a ping in place of a ConnectRequest"
    );

    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let server = TestServer::start().await;
    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    let srvr = four_letter_word(server.addr, "srvr").await;
    assert!(srvr.contains("Mode: standalone"), "srvr output: {srvr}");
    assert!(srvr.contains("Zookeeper version:"), "srvr output: {srvr}");
    assert!(srvr.contains("Node count:"), "srvr output: {srvr}");
    assert!(four_letter_word(server.addr, "isro")
        .await
        .starts_with("rw"));
    // An unknown word is read as an oversized length: closed without output.
    assert_eq!(four_letter_word(server.addr, "xyzw").await, "");
    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}
