"""What the proxy's per-request helpers promise: request ids, security headers, the tracing
check. They were made cheaper for the hot path; these pin the behaviour that must not change."""

from __future__ import annotations

import os
import re

import pytest

from athkit.core import secrets, tracing
from athkit.web.security_headers import HTML_CSP, with_security_headers

ID = re.compile(r"^[A-Za-z0-9_-]{16}$")


def test_identifiers_are_url_safe_and_do_not_repeat() -> None:
    ids = [secrets.new_identifier(12) for _ in range(5000)]  # crosses several pool refills
    assert all(ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert tracing.REQUEST_ID_PATTERN.match(ids[0])  # a made id is accepted back as sent


def test_a_forked_child_does_not_repeat_its_parents_identifiers() -> None:
    secrets.new_identifier(12)  # the pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, secrets.new_identifier(12).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child != secrets.new_identifier(12)


def test_security_headers_added_once_and_never_overwritten() -> None:
    json_reply = with_security_headers([(b"content-type", b"application/json")], True)
    names = [n for n, _ in json_reply]
    assert names.count(b"x-content-type-options") == 1
    assert b"content-security-policy" not in names  # HTML only
    page = dict(with_security_headers([(b"content-type", b"text/html; charset=utf-8")], True))
    assert page[b"content-security-policy"] == HTML_CSP.encode()
    assert page[b"x-frame-options"] == b"DENY"
    own = dict(
        with_security_headers(
            [(b"content-type", b"text/html"), (b"Content-Security-Policy", b"script-src 'self'")],
            True,
        )
    )
    assert b"content-security-policy" not in own  # the page's own policy (any case) is kept
    assert own[b"Content-Security-Policy"] == b"script-src 'self'"
    host_page = dict(with_security_headers([(b"content-type", b"text/html")], False))
    assert b"content-security-policy" not in host_page  # native mode: not athkit's page


def test_tracing_check_sees_an_sdk_installed_after_start(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeSDKProvider:  # anything but the API's proxy provider counts as installed
        pass

    clock = [1000.0]
    monkeypatch.setattr(tracing.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(tracing, "_configured", False)
    monkeypatch.setattr(tracing, "_sdk_seen", False)
    monkeypatch.setattr(tracing, "_looked_at", float("-inf"))
    provider: list[object] = [tracing.trace.ProxyTracerProvider()]
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", lambda: provider[0])
    assert tracing.tracing_enabled() is False
    provider[0] = FakeSDKProvider()
    assert tracing.tracing_enabled() is False  # within the recheck interval: not asked again
    clock[0] += tracing.RECHECK_SECONDS
    assert tracing.tracing_enabled() is True
    provider[0] = tracing.trace.ProxyTracerProvider()
    clock[0] += 10 * tracing.RECHECK_SECONDS
    assert tracing.tracing_enabled() is True  # a provider once set stays set
