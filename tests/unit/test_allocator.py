"""The gateway's memory settings: the allocator's applied on glibc and left alone when the
operator set them; the collector's freeze start-up's objects and keep a higher threshold."""

from __future__ import annotations

import ctypes
import gc
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


def test_collector_freezes_startup_objects_and_collects_young_less_often() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        allocator.tune_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (allocator.GC_YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # an operator's (or a library's) higher setting stays
        allocator.tune_collector()
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
