"""Example Mail: a small "real" resource API protected by the upstream OpenID provider.

The API that ``athkit demo --gateway`` (and the gateway tests and ``bench/proxy.py``) put
behind the gateway; it knows nothing about ATH. It accepts only JWT access tokens (RFC 9068,
``typ: at+jwt``) issued by ``issuer`` for ``resource``: the signature is checked against the
provider's JWKS (found through its discovery document), and ``iss``, ``aud``, ``exp`` and the
route's scope are enforced.

Routes (scope):
  GET    /v1/me                 (api:read)  -> {"sub", "scope", "client_id"}
  GET    /v1/messages           (api:read)  -> {"items", "query", "params"} (query echoed)
  POST   /v1/messages           (api:write) -> 201 {"method", "body", "content_type", "sub"}
  PUT    /v1/messages/{id}      (api:write) -> {"method", "id", "body", "content_type", "sub"}
  DELETE /v1/messages/{id}      (api:write) -> {"method", "id", "sub"}
  GET    /v1/download?size=N    (api:read)  -> N bytes streamed in 64 KiB chunks
                                             (content = download_bytes(N))
  POST   /v1/upload             (api:write) -> {"bytes", "sha256"} of the streamed body
  GET    /v1/headers            (api:read)  -> {"headers": {lower-name: value}, "raw": [[k, v]]}

Failures: 401 {"error": "invalid_token"} (missing/bad/expired/foreign token),
403 {"error": "insufficient_scope"}; both with a ``WWW-Authenticate: Bearer`` header.

The last ``history`` requests that reached the app (authorized or not; 1000 by default, 0 for
none) are kept in ``app.state.requests`` as {"method", "path", "query", "authorization"} so
tests can assert whether, and with what, the gateway called upstream. From a BackgroundServer:
``server.server.config.app.state.requests``. The recording is a plain ASGI wrapper, so a long
run under load neither grows memory nor pays for a middleware per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from joserfc import jwt
from joserfc.jwk import KeySet

CHUNK = 64 * 1024
_PATTERN = bytes(range(251)) * (CHUNK // 251 + 2)


def download_bytes(size: int, offset: int = 0) -> bytes:
    """The exact body GET /v1/download?size=N streams: byte i is ``i % 251``."""
    out = bytearray()
    while len(out) < size:
        start = (offset + len(out)) % 251
        out += _PATTERN[start : start + min(size - len(out), CHUNK)]
    return bytes(out)


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class JWKSCache:
    """The provider's signing keys, fetched via discovery; refetched on an unknown ``kid``."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            meta = (await client.get(f"{self.issuer}/.well-known/openid-configuration")).json()
            if meta.get("issuer") != self.issuer:
                raise RuntimeError(f"discovery issuer mismatch: {meta.get('issuer')!r}")
            jwks = (await client.get(meta["jwks_uri"])).json()
        self._keys = KeySet.import_key_set(jwks)
        self._kids = {k["kid"] for k in jwks["keys"] if "kid" in k}

    async def get(self, kid: str | None) -> KeySet:
        async with self._lock:
            if self._keys is None or (kid is not None and kid not in self._kids):
                await self._fetch()
            assert self._keys is not None
            return self._keys


def _b64json(segment: str) -> dict[str, Any]:
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class RequestHistory:
    """ASGI wrapper keeping the last ``size`` requests (method, path, query, authorization)."""

    def __init__(self, app: Any, requests: deque[dict[str, Any]]) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.requests.maxlen:
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            self.requests.append(
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "authorization": auth.decode("latin-1") if auth is not None else None,
                }
            )
        await self.app(scope, receive, send)


def create_resource_api(issuer: str, resource: str, *, history: int = 1000) -> FastAPI:
    app = FastAPI(title="Example Mail API")
    app.state.requests = deque(maxlen=history)
    app.add_middleware(RequestHistory, requests=app.state.requests)
    jwks = JWKSCache(issuer)

    @app.exception_handler(TokenError)
    async def token_error(_request: Request, exc: TokenError) -> JSONResponse:
        challenge = f'Bearer error="{exc.error}", error_description="{exc.description}"'
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers={"WWW-Authenticate": challenge},
        )

    async def verify(request: Request) -> dict[str, Any]:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError(401, "invalid_token", "missing bearer token")
        token = token.strip()
        try:
            header = _b64json(token.split(".")[0])
        except Exception as exc:
            raise TokenError(401, "invalid_token", "malformed token") from exc
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise TokenError(401, "invalid_token", "not a JWT access token")
        try:
            keys = await jwks.get(header.get("kid"))
            decoded = jwt.decode(token, keys, algorithms=["RS256", "PS256", "ES256", "EdDSA"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": issuer},
                aud={"essential": True, "value": resource},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except Exception as exc:
            raise TokenError(401, "invalid_token", type(exc).__name__) from exc
        return dict(decoded.claims)

    def scope(required: str) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def check(claims: dict[str, Any] = Depends(verify)) -> dict[str, Any]:
            if required not in str(claims.get("scope", "")).split():
                raise TokenError(403, "insufficient_scope", f"requires {required}")
            return claims

        return check

    read = scope("api:read")
    write = scope("api:write")

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    @app.get("/v1/me")
    async def me(claims: dict[str, Any] = Depends(read)) -> dict[str, Any]:
        return {
            "sub": claims["sub"],
            "scope": claims.get("scope"),
            "client_id": claims.get("client_id"),
        }

    @app.get("/v1/messages")
    async def list_messages(
        request: Request, claims: dict[str, Any] = Depends(read)
    ) -> dict[str, Any]:
        return {
            "items": [
                {"id": "1", "from": claims["sub"], "text": "hello"},
                {"id": "2", "from": claims["sub"], "text": "world"},
            ],
            "query": request.url.query,
            "params": [[k, v] for k, v in request.query_params.multi_items()],
        }

    @app.post("/v1/messages", status_code=201)
    async def create_message(
        request: Request, claims: dict[str, Any] = Depends(write)
    ) -> dict[str, Any]:
        return {
            "method": request.method,
            "body": await body_of(request),
            "content_type": request.headers.get("content-type"),
            "sub": claims["sub"],
        }

    @app.put("/v1/messages/{message_id}")
    async def replace_message(
        message_id: str, request: Request, claims: dict[str, Any] = Depends(write)
    ) -> dict[str, Any]:
        return {
            "method": request.method,
            "id": message_id,
            "body": await body_of(request),
            "content_type": request.headers.get("content-type"),
            "sub": claims["sub"],
        }

    @app.delete("/v1/messages/{message_id}")
    async def delete_message(
        message_id: str, request: Request, claims: dict[str, Any] = Depends(write)
    ) -> dict[str, Any]:
        return {"method": request.method, "id": message_id, "sub": claims["sub"]}

    @app.get("/v1/download")
    async def download(size: int = 0, _claims: dict[str, Any] = Depends(read)) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                n = min(size - sent, CHUNK)
                yield download_bytes(n, sent)
                sent += n

        return StreamingResponse(
            chunks(),
            media_type="application/octet-stream",
            headers={"Content-Length": str(size)},
        )

    @app.post("/v1/upload")
    async def upload(request: Request, _claims: dict[str, Any] = Depends(write)) -> dict[str, Any]:
        digest = hashlib.sha256()
        n = 0
        async for chunk in request.stream():
            digest.update(chunk)
            n += len(chunk)
        return {"bytes": n, "sha256": digest.hexdigest()}

    @app.get("/v1/headers")
    async def headers(request: Request, _claims: dict[str, Any] = Depends(read)) -> dict[str, Any]:
        combined: dict[str, str] = {}
        for key, value in request.headers.items():
            combined[key] = f"{combined[key]}, {value}" if key in combined else value
        return {"headers": combined, "raw": [[k, v] for k, v in request.headers.items()]}

    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m athkit.demo.mail_api --issuer URL --resource URL``: serve on the resource's
    host and port (a separate process, e.g. for ``bench/proxy.py``)."""
    import argparse
    from urllib.parse import urlsplit

    import uvicorn

    from athkit.web.accesslog import uvicorn_log_config

    parser = argparse.ArgumentParser(prog="python -m athkit.demo.mail_api")
    parser.add_argument("--issuer", required=True, help="the OpenID provider's issuer URL")
    parser.add_argument("--resource", required=True, help="this API's URL (the tokens' aud)")
    args = parser.parse_args(argv)
    parts = urlsplit(args.resource)
    app = create_resource_api(args.issuer, args.resource)
    uvicorn.run(
        app,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
        log_level="warning",
        access_log=False,
        log_config=uvicorn_log_config(),
    )


if __name__ == "__main__":
    main()
