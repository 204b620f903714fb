"""Operator surface: four-letter words compared with the oracle, the AdminServer's JSON
and the Prometheus endpoint over urllib.

The oracle (Debian's ZooKeeper 3.8.0) runs its AdminServer with Debian's jetty9 jars on
its classpath (conftest.oracle_admin_classpath): every command's JSON structure is
compared with it. It has no Prometheus provider, so /metrics is checked against what
ZooKeeper's sources say; the 4lw texts are compared with the oracle's for the same tree
state and the same sequence of words: keys, line structure and formats, and the values
that do not depend on timing, session ids, ports or paths.
"""

import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from conftest import ORACLE_ONLY, free_port
from zkraw import Session, four_letter

PROMETHEUS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


def http_extra(metrics=False):
    """zoo.cfg lines for an AdminServer (and /metrics) on free loopback ports."""
    extra = {
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.serverPort": str(free_port()),
    }
    if metrics:
        extra.update({
            "metricsProvider.className": PROMETHEUS,
            "metricsProvider.httpPort": str(free_port()),
            "metricsProvider.httpHost": "127.0.0.1",
        })
    return extra


def build_state(server):
    """The tree and watches of the oracle notes' 4lw recording, from one raw session."""
    s = Session(server.host, server.port, timeout_ms=30000)
    for path, data, flags in (("/app", b"hello", 0), ("/app/n1", b"x", 0), ("/app/eph", b"", 1)):
        err = s.call("create", {"path": path, "data": data, "flags": flags}).err
        assert err == 0, (server, path, err)
    s.call("getData", {"path": "/app", "watch": True})
    s.call("getChildren", {"path": "/app", "watch": True})
    s.call("exists", {"path": "/nothere", "watch": True})
    return s


@pytest.fixture(scope="module")
def pair(server_launcher):
    """A fresh zooid (AdminServer on loopback, default metrics provider) and a fresh
    oracle, each holding the same state through one open session."""
    with server_launcher("zooid", extra_cfg=http_extra()) as z, server_launcher("oracle") as o:
        z.admin = f"http://127.0.0.1:{cfg_value(z, 'admin.serverPort')}"
        sessions = [build_state(z), build_state(o)]
        try:
            yield z, o
        finally:
            for s in sessions:
                s.close_socket()


@pytest.fixture(scope="module")
def prom(server_launcher):
    """A zooid with the Prometheus provider on loopback."""
    if ORACLE_ONLY:
        pytest.skip("Debian's ZooKeeper has no Prometheus provider")
    with server_launcher("zooid", extra_cfg=http_extra(metrics=True)) as z:
        z.admin = f"http://127.0.0.1:{cfg_value(z, 'admin.serverPort')}"
        z.metrics = f"http://127.0.0.1:{cfg_value(z, 'metricsProvider.httpPort')}"
        s = build_state(z)
        try:
            yield z
        finally:
            s.close_socket()


def cfg_value(server, key):
    with open(server.cfg_path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k == key:
                return v
    raise KeyError(key)


def needs_zooid(server):
    if getattr(server, "real_kind", "zooid") != "zooid":
        pytest.skip("the oracle runs neither its AdminServer nor the Prometheus provider here")


def http(url, method="GET"):
    """(status, content type, body) of one request."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def command(server, name):
    status, ctype, body = http(f"{server.admin}/commands/{name}")
    assert status == 200 and ctype.startswith("application/json"), (name, status, ctype, body)
    # Jackson's default pretty printer: two-space indent, "key" : value.
    assert body.startswith('{\n  "') and body.endswith("\n}"), body
    assert re.match(r'^\{\n  "[^"]+" : ', body), body
    return json.loads(body)


def words(pair, word):
    """The word's text from zooid and from the oracle, asked in that order."""
    z, o = pair
    return four_letter(z.host, z.port, word), four_letter(o.host, o.port, word)


SID = re.compile(r"0x[0-9a-f]{8,}")


def shape(text):
    """Text with versions, session ids, addresses, times and numbers masked."""
    text = re.sub(r"(?m)^(Zookeeper version: ).*$", r"\1V", text)
    text = SID.sub("SID", text)
    text = re.sub(r"/127\.0\.0\.1:\d+", "/ADDR", text)
    text = re.sub(r"expire at [A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}", "expire at DATE", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)


def fields(text, sep):
    return [line.split(sep, 1)[0] for line in text.splitlines()]


# -- four-letter words against the oracle (first: the HTTP tests leave counters alone, but
#    these compare counters, so they run before anything else talks to the servers)


def test_srvr_and_stat_match_the_oracle(pair):
    for word in ("srvr", "stat"):
        z, o = words(pair, word)
        # Client lines come in hash order in ZooKeeper.
        assert sorted(shape(z).splitlines()) == sorted(shape(o).splitlines()), (word, z, o)
        assert shape(z).count("\n\n") == shape(o).count("\n\n"), (word, z, o)
        zl = dict(line.split(": ", 1) for line in z.splitlines() if ": " in line and not line.startswith(" "))
        ol = dict(line.split(": ", 1) for line in o.splitlines() if ": " in line and not line.startswith(" "))
        for key in ("Connections", "Outstanding", "Zxid", "Mode", "Node count"):
            assert zl[key] == ol[key], (word, key, z, o)
        assert zl["Zookeeper version"].startswith("3.8.")


def test_cons_and_dump_match_the_oracle(pair):
    z, o = words(pair, "cons")
    assert z.endswith(")\n\n") and o.endswith(")\n\n"), (z, o)
    # One line per connection: the asking one, and the session's with every field.
    assert sorted(shape(z).splitlines()) == sorted(shape(o).splitlines()), (z, o)
    z, o = words(pair, "dump")
    assert dump_shape(z) == dump_shape(o), (z, o)


def dump_shape(text):
    """dump with its expiry buckets left out: which bucket a connection falls in (the 4lw
    connection's own included), and whether the oracle still shows an emptied bucket, depend
    on timing. What is compared: every line's shape outside the bucket headers, sorted."""
    lines = shape(text).splitlines()
    return sorted(
        line for line in lines
        if not re.match(r"^(N|\d+) expire at ", line)
        and not line.startswith(("Session Sets", "Connections Sets"))
    )


def test_conf_envi_dirs_match_the_oracle(pair):
    z, o = words(pair, "conf")
    assert fields(z, "=") == fields(o, "="), (z, o)
    zc, oc = (dict(line.split("=", 1) for line in t.splitlines()) for t in (z, o))
    for key in ("secureClientPort", "tickTime", "maxClientCnxns", "minSessionTimeout",
                "maxSessionTimeout", "clientPortListenBacklog", "serverId"):
        assert zc[key] == oc[key], (key, z, o)
    assert zc["dataDir"].endswith("/data/version-2"), z
    z, o = words(pair, "envi")
    assert fields(z, "=") == fields(o, "="), (z, o)
    z, o = words(pair, "dirs")
    assert shape(z) == shape(o), (z, o)


def test_mntr_has_the_oracles_keys(pair):
    z, o = words(pair, "mntr")
    zk = dict(line.split("\t", 1) for line in z.splitlines())
    ok = dict(line.split("\t", 1) for line in o.splitlines())
    assert set(zk) == set(ok), (sorted(set(zk) - set(ok)), sorted(set(ok) - set(zk)))
    for key in ("zk_server_state", "zk_znode_count", "zk_ephemerals_count", "zk_watch_count",
                "zk_global_sessions", "zk_local_sessions", "zk_outstanding_requests",
                "zk_num_alive_connections", "zk_digest_mismatches_count",
                "zk_cnt_app_write_per_namespace", "zk_cnt_app_read_per_namespace",
                "zk_sum_app_write_per_namespace", "zk_sum_app_read_per_namespace"):
        assert zk[key] == ok[key], (key, zk[key], ok[key])
    for key in zk:
        # Same number formats: integers stay integers, doubles keep their ".N".
        assert ("." in zk[key]) == ("." in ok[key]) or key == "zk_version", (key, zk[key], ok[key])


def test_watch_words_match_the_oracle(pair):
    for word in ("wchs", "wchc", "wchp"):
        z, o = words(pair, word)
        assert SID.sub("SID", z) == SID.sub("SID", o), (word, z, o)


def test_small_words_match_the_oracle(pair):
    for word in ("ruok", "isro", "gtmk", "hash"):
        z, o = words(pair, word)
        assert z == o, (word, z, o)
    # stmk: an 8-byte mask in, the mask out; gtmk then reports it.
    for server in pair:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(b"stmk" + (306).to_bytes(8, "big"))
            out = b""
            while chunk := s.recv(100):
                out += chunk
        assert out == b"306", (server, out)


def test_resets_match_the_oracle(pair):
    for word in ("crst", "srst"):
        z, o = words(pair, word)
        assert z == o, (word, z, o)
    z, o = words(pair, "cons")
    assert sorted(shape(z).splitlines()) == sorted(shape(o).splitlines()), (z, o)
    assert "lzxid=0xffffffffffffffff" in z and "lcxid" not in z, z
    # After srst both count only what came since: received cons and this srvr, sent the
    # answers to srst and cons.
    z, o = words(pair, "srvr")
    assert shape(z) == shape(o), (z, o)
    for text in (z, o):
        assert "\nReceived: 2\nSent: 2\n" in text, (z, o)


def test_whitelist_refusals_match_the_oracle(server_launcher):
    # srvr is answered though the list leaves it out: ZooKeeper always allows it.
    extra = {"4lw.commands.whitelist": "ruok, conf"}
    with server_launcher("zooid", extra_cfg=dict(extra, **{"admin.enableServer": "false"})) as z, \
            server_launcher("oracle", extra_cfg=extra) as o:
        for word in ("stat", "mntr", "stmk", "ruok", "zzzz"):
            zt, ot = four_letter(z.host, z.port, word), four_letter(o.host, o.port, word)
            assert zt == ot, (word, zt, ot)
        for s in (z, o):
            assert four_letter(s.host, s.port, "srvr").startswith("Zookeeper version:"), s
            assert four_letter(s.host, s.port, "conf").startswith("clientPort="), s


# -- the AdminServer


def test_command_index_lists_every_command(pair):
    z, _ = pair
    needs_zooid(z)
    status, _, body = http(f"{z.admin}/commands")
    assert status == 200
    names = re.findall(r'<a href="/commands/([a-z_]+)">\1</a>', body)
    assert names == sorted(names) and len(names) == 26, body
    assert {"server_stats", "stats", "monitor", "ruok", "connections", "configuration",
            "environment", "dump", "watches", "watches_by_path", "watch_summary",
            "is_read_only", "last_snapshot", "system_properties", "voting_view",
            "zabstate"} <= set(names)


def test_http_commands_answer_json(pair):
    z, o = pair
    needs_zooid(z)
    ruok = http(f"{z.admin}/commands/ruok")[2]
    assert ruok == '{\n  "command" : "ruok",\n  "error" : null\n}'

    srvr = command(z, "srvr")
    assert srvr["command"] == "server_stats" and srvr["error"] is None
    assert list(srvr) == ["version", "read_only", "server_stats", "client_response",
                          "node_count", "command", "error"]
    oracle_srvr = four_letter(o.host, o.port, "srvr")
    assert f"Node count: {srvr['node_count']}\n" in oracle_srvr, (srvr, oracle_srvr)
    assert srvr["server_stats"]["server_state"] == "standalone"
    assert srvr["server_stats"]["num_alive_client_connections"] == 1

    stat = command(z, "stat")
    assert stat["command"] == "stats"
    assert [sorted(c) for c in stat["connections"]] == [sorted(
        ["remote_socket_address", "interest_ops", "outstanding_requests", "packets_received",
         "packets_sent"])]
    assert stat["secure_connections"] == []

    mntr = command(z, "mntr")
    assert mntr["command"] == "monitor"
    # Its keys are the oracle's mntr keys without the zk_ prefix.
    oracle_keys = {line.split("\t")[0][3:] for line in four_letter(o.host, o.port, "mntr").splitlines()}
    assert set(mntr) - {"command", "error"} == oracle_keys
    assert mntr["znode_count"] == srvr["node_count"]
    assert isinstance(mntr["avg_latency"], float) and isinstance(mntr["znode_count"], int)

    wchp = command(z, "watches_by_path")
    assert sorted(wchp["path_to_session_ids"]) == ["/app", "/nothere"]
    conf = command(z, "conf")
    assert list(conf)[:9] == ["client_port", "data_dir", "data_log_dir", "tick_time",
                              "max_client_cnxns", "min_session_timeout",
                              "max_session_timeout", "server_id", "client_port_listen_backlog"]
    assert command(z, "isro")["read_only"] is False
    lead = command(z, "leader")
    assert lead == {"error": "server is not initialized", "command": "leader"}


def test_unknown_commands_and_paths(pair):
    z, _ = pair
    needs_zooid(z)
    # ZooKeeper's AdminServer answers an unknown command with 200 and the error in JSON.
    nope = command(z, "nope")
    assert nope == {"command": "nope", "error": "Unknown command: nope"}
    assert http(f"{z.admin}/nope")[0] == 404
    assert http(f"{z.admin}/commands/ruok", method="POST")[0] == 405


# -- Prometheus


def parse_prometheus(text):
    """{family: type}, [(name, labels, value)]; asserts the 0.0.4 text format."""
    types, samples = {}, []
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    sample_re = re.compile(rf"^({name_re})(\{{(.*)\}})? (\S+)$")
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({name_re})(?: (.*))?$", line)
            assert m, line
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "summary", "histogram", "untyped"), line
                assert m.group(2) not in types, line
                types[m.group(2)] = m.group(3)
            continue
        m = sample_re.match(line)
        assert m, line
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        parsed = dict(re.findall(rf'({name_re})="((?:[^"\\]|\\.)*)",?', labels))
        family = re.sub(r"_(count|sum)$", "", name) if re.sub(r"_(count|sum)$", "", name) in types else name
        assert family in types, line
        v = float(value.replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((name, parsed, v))
    return types, samples


def test_metrics_are_prometheus_text(prom):
    needs_zooid(prom)
    status, ctype, body = http(f"{prom.metrics}/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
    types, samples = parse_prometheus(body)
    plain = {n: v for n, labels, v in samples if not labels}
    for name, t in (("znode_count", "gauge"), ("watch_count", "gauge"),
                    ("ephemerals_count", "gauge"), ("global_sessions", "gauge"),
                    ("num_alive_connections", "gauge"), ("outstanding_requests", "gauge"),
                    ("avg_latency", "gauge"), ("approximate_data_size", "gauge"),
                    ("fsynctime", "summary"), ("snapshottime", "summary"),
                    ("readlatency", "summary"), ("updatelatency", "summary"),
                    ("bytes_received_count", "counter"), ("response_bytes", "counter")):
        assert types.get(name) == t, (name, types.get(name))
    srvr = command(prom, "srvr")
    assert plain["znode_count"] == srvr["node_count"] == 8
    assert plain["ephemerals_count"] == 1 and plain["global_sessions"] == 1
    assert plain["watch_count"] == 3  # data + child watch on /app, exists on /nothere
    assert plain["fsynctime_count"] >= 1 and plain["updatelatency_count"] >= 3
    assert plain["bytes_received_count"] > 0 and plain["response_bytes"] > 0
    assert any(n == "write_per_namespace_count" and labels == {"key": "app"} for n, labels, _ in samples)
    # mntr follows the provider: Prometheus sample names, every value a double.
    mntr = dict(line.split("\t", 1) for line in four_letter(prom.host, prom.port, "mntr").splitlines())
    assert mntr["zk_znode_count"] == "8.0" and 'zk_fsynctime{quantile="0.5",}' in mntr, mntr
    assert http(f"{prom.metrics}/commands/ruok")[0] == 404


# -- the AdminServer against the oracle's (Debian's jetty9 on its classpath)


def json_shape(value):
    """The JSON structure of a value: its type, an object's keys (recursively) and a
    list's first element."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return ["list"] + ([json_shape(value[0])] if value else [])
    return {k: json_shape(v) for k, v in value.items()}


def shape_diffs(z, o, where=""):
    """Where the structures z and o differ, as readable lines."""
    if isinstance(z, dict) and isinstance(o, dict):
        out = [f"{where}: only zooid has {k!r}" for k in sorted(set(z) - set(o))]
        out += [f"{where}: only the oracle has {k!r}" for k in sorted(set(o) - set(z))]
        for k in sorted(set(z) & set(o)):
            out += shape_diffs(z[k], o[k], f"{where}.{k}")
        return out
    if isinstance(z, list) and isinstance(o, list) and len(z) == len(o):
        return shape_diffs(z[1], o[1], f"{where}[0]") if len(z) == 2 else []
    return [] if z == o else [f"{where}: zooid {z!r}, oracle {o!r}"]


def command_index(server):
    status, _, body = http(f"{server.admin}/commands")
    assert status == 200, (server, status, body)
    return re.findall(r'<a href="/commands/([a-z_]+)">\1</a>', body)


@pytest.fixture(scope="module")
def admin_pair(server_launcher, make_client_module):
    """A fresh zooid and a fresh oracle, both with their AdminServer on loopback, holding
    the same nodes, an ephemeral and watches through one open kazoo session each."""
    with server_launcher("zooid", extra_cfg=http_extra()) as z, \
            server_launcher("oracle", extra_cfg=http_extra()) as o:
        for server in (z, o):
            server.admin = f"http://127.0.0.1:{cfg_value(server, 'admin.serverPort')}"
            c = make_client_module(server)
            c.create("/adm", b"top")
            c.create("/adm/a", b"a" * 10)
            c.create("/adm/b/c", b"", makepath=True)
            c.create("/adm/eph", b"e", ephemeral=True)
            c.get("/adm", watch=lambda event: None)
            c.get_children("/adm", watch=lambda event: None)
            c.exists("/adm/none", watch=lambda event: None)
        yield z, o


@pytest.fixture(scope="module")
def make_client_module():
    from conftest import ClientFactory
    f = ClientFactory()
    try:
        yield f
    finally:
        f.close_all()


# Maps keyed by session ids, expiry times or paths: their keys are values.
VALUE_KEYED = {("dump", "expiry_time_to_session_ids"), ("dump", "session_id_to_ephemeral_paths"),
               ("watches", "session_id_to_watched_paths"),
               ("watches_by_path", "path_to_session_ids")}


def oracle_jvm_only_properties(oracle):
    """System properties only the oracle's JVM command line (-D not also in zoo.cfg) and
    jetty set."""
    from conftest import oracle_command
    with open(oracle.cfg_path) as f:
        cfg_keys = {line.partition("=")[0] for line in f if "=" in line}
    flags = {w[2:].partition("=")[0] for w in oracle_command(oracle.cfg_path, 0) if w.startswith("-D")}
    return {"jetty.git.hash"} | {k for k in flags if k[len("zookeeper."):] not in cfg_keys}


def test_admin_commands_have_the_oracles_structure(admin_pair):
    """Every command the oracle's AdminServer lists: zooid answers with the same keys at
    every level, the same JSON types and the same command/error; values may differ."""
    z, o = admin_pair
    if getattr(z, "real_kind", "zooid") != "zooid":
        pytest.skip("compares zooid with the oracle")
    names = command_index(o)
    assert len(names) == 26, names
    assert command_index(z) == names
    jvm_only = oracle_jvm_only_properties(o)
    diffs = []
    for name in names:
        zj, oj = command(z, name), command(o, name)
        if zj.get("command") != oj.get("command") or zj.get("error") != oj.get("error"):
            diffs.append(f"{name}: command/error zooid {zj.get('command')!r}/{zj.get('error')!r}, "
                         f"oracle {oj.get('command')!r}/{oj.get('error')!r}")
        for key in list(oj):
            if (name, key) in VALUE_KEYED:
                # ZooKeeper's expiry queue keeps a bucket a touched session left, empty,
                # until that time passes: only entries with values count.
                zm, om = ({k: v for k, v in sorted(j.get(key, {}).items()) if v} for j in (zj, oj))
                if len(zm) != len(om):
                    diffs.append(f"{name}.{key}: {len(zm)} entries, oracle {len(om)}")
                for j, m in ((zj, zm), (oj, om)):
                    j[key] = {"<key>": v for v in list(m.values())[:1]}
            elif name == "system_properties" and key in jvm_only:
                del oj[key]
        if name == "system_properties" and "user.timezone" not in oj:
            zj.pop("user.timezone", None)  # a JVM sets it on first use of its time zone
        diffs += [name + line for line in shape_diffs(json_shape(zj), json_shape(oj))]
    assert not diffs, "\n".join(diffs)
    with open(z.cfg_path) as f:
        assert command(z, "initial_configuration")["initial_configuration"] == f.read()
    assert command(z, "system_properties")["zookeeper.admin.serverAddress"] == "127.0.0.1"


# -- a slow-loris cannot lock the HTTP listeners out

SLOW_HEADS = 300


def slow_heads(port, n):
    """`n` connections that each send a request head without its final blank line."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /commands/ruok HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    return socks


def reopen_closed(socks, port):
    """Re-open, as an attacker would, the connections the server closed."""
    for i, s in enumerate(socks):
        s.setblocking(False)
        try:
            closed = s.recv(1) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        if closed:
            s.close()
            socks[i] = slow_heads(port, 1)[0]


@pytest.mark.parametrize("which", ["admin", "metrics"])
def test_slow_request_heads_do_not_lock_out_a_prompt_one(prom, which):
    url = prom.admin + "/commands/ruok" if which == "admin" else prom.metrics + "/metrics"
    port = int(url.split(":")[2].split("/")[0])
    socks = slow_heads(port, SLOW_HEADS)
    try:
        for _ in range(5):
            reopen_closed(socks, port)
            started = time.monotonic()
            req = urllib.request.Request(url)
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 200
            took = time.monotonic() - started
            assert took < 2.0, f"a prompt request waited {took:.1f}s behind {SLOW_HEADS} slow heads"
    finally:
        for s in socks:
            s.close()
