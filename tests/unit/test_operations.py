"""Operating pieces without servers: templates, operator accounts, the audit writer and export,
the re-seal after a key rotation (real SQLite databases in temp dirs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyotp
import pytest
from typer.testing import CliRunner

from athkit.cli.main import app as cli
from athkit.core.audit import audit_row
from athkit.core.audit_export import iter_csv
from athkit.core.audit_writer import AuditBatchWriter
from athkit.core.metrics import AUDIT_DROPPED
from athkit.core.operators import SIGNIN_LIMIT, OperatorAccounts
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.gateway.config import parse_config
from athkit.gateway.reseal import reseal_all
from athkit.gateway.service import owner_aad
from athkit.gateway.templates import TEMPLATES, template, template_toml
from athkit.protocol.errors import ATHError
from athkit.store import Database, Store
from athkit.store.models import UpstreamTokenRow
from athkit.store.operators import OperatorExistsError


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(f"sqlite:///{tmp_path / 'athkit.db'}")
    yield d
    d.dispose()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_is_a_valid_provider_table(name: str) -> None:
    import tomllib

    table = tomllib.loads(template_toml(name))["providers"][0]
    assert table == template(name)
    cfg = parse_config({"gateway": {"public_url": "https://gw.example"}, "providers": [table]})
    p = cfg.providers[0]
    assert p.api_base.startswith("https://") and p.routes
    assert all(s.description for s in p.scopes.values())
    # Conservative: every route names one scope, and writes never hide behind a read scope.
    for r in p.routes:
        if r.method != "GET":
            assert not r.scope.endswith((".read", ":read", ":profile")), r


def test_add_provider_appends_a_template(tmp_path: Path) -> None:
    target = tmp_path / "gateway.toml"
    target.write_text('[gateway]\npublic_url = "https://gw.example"\n')
    ok = CliRunner().invoke(cli, ["gateway", "add-provider", "github", "-c", str(target)])
    assert ok.exit_code == 0, ok.output
    again = CliRunner().invoke(cli, ["gateway", "add-provider", "github", "-c", str(target)])
    assert again.exit_code == 1
    import tomllib

    data = tomllib.loads(target.read_text())
    assert data["providers"][0]["token_endpoint"] == "https://github.com/login/oauth/access_token"
    assert parse_config(data).providers[0].user_id_claim == "id"


def test_operator_password_totp_and_sign_in_limits(db: Database) -> None:
    rows = []
    start = time.time()  # one fixed-window slot for the whole test, however slow the machine
    accounts = OperatorAccounts(db, audit=rows.append, clock=lambda: start)
    with pytest.raises(ValueError):
        accounts.create("short", "2short")
    made = accounts.create("olivia", "a long enough password", totp=True)
    assert made.totp_secret and made.totp_uri and made.totp_uri.startswith("otpauth://totp/")
    with pytest.raises(OperatorExistsError):
        accounts.create("olivia", "another long password")
    stored = accounts.store.get("olivia")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert "a long enough password" not in stored.password_hash

    code = pyotp.TOTP(made.totp_secret).now()
    with pytest.raises(ATHError) as no_code:
        accounts.sign_in("olivia", "a long enough password", None, "10.0.0.1")
    assert no_code.value.code_str == "ADMIN_UNAUTHORIZED"
    token = accounts.sign_in("olivia", "a long enough password", code, "10.0.0.1")
    assert accounts.operator_for(token) == "olivia"
    assert accounts.operator_for(token + "x") is None
    accounts.sign_out(token)
    assert accounts.operator_for(token) is None

    for _ in range(SIGNIN_LIMIT - 2):  # two attempts used above
        with pytest.raises(ATHError):
            accounts.sign_in("olivia", "wrong", code, "10.0.0.2")
    with pytest.raises(ATHError) as limited:  # the name is throttled, whatever the address
        accounts.sign_in("olivia", "a long enough password", code, "10.0.0.3")
    assert limited.value.code_str == "RATE_LIMITED"
    events = [(r.event, r.outcome, r.details["operator"]) for r in rows]
    assert ("operator_signed_in", "ok", "olivia") in events
    assert ("operator_signin_failed", "rate_limited", "olivia") in events
    assert all("password" not in json.dumps(r.details) for r in rows)


def test_audit_writer_batches_and_counts_overflow(db: Database) -> None:
    store = Store(db)
    blocked: list[int] = []

    def slow_write(rows):  # type: ignore[no-untyped-def]
        blocked.append(len(rows))
        store.add_audit_many(rows)

    writer = AuditBatchWriter(slow_write, max_queue=100, interval=30)
    before = AUDIT_DROPPED.labels("proxy_request")._value.get()
    accepted = sum(
        writer.submit(audit_row(time.time(), "proxy_request", "forwarded")) for _ in range(150)
    )
    assert accepted == 100  # the rest were dropped, not waited for
    assert AUDIT_DROPPED.labels("proxy_request")._value.get() - before == 50
    writer.close()  # flushes what is queued
    assert sum(blocked) == 100 and max(blocked) <= 500
    assert len(store.list_audit(limit=1000)) == 100

    sampled = AuditBatchWriter(store.add_audit_many, sample=0.0, interval=30)
    assert not sampled.submit(audit_row(time.time(), "proxy_request", "forwarded"))
    assert sampled.submit(audit_row(time.time(), "scope_violation", "refused"))
    sampled.close()


def test_csv_export_neutralises_formulas(db: Database) -> None:
    store = Store(db)
    store.add_audit(audit_row(time.time(), "access_denied", "refused", reason="=HYPERLINK(1)"))
    text = "".join(iter_csv(store.list_audit()))
    assert text.splitlines()[0].startswith("id,timestamp,event,outcome")
    assert ",'=HYPERLINK(1)," in text


def test_audit_cli_filters_and_json_export(db: Database, tmp_path: Path) -> None:
    store = Store(db)
    store.add_audit(
        audit_row(time.time(), "token_revoked", "revoked", agent_id="https://a.example/agent")
    )
    store.add_audit(
        audit_row(time.time(), "access_granted", "granted", agent_id="https://b.example/agent")
    )
    out = CliRunner().invoke(
        cli,
        ["audit", "--database-url", db.url, "--event", "token_revoked", "--format", "json"],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["event"] for r in rows] == ["token_revoked"]
    bad = CliRunner().invoke(cli, ["audit", "--database-url", db.url, "--since", "yesterday"])
    assert bad.exit_code == 2


def test_reseal_moves_every_token_to_the_new_key(db: Database) -> None:
    old = new_key_spec("k1")
    before = TokenSealer.from_spec(old)
    store = Store(db)
    aad = owner_aad("ath_c", "alice", "mail")
    store.save_upstream_token(
        UpstreamTokenRow(
            client_id="ath_c",
            user_id="alice",
            provider_id="mail",
            access_token=before.seal("upstream-access", aad),
            refresh_token=before.seal("upstream-refresh", aad),
            token_type="Bearer",
            scope="api:read",
            expires_at=None,
            updated_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
        )
    )
    rotated = TokenSealer.from_spec(f"{new_key_spec('k2')},{old}")
    report = reseal_all(db, rotated)
    assert (report.checked, report.resealed, report.unreadable) == (1, 1, 0)
    row = store.get_upstream_token("ath_c", "alice", "mail")
    assert row is not None and row.access_token.split(".")[1] == "k2"
    only_new = TokenSealer.from_spec(f"{new_key_spec('k3')}")
    assert rotated.open(row.refresh_token or "", aad) == "upstream-refresh"
    assert reseal_all(db, rotated).resealed == 0  # already on the primary key
    assert reseal_all(db, only_new).unreadable == 2  # reported, never deleted


def test_request_id_kept_or_made_and_on_json_log_lines() -> None:
    import asyncio
    import logging

    from athkit.core.tracing import JSONLogFormatter, RequestIdFilter
    from athkit.web.request_id import RequestIdMiddleware

    seen: list[str] = []
    log = logging.getLogger("athkit.test.request_id")

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        record = log.makeRecord(log.name, logging.INFO, __file__, 1, "hello %s", ("x",), None)
        RequestIdFilter().filter(record)
        seen.append(JSONLogFormatter().format(record))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call(header: bytes | None) -> dict[bytes, bytes]:
        sent: list[dict] = []  # type: ignore[type-arg]
        headers = [(b"x-request-id", header)] if header else []
        scope = {"type": "http", "method": "GET", "path": "/ath/x", "headers": headers}

        async def receive():  # type: ignore[no-untyped-def]
            return {"type": "http.request", "body": b""}

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message)

        await RequestIdMiddleware(app)(scope, receive, send)
        return dict(sent[0]["headers"])

    kept = asyncio.run(call(b"nginx-0123456789abcdef"))
    assert kept[b"x-request-id"] == b"nginx-0123456789abcdef"
    line = json.loads(seen[-1])
    assert line["request_id"] == "nginx-0123456789abcdef" and line["message"] == "hello x"
    made = asyncio.run(call(b"bad id\r\nwith newline"))[b"x-request-id"]
    assert made != b"bad id\r\nwith newline" and len(made) >= 16
    assert json.loads(seen[-1])["request_id"] == made.decode()


def test_gateway_and_registry_can_share_one_database(tmp_path: Path) -> None:
    from athkit.registry.db import RegistryDatabase

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    core = Database(url)
    OperatorAccounts(core).create("shared-op", "a long enough password")
    registry = RegistryDatabase(url)  # its r0003 finds the operator tables and keeps them
    assert OperatorAccounts(registry).store.get("shared-op") is not None
    core.dispose()
    registry.dispose()
