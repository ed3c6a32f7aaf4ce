"""Serving the facilitator's ASGI app with uvicorn.

The listening socket is bound here (so port 0 resolves before start-up and the backlog is ours: 200
concurrent clients must all get in), then handed to uvicorn. uvicorn's own log records are routed into the
JSON request log; its access log is off (the app logs each request once). On SIGTERM/SIGINT uvicorn stops
accepting, lets requests in flight finish (each bounded by the app's request deadline), and then the app's
lifespan closes the facilitator; ``graceful_timeout`` caps the whole wait.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import uvicorn

from og_settle._errors import InvalidInput
from og_settle.facilitator._log import RequestLog, route_uvicorn_logs

__all__ = ["DEFAULT_BACKLOG", "FacilitatorServer", "bind"]

DEFAULT_BACKLOG: Final = 2048


def bind(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = any free port); InvalidInput if it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise InvalidInput(f"--host/--port: cannot listen on {host}:{port} ({err.strerror or err})") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGTERM/SIGINT after its graceful shutdown, so the process dies of the
        # signal; a stop on a signal is this server's normal end (exit 0), so the captured signals are dropped.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_started is not None:
            self._on_started()


class FacilitatorServer:
    """An ASGI app on a bound socket, run by uvicorn: :meth:`run` in the main thread (signals stop it), or
    :meth:`start_in_thread` / :meth:`stop` for tests and embedding."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        log: RequestLog,
        graceful_timeout: float = 90.0,
        keep_alive: float = 5.0,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.sock = sock
        self.log = log
        route_uvicorn_logs(log)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_keep_alive=int(max(1, keep_alive)),
            timeout_graceful_shutdown=int(max(1, graceful_timeout)),
            backlog=DEFAULT_BACKLOG,
            server_header=False,
        )
        self.server = _Server(config, on_started)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def run(self) -> bool:
        """Serve until SIGTERM/SIGINT; returns False if start-up failed."""
        self.server.run(sockets=[self.sock])
        return bool(self.server.started)

    def start_in_thread(self, timeout: float = 30.0) -> None:
        started = threading.Event()
        self.server._on_started = started.set
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise RuntimeError("the facilitator server did not start")

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()
