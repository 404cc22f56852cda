"""Real Git servers on loopback: OpenSSH ``sshd`` and ``git http-backend`` behind HTTPS.

:class:`SshGitServer` runs the system ``sshd`` (Debian ``openssh-server``) on a free
loopback port with its own host key and configuration. Every authorized key gets a forced
command: a small script that appends the requested git command to ``sessions.log`` and
``exec``s ``git-shell`` — so clients can only run upload-pack/receive-pack, and tests can
count how often the remote was contacted. ``known_hosts`` holds the real host key;
:meth:`SshGitServer.wrong_known_hosts` a different one, to prove host keys are checked.

:class:`HttpsGitServer` is a threaded Python HTTPS server with a certificate issued by a
throw-away CA (``ca_file``), running ``git http-backend`` as CGI for every request that
carries the token the way the forge it plays (``forge``) accepts it for Git over HTTPS;
anything else gets 401 with the forge's Basic challenge:

- ``github``: Basic with the token as password and any user name (GitHub docs, "Cloning
  with HTTPS URLs" and GitHub App installation tokens as ``x-access-token``); a Bearer
  header is refused (users who tried report git's ``could not read Username``);
- ``gitlab``: Basic with the token as password and a non-blank user name (GitLab docs:
  personal, project and group access tokens; ``oauth2`` for OAuth tokens);
- ``gitea``: Basic with the token as password (any user name), or ``Authorization:
  token <t>`` (Gitea's API auth, which its Git endpoint shares).

It records each request (method, path, protocol-v2 command, the ``have`` lines of a
fetch), so tests can prove that an unchanged poll did not fetch and
that a fetch was incremental. It can be stopped and restarted on the same port to play a
remote that is down for a while.
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import os
import pwd
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from syncer_lab import pki
from syncer_lab.gitrepos import SshKey
from syncer_lab.processes import free_port

SSHD = "/usr/sbin/sshd"


def _wait_for_banner(host: str, port: int, prefix: bytes, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                if not prefix or sock.recv(64).startswith(prefix):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on {host}:{port} did not come up")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------
# SSH


class SshGitServer:
    """``sshd`` on 127.0.0.1:<port> serving the repositories under ``root`` via git-shell."""

    def __init__(self, base: Path, host: str = "127.0.0.1"):
        self.base = base
        self.host = host
        self.root = base / "repos"
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.sessions_log = base / "sessions.log"

    # -- setup -------------------------------------------------------------------------

    def start(self) -> SshGitServer:
        self.base.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        keys = self.base / "keys"
        self.host_key = SshKey.generate(keys, "host_ed25519", "host")
        self.client_key = SshKey.generate(keys, "client_ed25519", "syncer")
        self.other_host_key = SshKey.generate(keys, "other_host_ed25519", "imposter")
        self.forced = self.base / "git-serve.sh"
        self.forced.write_text(
            "#!/bin/sh\n"
            f'echo "$SSH_ORIGINAL_COMMAND" >> {self.sessions_log}\n'
            'exec git-shell -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        self.forced.chmod(0o755)
        self.authorized_keys = self.base / "authorized_keys"
        self.authorized_keys.write_text("")
        self.authorize(self.client_key)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(5):
            self.port = free_port(self.host)
            config = self.base / "sshd_config"
            config.write_text("\n".join([
                f"Port {self.port}",
                f"ListenAddress {self.host}",
                f"HostKey {self.host_key.private}",
                f"PidFile {self.base / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.authorized_keys}",
                "AuthenticationMethods publickey",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {self.user}",
                "AcceptEnv GIT_PROTOCOL",
                "LogLevel ERROR",
                "",
            ]))
            self._proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.base / "sshd.log", "ab"),  # noqa: SIM115
            )
            try:
                _wait_for_banner(self.host, self.port, b"SSH-")
                break
            except RuntimeError:
                self.stop()
        else:
            raise RuntimeError("sshd did not start: " + (self.base / "sshd.log").read_text())
        self.known_hosts = self.base / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line(self.host_key))
        return self

    def authorize(self, key: SshKey) -> None:
        options = f'command="{self.forced}",restrict'
        with self.authorized_keys.open("a") as handle:
            handle.write(f"{options} {key.public}\n")

    def known_hosts_line(self, key: SshKey) -> str:
        key_type, blob = key.public.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {blob}\n"

    def wrong_known_hosts(self, path: Path) -> Path:
        """A known_hosts file naming this host with a key that is not its key."""
        path.write_text(self.known_hosts_line(self.other_host_key))
        return path

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> SshGitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}{repo.resolve()}"

    def sessions(self) -> list[str]:
        """The git commands clients ran, one per SSH session, oldest first."""
        if not self.sessions_log.exists():
            return []
        return [ln for ln in self.sessions_log.read_text().splitlines() if ln.strip()]


# --------------------------------------------------------------------------------------
# HTTPS


@dataclass
class ServerTls:
    """A throw-away CA (:mod:`syncer_lab.pki`) and one server certificate it issued
    for ``host`` and ``localhost``, as PEM files."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path, host: str = "127.0.0.1") -> ServerTls:
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.CertificateAuthority.create("syncer test CA")
        key, cert = ca.issue(host, server=True, dns_names=["localhost"],
                             ip_addresses=[ipaddress.ip_address(host)])
        ca_file = directory / "ca.pem"
        ca_file.write_bytes(pki.cert_pem(ca.cert))
        key_file, cert_file = pki.write_key_and_cert(directory, "server", key, cert)
        return cls(ca_file, cert_file, key_file)


@dataclass
class HttpRequest:
    """One request the HTTPS git server answered."""

    method: str
    path: str
    query: str
    status: int
    command: str = ""  # protocol v2 command (ls-refs, fetch) of a POST, or ""
    haves: list[str] = field(default_factory=list)
    authorization: str = ""
    # While the client waited for this response: did the token appear in any process's
    # command line (visible to everyone in ps) / in some process's environment?
    token_in_args: bool = False
    token_in_env: bool = False

    @property
    def service(self) -> str:
        """git-upload-pack / git-receive-pack, from the path or the query."""
        for name in ("git-upload-pack", "git-receive-pack"):
            if self.path.endswith(name) or f"service={name}" in self.query:
                return name
        return ""


def _pkt_lines(body: bytes) -> list[str]:
    """Decode pkt-line framed text (enough for v2 commands and have lines)."""
    lines: list[str] = []
    pos = 0
    while pos + 4 <= len(body):
        try:
            size = int(body[pos:pos + 4], 16)
        except ValueError:
            break
        if size < 4:
            pos += 4
            continue
        lines.append(body[pos + 4:pos + size].decode(errors="replace").rstrip("\n"))
        pos += size
    return lines


class _GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        token, forge = self.server.owner.token, self.server.owner.forge
        if forge == "gitea" and header == f"token {token}":
            return True
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return password == token and (forge != "gitlab" or bool(user.strip()))
        return False

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        body = self._read_body()
        record = HttpRequest(self.command, path, query, 0,
                             authorization=self.headers.get("Authorization", ""))
        if owner.probe_processes:
            record.token_in_args, record.token_in_env = _scan_processes(owner.token)
        if not self._authorized():
            record.status = 401
            owner.record(record)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        plain = body
        if self.headers.get("Content-Encoding", "") == "gzip" and body:
            plain = gzip.decompress(body)
        lines = _pkt_lines(plain)
        record.command = next((ln.split("=", 1)[1] for ln in lines
                               if ln.startswith("command=")), "")
        record.haves = [ln.split()[1] for ln in lines if ln.startswith("have ")]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "syncer",
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        result = subprocess.run(["git", "http-backend"], input=body, env=env,
                                capture_output=True, check=False, timeout=120)
        raw = result.stdout
        sep = raw.find(b"\r\n\r\n")
        head, payload = (raw[:sep], raw[sep + 4:]) if sep >= 0 else raw.split(b"\n\n", 1)
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        record.status = status
        owner.record(record)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _scan_processes(secret: str) -> tuple[bool, bool]:
    """Whether ``secret`` is in any process's command line / environment (via /proc)."""
    needle = secret.encode()
    in_args = in_env = False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            in_args = in_args or needle in (proc / "cmdline").read_bytes()
            in_env = in_env or needle in (proc / "environ").read_bytes()
        except OSError:
            continue
    return in_args, in_env


class _Server(ThreadingHTTPServer):
    """TLS is negotiated in each connection's own thread: wrapping the listening socket
    would run every handshake inside ``accept()``, so one slow or refusing client (the
    wrong-CA tests) would stall all the others on a loaded machine."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: HttpsGitServer, tls: ssl.SSLContext):
        self.owner = owner
        self.tls = tls
        super().__init__(address, _GitHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate (or went away): its side reports it
        with conn:
            super().finish_request(conn, client_address)


class HttpsGitServer:
    """HTTPS smart-HTTP git server for the repositories under ``root``, token required."""

    def __init__(self, base: Path, token: str, host: str = "127.0.0.1", forge: str = "github"):
        self.base = base
        self.root = base / "repos"
        self.token = token
        self.forge = forge
        self.host = host
        self.port = 0
        self.requests: list[HttpRequest] = []
        self.probe_processes = False  # scan /proc for the token on each request
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HttpsGitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if not hasattr(self, "ca"):  # kept across restarts; tests may share one
            self.ca = ServerTls.create(self.base / "tls", self.host)
        if not self.port:
            self.port = free_port(self.host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca.cert_file, self.ca.key_file)
        server = _Server((self.host, self.port), self, context)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> HttpsGitServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    def url(self, repo: Path | str) -> str:
        name = Path(repo).resolve().relative_to(self.root.resolve()) if Path(
            repo).is_absolute() else Path(repo)
        return f"https://{self.host}:{self.port}/{name}"

    def record(self, request: HttpRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def take_requests(self) -> list[HttpRequest]:
        """The requests since the last call, oldest first."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

