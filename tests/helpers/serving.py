"""Serving endpoints for the endpoint gate tests: a CA and server certificates made with ``cryptography``,
and the :mod:`tests.helpers.serving_app` API started as a real process on a free loopback port."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.env import REPO
from tests.helpers.net import free_port, wait_for_http


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate it signed (for ``names``), and an unrelated CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_pki(directory: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """A CA, a server certificate for ``names`` (IP addresses or DNS names) signed by it, and another CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("aisec test CA")
    _, other_cert = _ca("unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key", directory / "other-ca.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(pem))
    paths.other_ca.write_bytes(other_cert.public_bytes(pem))
    paths.cert.write_bytes(cert.public_bytes(pem))
    paths.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@dataclass
class ServingServer:
    url: str
    token: str
    process: subprocess.Popen

    def reset(self, ca: Path | None = None) -> None:
        """Forget the rate-limit counters (between two gate runs against one server)."""
        import ssl

        import httpx

        verify = ssl.create_default_context(cafile=str(ca)) if ca else True
        httpx.post(f"{self.url}/__reset", verify=verify, timeout=10).raise_for_status()


@contextlib.contextmanager
def running_serving(mode: str, token: str, *, pki: Pki | None = None, tls_min: str = "1.2",
                    tls_max: str = "1.3") -> Iterator[ServingServer]:
    """The serving app in ``mode`` on a free loopback port (https when ``pki`` is given)."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.helpers.serving_app", "--mode", mode, "--port", str(port)]
    if pki is not None:
        cmd += ["--certfile", str(pki.cert), "--keyfile", str(pki.key), "--tls-min", tls_min, "--tls-max", tls_max]
    proc = subprocess.Popen(cmd, cwd=str(REPO), env={**os.environ, "SERVING_TOKEN": token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scheme = "https" if pki is not None else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        _wait(url, pki, proc)
        yield ServingServer(url=url, token=token, process=proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait(url: str, pki: Pki | None, proc: subprocess.Popen) -> None:
    if pki is None:
        wait_for_http(f"{url}/__ready", timeout=60)
        return
    import time

    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serving app exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(f"{url}/__ready", verify=False, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")
