"""A throwaway CA and a server certificate for 127.0.0.1 / localhost / mosquitto, made with the
`openssl` command (the `cryptography` package is not a dependency), for brokers with a TLS listener."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
# Python's ssl (OpenSSL 3, strict X.509) wants a real CA and a server certificate with its SAN.
_SERVER_EXT = (
    "subjectAltName=DNS:localhost,DNS:mosquitto,IP:127.0.0.1\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth\n"
)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    assert OPENSSL, "openssl is not installed"
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], cwd=directory, check=True, capture_output=True)

    ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]
    subject = ["-subj", "/CN=vigil-test-ca"]
    run("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", *subject, *ca_ext)
    run("req", *_EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "server.ext").write_text(_SERVER_EXT)
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "server.ext")  # fmt: skip
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
