"""CURVE security for the data link: mandatory off loopback, allowed clients from a key folder.

`mrsmon keygen DIR` writes DIR/server.key(+_secret) for the agent, a client pair DIR/<name>.key(+_secret)
for the scanner, and a copy of the client's public key in DIR/clients/, the allowed-clients folder.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import zmq
from zmq.auth import load_certificate, load_certificates
from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger("mrsmon.agent.security")


class SecurityError(RuntimeError):
    pass


def is_loopback(address: str) -> bool:
    """True for tcp:// addresses on 127.0.0.0/8, ::1 or localhost, and for ipc:// and inproc://."""
    scheme = address.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', interface names, host names: treat as exposed


def keygen(keys_dir: str | Path, client: str = "scanner") -> dict[str, Path]:
    d = Path(keys_dir)
    (d / "clients").mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("server", client):
        if not (d / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(d, name)
        paths[name] = d / f"{name}.key_secret"
    shutil.copy(d / f"{client}.key", d / "clients" / f"{client}.key")
    return paths


class CurveGuard:
    """Runs the ZAP authenticator: only public keys found in `clients/` may connect; refusals are logged."""

    def __init__(self, context: zmq.Context, keys_dir: str | Path):
        self.keys_dir = Path(keys_dir)
        server_secret = self.keys_dir / "server.key_secret"
        if not server_secret.exists():
            raise SecurityError(f"no server key in {self.keys_dir}: run `mrsmon keygen {self.keys_dir}` first")
        self.public, self.secret = load_certificate(server_secret)
        self.refusals = 0
        self.auth = ThreadAuthenticator(context, log=logging.getLogger("mrsmon.agent.zap"))
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        # Reread the folder each time, so a key added (or removed) takes effect without a restart.
        allowed = set(load_certificates(self.keys_dir / "clients"))
        if client_key in allowed:
            return True
        self.refusals += 1
        log.warning("refused a client with an unknown CURVE key %s... (not in %s)", client_key[:8].decode(),
                    self.keys_dir / "clients")
        return False

    def secure(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def stop(self) -> None:
        self.auth.stop()
