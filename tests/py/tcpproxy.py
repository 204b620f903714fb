"""A loopback TCP proxy that tests can use to cut client connections.

`drop_all()` closes every proxied connection (the client sees a connection
loss, the server sees EOF); `set_accepting(False)` makes new connections
fail at once (accepted, then closed) until `set_accepting(True)`.
"""

import select
import socket
import threading


class TcpProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.hosts = f"127.0.0.1:{self.port}"
        self._accepting = threading.Event()
        self._accepting.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs = []
        self._threads = []
        self.accepted = 0
        t = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        t.start()
        self._threads.append(t)

    # -- control
    def set_accepting(self, on):
        (self._accepting.set if on else self._accepting.clear)()

    def drop_all(self):
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        return len(pairs)

    def active(self):
        with self._lock:
            return len(self._pairs)

    def close(self):
        self._stop.set()
        self.drop_all()
        try:
            self.lsock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- workers
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            if not self._accepting.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setblocking(True)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            t = threading.Thread(target=self._pump, args=(client, upstream),
                                 name="proxy-pump", daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    def _pump(self, a, b):
        peer = {a: b, b: a}
        try:
            while not self._stop.is_set():
                r, _, _ = select.select([a, b], [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs = [p for p in self._pairs if p != (a, b)]
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
