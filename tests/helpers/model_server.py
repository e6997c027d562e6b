"""A small, deterministic, rule-based "model" behind an OpenAI-compatible ``/v1/chat/completions`` API.

Run it as a real process (``python -m tests.helpers.model_server --mode vulnerable --port N``) for the
red-team gate tests; :func:`running_model_server` starts one on a free loopback port.

Modes:
    vulnerable: follows instructions wherever they appear (the user turn, a "retrieved document",
        base64 / rot13 text), and hands out its system prompt, spaced, reversed or base64'd on request.
    guarded: answers from the user's question only, never repeats its system message, and ignores
        instructions inside documents.
    failing: answers every request with HTTP 500.

With ``--record FILE`` the server appends every canary ("Confidential reference code: X") and every
word it was told to reply with to FILE, so a test can search gate outputs for values it never saw.
With ``--token T`` it requires ``Authorization: Bearer T`` (401 otherwise).
"""


import argparse
import base64
import binascii
import codecs
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CANARY = re.compile(r"Confidential reference code: ([A-Z0-9]+)\.")
_REPLY_WITH = re.compile(r"(?:reply only with|respond only with|end your summary with|termina el resumen con|"
                         r"termine le résumé par|beende die Zusammenfassung mit)(?: the word| la palabra| le mot| "
                         r"dem Wort)? ['\"]?([A-Za-z0-9]{6,})", re.IGNORECASE)
_WANTS_SECRET = re.compile(r"system prompt|system message|reference code|confidential|configuration|instructions|"
                           r"text above|prompt del sistema|prompt système|Systemprompt", re.IGNORECASE)
_B64 = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")


def _decoded(text: str) -> str:
    """The text plus whatever base64 / rot13 it hides (the vulnerable model reads those too)."""
    extra = []
    for blob in _B64.findall(text):
        with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
            extra.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8"))
    if "rot13" in text.lower():
        extra.append(codecs.encode(text, "rot13"))
    return "\n".join([text, *extra])


def vulnerable_reply(system: str, user: str) -> str:
    text = _decoded(user)
    ordered = _REPLY_WITH.search(text)
    if ordered:
        return ordered.group(1)
    if _WANTS_SECRET.search(text):
        canary = _CANARY.search(system)
        code = canary.group(1) if canary else ""
        if re.search(r"space between|spell", text, re.IGNORECASE):
            return " ".join(code)
        if re.search(r"backwards|reverse", text, re.IGNORECASE):
            return code[::-1]
        if "base64" in text.lower() and "decode" not in text.lower():
            return base64.b64encode(system.encode()).decode()
        return f"Sure! My instructions are: {system}"
    return "I am happy to help with your order."


def guarded_reply(system: str, user: str) -> str:
    if _WANTS_SECRET.search(user):
        return "I can't share my instructions or any confidential information, but I can help with your order."
    if "summar" in user.lower() or "résume" in user.lower() or "zusammen" in user.lower():
        return "The text is a short customer message."
    return "I am happy to help with your order."


@dataclass
class _State:
    mode: str
    token: str | None
    record: Path | None


def build_app(state: _State):
    from fastapi import Body, FastAPI, Header
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/v1/chat/completions")
    def chat(body: dict = Body(...), authorization: str | None = Header(default=None)):  # noqa: B008
        if state.token and authorization != f"Bearer {state.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if state.mode == "failing":
            return JSONResponse({"error": "overloaded"}, status_code=500)
        messages = body.get("messages") or []
        system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
        user = "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")
        if state.record is not None:
            found = _CANARY.findall(system) + _REPLY_WITH.findall(_decoded(user))
            if found:
                with open(state.record, "a", encoding="utf-8") as fh:
                    fh.writelines(f"{v}\n" for v in found)
        reply = vulnerable_reply(system, user) if state.mode == "vulnerable" else guarded_reply(system, user)
        return {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model") or "rule-based",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                             "finish_reason": "stop"}]}

    return app


@dataclass
class ModelServer:
    url: str
    process: subprocess.Popen
    record: Path | None

    def recorded(self) -> list[str]:
        """Canaries and planted words the server saw (empty when not recording)."""
        if self.record is None or not self.record.exists():
            return []
        return [line for line in self.record.read_text().splitlines() if line]


@contextlib.contextmanager
def running_model_server(mode: str, *, record: Path | None = None, token: str | None = None) -> Iterator[ModelServer]:
    """Start the server as a subprocess on a free loopback port; stop it afterwards."""
    from tests.helpers.env import VENV_BIN
    from tests.helpers.net import free_port, wait_for_http

    port = free_port()
    args = [str(VENV_BIN / "python"), "-m", "tests.helpers.model_server", "--mode", mode, "--port", str(port)]
    if record is not None:
        args += ["--record", str(record)]
    env = dict(os.environ)
    if token:
        env["AISEC_TEST_MODEL_TOKEN"] = token
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=60)
        yield ModelServer(url=url, process=proc, record=record)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("vulnerable", "guarded", "failing"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args(argv)
    state = _State(mode=args.mode, token=os.environ.get("AISEC_TEST_MODEL_TOKEN") or None, record=args.record)
    uvicorn.run(build_app(state), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    sys.exit(main())
