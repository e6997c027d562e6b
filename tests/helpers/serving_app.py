"""A small model-serving API (FastAPI on uvicorn) in an insecure and a hardened configuration, for the
endpoint gate tests.

Run it as a real process: ``python -m tests.helpers.serving_app --mode hardened --port N [--certfile C
--keyfile K --tls-min 1.2 --tls-max 1.3]`` (the token comes from ``SERVING_TOKEN``);
:func:`tests.helpers.serving.running_serving` starts one on a free loopback port.

hardened: every path needs ``Authorization: Bearer <token>`` (401 otherwise), no artefact / debug
    path, no docs page, CORS only for ``https://app.example``, 429 after 10 requests to one path (until
    ``POST /__reset``), 413 for a body over 1 MiB, and an OpenAPI document whose secured operations are
    all enforced.
insecure: ``POST /v1/predict`` needs no credentials, ``GET /v1/models`` takes any token, ``GET
    /v1/admin`` declares security in the OpenAPI document without enforcing it, ``/model``,
    ``/.git/config`` and ``/debug`` are served, CORS reflects any origin with credentials, no rate
    limit and no body limit.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
import argparse
import os
import secrets
import ssl
from collections import Counter

MAX_BODY = 1024 * 1024
RATE_LIMIT = 10
_VERSIONS = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def build_app(mode: str, token: str):
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse, PlainTextResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    hardened = mode == "hardened"
    app = FastAPI(docs_url="/docs" if not hardened else None, redoc_url=None, openapi_url="/openapi.json")
    bearer = HTTPBearer(auto_error=False)
    hits: Counter = Counter()

    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008 - FastAPI idiom
        if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="unauthorized")

    def any_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008 - FastAPI idiom
        if creds is None:
            raise HTTPException(status_code=401, detail="unauthorized")

    @app.middleware("http")
    async def limits(request: Request, call_next):
        if hardened and not request.url.path.startswith("/__"):
            length = request.headers.get("content-length")
            if length is not None and int(length) > MAX_BODY:
                return PlainTextResponse("too large", status_code=413)
            hits[(request.method, request.url.path)] += 1
            if hits[(request.method, request.url.path)] > RATE_LIMIT:
                return PlainTextResponse("slow down", status_code=429)
        return await call_next(request)

    if hardened:
        app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"], allow_credentials=True,
                           allow_methods=["*"], allow_headers=["*"])
        auth = [Depends(require_token)]
    else:
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"],
                           allow_headers=["*"])
        auth = []

    @app.get("/__ready", include_in_schema=False)
    def ready() -> dict:
        return {"ok": True}

    @app.post("/__reset", include_in_schema=False)
    def reset() -> dict:
        hits.clear()
        return {"ok": True}

    @app.get("/healthz", dependencies=[Depends(require_token)] if hardened else [])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/predict", dependencies=auth)
    async def predict(request: Request) -> dict:
        body = await request.body()
        return {"prediction": len(body) % 2}

    @app.get("/v1/models", dependencies=[Depends(require_token)] if hardened else [Depends(any_token)])
    def models() -> dict:
        return {"models": ["churn"]}

    @app.get("/v1/models/{model_id}", dependencies=[Depends(require_token)] if hardened else [Depends(any_token)])
    def model(model_id: str) -> dict:
        return {"model": model_id}

    if hardened:
        @app.get("/v1/admin", dependencies=[Depends(require_token)])
        def admin() -> dict:
            return {"admin": True}
    else:
        @app.get("/v1/admin", openapi_extra={"security": [{"HTTPBearer": []}]})
        def admin() -> dict:
            return {"admin": True}

        @app.get("/model")
        def artefact() -> PlainTextResponse:
            return PlainTextResponse("weights", media_type="application/octet-stream")

        @app.get("/.git/config")
        def git_config() -> PlainTextResponse:
            return PlainTextResponse("[core]")

        @app.get("/debug")
        def debug() -> JSONResponse:
            return JSONResponse({"env": "redacted"})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["hardened", "insecure"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--tls-min", choices=sorted(_VERSIONS), default="1.2")
    parser.add_argument("--tls-max", choices=sorted(_VERSIONS), default="1.3")
    args = parser.parse_args()
    token = os.environ["SERVING_TOKEN"]
    config = uvicorn.Config(build_app(args.mode, token), host="127.0.0.1", port=args.port, log_level="warning",
                            ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    config.load()
    if config.ssl is not None:
        if _VERSIONS[args.tls_min] < ssl.TLSVersion.TLSv1_2:
            config.ssl.set_ciphers("DEFAULT:@SECLEVEL=0")
        config.ssl.minimum_version = _VERSIONS[args.tls_min]
        config.ssl.maximum_version = _VERSIONS[args.tls_max]
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
