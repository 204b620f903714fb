"""The client port with no clientPortAddress listens on every address, IPv6 included, as a
JVM's wildcard socket does: a client that resolves `localhost` to ::1 gets in, and its `ip`
identity is written as Java writes it. Checked beside ZooKeeper 3.8."""

import socket

import pytest

from conftest import running_server
from zkraw import OP, Session


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_default_address_takes_ipv4_and_ipv6_clients(kind):
    if not has_ipv6_loopback():
        pytest.fail("this machine has no IPv6 loopback (::1)")
    with running_server(kind, extra_cfg={"clientPortAddress": None}) as srv:
        ids = {}
        for host in ("127.0.0.1", "::1"):
            s = Session(host, srv.port, timeout_ms=10000)
            ids[host] = s.call(OP["whoAmI"]).body["clients"]
            s.close_socket()
        assert ids == {"127.0.0.1": [("ip", "127.0.0.1")],
                       "::1": [("ip", "0:0:0:0:0:0:0:1")]}, (kind, ids)
