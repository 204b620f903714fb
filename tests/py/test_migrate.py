"""`zooid migrate check`: a ZooKeeper 3.8 installation (its zoo.cfg, the JVM flags of its
java.env, its JAAS file and a dataDir ZooKeeper wrote) read as zooid would read it, with what
zooid would not honour listed, and the exit status saying whether anything blocks."""

import os
import subprocess

from kazoo.client import KazooClient

from conftest import ZOOID_BIN, free_port, server_on_datadir


def installation(tmp_path, extra_lines=(), java_env=""):
    """A zoo.cfg on a dataDir ZooKeeper 3.8.0 wrote (three znodes besides the four every tree
    has), and a java.env."""
    data = str(tmp_path / "data")
    with server_on_datadir("oracle", str(tmp_path / "run"), data) as srv:
        zk = KazooClient(hosts=srv.hosts, timeout=10.0)
        zk.start(timeout=30)
        for p in ("/app", "/app/a", "/app/b"):
            zk.create(p, b"v")
        zk.stop()
        zk.close()
    conf = tmp_path / "conf"
    conf.mkdir()
    lines = ["tickTime=2000", f"dataDir={data}", f"clientPort={free_port()}", *extra_lines]
    (conf / "zoo.cfg").write_text("\n".join(lines) + "\n")
    (conf / "java.env").write_text(java_env)
    return str(conf / "zoo.cfg")


def migrate_check(cfg):
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_JVMFLAGS", "JVMFLAGS")}
    r = subprocess.run([ZOOID_BIN, "migrate", "check", cfg], capture_output=True, text=True,
                       timeout=60, env=env)
    return r.returncode, r.stdout


def test_what_zooid_would_not_honour_is_listed(tmp_path):
    cfg = installation(
        tmp_path,
        extra_lines=["serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                     "authProvider.1=com.example.TokenAuthenticationProvider",
                     "syncEnabled=true"],
        java_env='export SERVER_JVMFLAGS="-Dzookeeper.4lw.commands.whitelist=* '
                 '$SERVER_JVMFLAGS"\n')
    rc, out = migrate_check(cfg)
    assert rc == 0, out
    lines = out.splitlines()
    assert any(ln.startswith("ok") and "JVM flags read from" in ln for ln in lines), out
    assert any(ln.startswith("ok") and "data: snapshot" in ln and "7 znodes" in ln
               for ln in lines), out
    for needle in ("com.example.TokenAuthenticationProvider", "serverCnxnFactory",
                   "syncEnabled"):
        assert any(ln.startswith("note") and needle in ln for ln in lines), (needle, out)
    assert lines[-1].startswith("nothing blocks"), out


def test_a_blocker_is_named_and_fails_the_check(tmp_path):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text("Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n"
                    "  useKeyTab=true keyTab=\"/etc/zk.keytab\" principal=\"zk/host@EX\";\n};\n")
    cfg = installation(
        tmp_path, extra_lines=["authProvider.1=org.apache.zookeeper.server.auth."
                               "SASLAuthenticationProvider"],
        java_env=f'SERVER_JVMFLAGS="-Djava.security.auth.login.config={jaas}"\n')
    rc, out = migrate_check(cfg)
    assert rc == 1, out
    blockers = [ln for ln in out.splitlines() if ln.startswith("BLOCKER")]
    assert blockers and str(jaas) in blockers[0] and "Krb5LoginModule" in blockers[0], out
    assert "blocker(s)" in out.splitlines()[-1], out
