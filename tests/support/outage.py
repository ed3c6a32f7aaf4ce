"""A TCP relay in front of a node that a test can cut and restore: a real network outage, chain state untouched.

``CuttableRelay(target_port)`` listens on a free 127.0.0.1 port and copies bytes both ways between each client
and the target. ``cut()`` closes the listening socket and every open connection, so clients see their requests
fail and new connections refused, exactly as when the node is down; ``restore()`` listens on the same port again.
The node itself keeps running, so nothing it mined is lost (unlike stopping anvil and reloading a state dump).

``stall()`` is a hung node instead: connections stay open and requests reach the node, but its answers come back
one byte every ``drip`` seconds, so a client's read timeout (which counts the time between bytes) never fires and
the call blocks for as long as the test wants.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress

__all__ = ["CuttableRelay"]


class CuttableRelay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until cut."""

    def __init__(self, target_port: int, *, drip: float = 1.0) -> None:
        self.target_port = target_port
        self.drip = drip
        self._stalled = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = self._listen(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        bound: int = listener.getsockname()[1]
        return bound

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut() or close()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            for source, sink, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(source, sink, answers), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._stalled.is_set():
                    for byte in data:  # the hung node: one byte at a time, never a gap long enough to time out
                        time.sleep(self.drip)
                        sink.sendall(bytes([byte]))
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._connections.difference_update((source, sink))

    def cut(self) -> None:
        """The outage: refuse new connections and drop the open ones."""
        if self._listener is not None:
            with suppress(OSError):  # wakes the thread blocked in accept(), which close() alone would not
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """The node is reachable again, on the same port."""
        if self._listener is None:
            self._listen(self.port)

    def stall(self) -> None:
        """The node hangs: answers (to requests already sent too) trickle back one byte every ``drip`` seconds."""
        self._stalled.set()

    def close(self) -> None:
        self._stalled.clear()
        self.cut()
