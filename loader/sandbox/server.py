"""`Sandbox`: runs the sandbox app on uvicorn (uvloop + httptools, one worker, no access log),
in a background thread (`start()` / `with Sandbox(cfg) as sb`) or in the calling thread
until interrupted (`serve()`, for `loader sandbox`).

The socket is bound before uvicorn starts, so `url` is known (also with port 0) and a
busy port fails in `start()` with a clear message instead of inside a thread.

Dropping a connection: an ASGI app cannot reach its connection, and an app that returns
without answering makes uvicorn send a 500. `_DroppableProtocol` (uvicorn's httptools
protocol) therefore adds a scope extension holding the connection's `close`; the app
calls it after it has committed a change and then waits for the disconnect, so the
client sees a connection closed with no answer (httpx2.RemoteProtocolError).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loader.errors import LoaderError
from loader.sandbox.app import DROP_EXTENSION, SandboxApp
from loader.sandbox.config import SandboxConfig
from loader.sandbox.store import Store
from loader.sandbox.tenant import load_tenant

STARTUP_TIMEOUT = 10.0  # seconds
STOP_TIMEOUT = 10.0


class _DroppableProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the drop extension in every request scope."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[DROP_EXTENSION] = {"close": self.transport.close}


class Sandbox:
    """A running (or ready to run) sandbox server."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._temp_dir: Path | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._store: Store | None = None
        self._base: str | None = None

    def __repr__(self) -> str:
        state = self._base or "not started"
        return f"Sandbox({state}, account={self.config.account!r})"

    # -- where it is -------------------------------------------------------------------

    @property
    def base(self) -> str:
        """`http://127.0.0.1:PORT`."""
        if self._base is None:
            raise LoaderError("the sandbox is not started")
        return self._base

    @property
    def url(self) -> str:
        """The `loader run --target` form: `http://127.0.0.1:PORT/?db=ACCOUNT`."""
        return f"{self.base}/?db={self.config.account}"

    @property
    def store(self) -> Store:
        if self._store is None:
            raise LoaderError("the sandbox is not started")
        return self._store

    @property
    def store_path(self) -> Path:
        return self.store.path

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Serve in a background thread; returns once the server accepts connections."""
        server, sock = self._prepare()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="loader-sandbox", daemon=True
        )
        self._thread = thread
        thread.start()
        waited = 0.0
        while not server.started and thread.is_alive() and waited < STARTUP_TIMEOUT:
            thread.join(0.01)
            waited += 0.01
        if not server.started:
            self.stop()
            raise LoaderError(f"the sandbox did not start on {self._base} (see the log above)")
        return self

    def serve(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl+C), then clean up."""
        server, sock = self._prepare()
        try:
            server.run(sockets=[sock])
        finally:
            self._cleanup()

    def bind(self) -> str:
        """Bind the socket now (before `serve()`), so the URL can be printed first."""
        self._prepare()
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
        self._cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inside ------------------------------------------------------------------------

    def _prepare(self) -> tuple[uvicorn.Server, socket.socket]:
        if self._server is not None and self._socket is not None:
            return self._server, self._socket  # bound by bind(), not yet serving
        tenant = load_tenant(self.config.tenant)
        store_path = self.config.store
        if store_path is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="loader-sandbox-"))
            store_path = self._temp_dir / "sandbox.sqlite"
        self._store = Store(store_path)
        sock = self._bind()
        app = SandboxApp(self.config, self._store, tenant)
        config = uvicorn.Config(
            app,
            http=_DroppableProtocol,
            loop="auto",  # uvloop where installed
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,  # leave the host program's logging alone
            log_level="warning",
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._socket = sock
        return self._server, sock

    def _bind(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            self._cleanup()
            raise LoaderError(
                f"the sandbox cannot listen on {host}:{port}: {exc.strerror or exc};"
                " choose another --port (0 picks a free one)"
            ) from exc
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._base = f"http://{shown}:{bound_port}"
        return sock

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._server = None
        if self._store is not None:
            self._store.close()
        if self._temp_dir is not None:
            # A temporary store goes with the server; pass `store=` to keep one.
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
