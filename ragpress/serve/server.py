"""Running the app under uvicorn: in the foreground (``ragpress serve``) or in a background
thread of this process (tests, benchmarks, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn

from ragpress.serve.app import create_app
from ragpress.serve.service import CompressionService

#: Seconds an idle kept-alive connection stays open. Above the usual load balancer idle
#: timeout (60 s), and above a request's wait under load: uvicorn's 5 s default closes
#: connections that busy clients are about to reuse.
KEEP_ALIVE_S = 75


def run(service: CompressionService, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (Ctrl-C)."""
    uvicorn.run(
        create_app(service),
        host=host,
        port=port,
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """``with BackgroundServer(service) as server: server.url`` -- a real uvicorn server on a
    free local port, ready (models loaded) when the block starts, stopped when it ends."""

    def __init__(
        self,
        service: CompressionService,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        ready_timeout: float = 300.0,
    ) -> None:
        self.service, self.host, self.port = service, host, port or free_port(host)
        self.ready_timeout = ready_timeout
        config = uvicorn.Config(
            create_app(service),
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.start()
        wait_ready(self.url, self.ready_timeout, lambda: self.service.load_error)
        return self

    def start(self) -> None:
        """Serve in the background without waiting for the models (``with`` waits for them)."""
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def wait_ready(url: str, timeout: float, failed: object = None) -> None:
    """Poll ``url/healthz`` until it answers 200; raise when ``timeout`` seconds pass or
    ``failed()`` returns an error (the models did not load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(failed) and (error := failed()) is not None:
            raise RuntimeError(f"the server at {url} failed to load its models: {error}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server at {url} was not ready within {timeout} s")
