"""TLS and mutual TLS, with certificate files reloaded without a restart.

``--tls-cert``/``--tls-key`` serve TLS; ``--tls-client-ca`` also requires a client certificate
signed by that CA, whose subject CN names the agent (an OU of ``orchestrator`` or ``admin``
raises its role; see ``interceptor.certificate_identity``). grpc asks ``CertificateFiles.fetch``
before each new handshake: when a file changed (its modification time or size), or after
SIGHUP, the files are read again and new connections use them; open connections keep theirs.
A file that cannot be read or parsed keeps the previous certificates, logged once per change.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

import grpc

log = logging.getLogger("broker.tls")


class CertificateFiles:
    def __init__(self, cert: str, key: str, client_ca: str | None) -> None:
        self.paths = [p for p in (cert, key, client_ca) if p]
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._reload = False
        self._stamp = self._stamps()
        self.initial = self._config()  # raises on unreadable files: the broker does not start
        self.loads = 1

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        return _stamps(self.paths)

    def _config(self) -> grpc.ServerCertificateConfiguration:
        def read(path: str) -> bytes:
            with open(path, "rb") as f:
                return f.read()

        ca = read(self.client_ca) if self.client_ca else None
        return grpc.ssl_server_certificate_configuration([(read(self.key), read(self.cert))], ca)

    def request_reload(self) -> None:
        """Re-read the files before the next handshake (SIGHUP)."""
        with self._lock:
            self._reload = True

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's certificate configuration fetcher: new configuration, or None for no change."""
        with self._lock:
            stamp = self._stamps()
            if stamp == self._stamp and not self._reload:
                return None
            self._stamp, self._reload = stamp, False
            try:
                config = self._config()
            except OSError as exc:
                log.error("TLS files not reloaded, keeping the previous ones: %s", exc)
                return None
            self.loads += 1
            log.info("TLS certificate files reloaded", extra={"cert": self.cert})
            return config


def _stamps(paths: list[str]) -> tuple[tuple[int, int], ...]:
    """Each file's modification time and size: a change to either means a new certificate."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0))
    return tuple(out)


def server_credentials(files: CertificateFiles) -> grpc.ServerCredentials:
    return grpc.dynamic_ssl_server_credentials(
        files.initial, files.fetch, require_client_authentication=files.client_ca is not None
    )


class HttpTls:
    """The same certificate files as an ``ssl.SSLContext`` for the HTTP listener. The context is
    built once and its certificates are loaded again into it when a file changes or after SIGHUP
    (``refresh``, called by the listener every second): new handshakes use them, open connections
    keep theirs. With a client CA, a client certificate signed by it is required, as on gRPC."""

    def __init__(self, cert: str, key: str, client_ca: str | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        self.paths = [p for p in (cert, key, client_ca) if p]
        self._reload = False
        self._stamp = _stamps(self.paths)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._load()  # raises on unreadable files: the broker does not start
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.loads = 1

    def _load(self) -> None:
        self.context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            self.context.load_verify_locations(self.client_ca)

    def request_reload(self) -> None:
        self._reload = True

    def refresh(self) -> None:
        stamp = _stamps(self.paths)
        if stamp == self._stamp and not self._reload:
            return
        self._stamp, self._reload = stamp, False
        try:
            self._load()
        except (OSError, ssl.SSLError) as exc:
            log.error("HTTP TLS files not reloaded, keeping the previous ones: %s", exc)
            return
        self.loads += 1
        log.info("HTTP TLS certificate files reloaded", extra={"cert": self.cert})
