"""The gateway's allocator settings: applied on glibc, left alone when the operator set them."""

from __future__ import annotations

import ctypes
import platform

import pytest

from athkit.gateway import allocator


def test_applies_on_glibc_and_respects_the_operators_own_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert allocator.tune_for_streaming() is on_glibc
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda _name: FakeLibc())
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert allocator.tune_for_streaming() is False and calls == []
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))  # musl, say
    assert allocator.tune_for_streaming() is False and calls == []
