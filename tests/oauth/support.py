"""Helpers for the OAuth/MCP tests: a loopback TLS host for client ID metadata documents,
the example MCP server loaded from examples/, and a user who answers the consent page."""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from athkit.demo.browser import HTTPBrowser
from athkit.web.serving import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]


def loopback_tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "athkit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@dataclass
class MetadataHost:
    """An https server on 127.0.0.1 serving client ID metadata documents."""

    server: BackgroundServer
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def publish(self, path: str, **fields: Any) -> str:
        url = self.base + path
        self.docs[path] = {"client_id": url, **fields}
        return url


def start_metadata_host(cert: Path, key: Path) -> MetadataHost:
    app = FastAPI()
    host = MetadataHost(BackgroundServer(app, ssl_certfile=str(cert), ssl_keyfile=str(key)))

    @app.get("/{path:path}")
    def doc(path: str) -> JSONResponse:
        body = host.docs.get("/" + path)
        if body is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(body, headers={"Cache-Control": "max-age=300"})

    host.server.start()
    return host


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / name)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ConsentingUser:
    """Bob, signed in to the service, answering each consent page as told (over HTTP)."""

    def __init__(self, user: str = "bob") -> None:
        self.browser = HTTPBrowser("unused", "unused")
        self.browser.http.cookies.set("notes_user", user, domain="127.0.0.1")
        self.answers: list[tuple[bool, list[str] | None]] = []
        self.pages: list[Any] = []
        self.redirects: list[str] = []

    def answer(self, authorization_url: str) -> str:
        """Open the authorization URL, decide, and return the redirect to the client."""
        approve, scopes = self.answers.pop(0) if self.answers else (True, None)
        page = self.browser.open_consent(authorization_url)
        self.pages.append(page)
        resp = self.browser.decide(approve=approve, scopes=scopes)
        assert resp.is_redirect, resp.text[:500]
        location = resp.headers["location"]
        self.redirects.append(location)
        return location

    def close(self) -> None:
        self.browser.close()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def form_post(url: str, data: dict[str, str], **kw: Any) -> httpx.Response:
    return httpx.post(url, data=data, timeout=10, **kw)
