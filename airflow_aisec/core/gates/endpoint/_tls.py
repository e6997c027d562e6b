"""TLS checks of the endpoint gate: certificate chain, host name, and the lowest version accepted.

Done with the standard library's :mod:`ssl` on a plain socket, before any HTTP request: a server
whose certificate does not verify never receives the token. The downgrade probe offers only the
version just below the policy's minimum (certificate not verified: it tests the protocol, and
nothing is sent over it).
"""

from __future__ import annotations

import socket
import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from airflow_aisec.core.gates.endpoint._client import Endpoint
from airflow_aisec.exceptions import InputDataError, ServiceUnavailableError

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_BELOW = {"1.2": ssl.TLSVersion.TLSv1_1, "1.3": ssl.TLSVersion.TLSv1_2}
#: OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH / X509_V_ERR_IP_ADDRESS_MISMATCH.
_HOSTNAME_CODES = {62, 64}


@dataclass
class TlsOutcome:
    """What the handshakes showed.

    Attributes:
        problems: ``(rule suffix, message)`` pairs: ``tls_certificate``, ``tls_hostname``, ``tls_version``.
        trusted: The certificate verified (chain and, if required, host name): the token may be sent.
        version: Negotiated version of the verified handshake (e.g. ``TLSv1.3``).
        below_min: What the downgrade probe found: ``refused``, ``accepted`` or ``not_probed``.
    """

    problems: list[tuple[str, str]] = field(default_factory=list)
    trusted: bool = False
    version: str | None = None
    below_min: str = "not_probed"


def verify_context(ca_bundle: str | None, *, verify_hostname: bool, min_version: str) -> ssl.SSLContext:
    """The context every HTTPS probe uses: the CA bundle (or the system store), host name checking,
    and the policy's minimum version.

    Raises:
        InputDataError: the CA bundle is missing or holds no usable certificate.
    """
    if not ca_bundle:
        ctx = ssl.create_default_context()
    else:
        path = Path(ca_bundle)
        if not path.is_file():
            raise InputDataError(f"CA bundle not found: {ca_bundle}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # only the given CAs, not the system store
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError):
            raise InputDataError(f"CA bundle holds no usable PEM certificate: {ca_bundle}") from None
    ctx.check_hostname = verify_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = _VERSIONS[min_version]
    return ctx


def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except TimeoutError:
        raise ServiceUnavailableError(f"endpoint {endpoint.origin} timed out (TLS handshake)") from None
    except OSError as exc:
        raise ServiceUnavailableError(f"endpoint {endpoint.origin} unreachable: {type(exc).__name__}") from None


def _handshake(ctx: ssl.SSLContext, endpoint: Endpoint, timeout: float) -> str | None:
    """One handshake; returns the negotiated version. SSL errors propagate; socket errors are unreachable."""
    from airflow_aisec.core.io.deadline import DeadlineExceeded, within

    sock = _connect(endpoint, timeout)
    try:
        with within(timeout, sock), ctx.wrap_socket(sock, server_hostname=endpoint.host) as tls:
            return tls.version()
    except DeadlineExceeded:
        raise ServiceUnavailableError(
            f"endpoint {endpoint.origin} did not finish the TLS handshake within {timeout:g}s") from None
    except (TimeoutError, ConnectionError) as exc:
        raise ServiceUnavailableError(
            f"endpoint {endpoint.origin} dropped the TLS handshake: {type(exc).__name__}") from None
    finally:
        sock.close()


def check_tls(endpoint: Endpoint, ctx: ssl.SSLContext, *, min_version: str, timeout: float) -> TlsOutcome:
    """Verify the certificate and probe the version below ``min_version`` (two handshakes).

    Raises:
        ServiceUnavailableError: the endpoint cannot be reached.
    """
    out = TlsOutcome()
    try:
        out.version = _handshake(ctx, endpoint, timeout)
        out.trusted = True
    except ssl.SSLCertVerificationError as exc:
        code = getattr(exc, "verify_code", None)
        reason = str(getattr(exc, "verify_message", "") or "verification failed")[:120]
        if code in _HOSTNAME_CODES:
            out.problems.append(("tls_hostname", f"the certificate does not name host '{endpoint.host}' ({reason})"))
        else:
            out.problems.append(("tls_certificate",
                                 f"the certificate chain does not verify against the CA bundle ({reason})"))
    except ssl.SSLError as exc:
        reason = exc.reason or type(exc).__name__
        out.problems.append(("tls_version", f"no TLS {min_version}+ handshake with the endpoint ({reason})"))
    out.below_min = _probe_below(endpoint, min_version, timeout)
    if out.below_min == "accepted":
        below = "1.1" if min_version == "1.2" else "1.2"
        out.problems.append(("tls_version", f"the endpoint accepts TLS {below}, below the policy's minimum {min_version}"))
    return out


def _probe_below(endpoint: Endpoint, min_version: str, timeout: float) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        below = _BELOW[min_version]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 is the point of the probe
            if below < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
            ctx.minimum_version = below
            ctx.maximum_version = below
    except (ssl.SSLError, ValueError):
        return "not_probed"  # the local TLS library cannot offer that version
    try:
        _handshake(ctx, endpoint, timeout)
    except ssl.SSLError as exc:
        if "NO_PROTOCOLS_AVAILABLE" in str(exc.reason or ""):
            return "not_probed"
        return "refused"
    return "accepted"
