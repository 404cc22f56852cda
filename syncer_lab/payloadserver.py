"""An HTTP server for the lab's generated payloads, on the loopback interface.

``syncer run`` fetches payloads only over http(s) (never ``file://``) and refuses
loopback addresses unless the operator allows them, so the demo and the end-to-end
tests serve the payloads they generate from here and start the controller with
``--payload-allow-networks 127.0.0.0/8``, as an operator would allow an internal mirror.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any


class PayloadServer:
    """Serves ``directory`` at :attr:`url` until :meth:`stop`."""

    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="payload-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url_of(self, path: Path) -> str:
        return f"{self.url}/{path.relative_to(self.directory).as_posix()}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
