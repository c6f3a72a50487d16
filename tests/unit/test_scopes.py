"""effective = agent_approved ∩ user_consented ∩ requested (PROTOCOL.md §1, §6), and scope syntax."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from athkit.protocol.scopes import intersect_scopes, is_valid_scope

# A small alphabet so the three lists overlap often.
scope = st.sampled_from(
    ["products:read", "cart:read", "cart:write", "orders:read", "orders:write", "email", "a"]
)
scopes = st.lists(scope, max_size=10)


@given(scopes, scopes, scopes)
def test_effective_is_subset_of_each_set(a: list[str], c: list[str], r: list[str]) -> None:
    eff = set(intersect_scopes(a, c, r).effective)
    assert eff <= set(a)
    assert eff <= set(c)
    assert eff <= set(r)


@given(scopes, scopes, scopes)
def test_effective_equals_set_intersection(a: list[str], c: list[str], r: list[str]) -> None:
    assert set(intersect_scopes(a, c, r).effective) == set(a) & set(c) & set(r)


@given(scopes, scopes, scopes)
def test_effective_follows_requested_order(a: list[str], c: list[str], r: list[str]) -> None:
    eff = list(intersect_scopes(a, c, r).effective)
    first_index = {s: i for i, s in reversed(list(enumerate(r)))}
    positions = [first_index[s] for s in eff]
    assert positions == sorted(positions)


@given(scopes, scopes, scopes)
def test_no_duplicates_anywhere(a: list[str], c: list[str], r: list[str]) -> None:
    res = intersect_scopes(a, c, r)
    for part in (res.effective, res.agent_approved, res.user_consented, res.requested):
        assert len(part) == len(set(part))


@given(scopes, scopes, scopes)
def test_commutative_over_approved_and_consented(a: list[str], c: list[str], r: list[str]) -> None:
    # Who said yes first does not matter: swapping the two decisions gives the same token.
    assert intersect_scopes(a, c, r).effective == intersect_scopes(c, a, r).effective


@given(scopes, scopes, scopes, st.integers(0, 2))
def test_empty_if_any_set_is_empty(a: list[str], c: list[str], r: list[str], which: int) -> None:
    args = [a, c, r]
    args[which] = []
    assert intersect_scopes(*args).effective == ()


@given(scopes, scopes, scopes)
def test_idempotent(a: list[str], c: list[str], r: list[str]) -> None:
    eff = intersect_scopes(a, c, r).effective
    assert intersect_scopes(eff, eff, eff).effective == eff
    assert intersect_scopes(a, c, eff).effective == eff
    assert intersect_scopes(eff, eff, r).effective == eff


def test_breakdown_as_response_keeps_each_party_deduplicated_in_order() -> None:
    res = intersect_scopes(
        ["products:read", "cart:write", "products:read"],
        ["cart:write", "products:read"],
        ["cart:write", "orders:write", "products:read", "cart:write"],
    )
    assert res.effective == ("cart:write", "products:read")
    assert res.as_response() == {
        "agent_approved": ["products:read", "cart:write"],
        "user_consented": ["cart:write", "products:read"],
        "effective": ["cart:write", "products:read"],
    }


def test_generators_are_accepted() -> None:
    res = intersect_scopes(iter(["a", "b"]), (s for s in ["b", "a"]), iter(["b"]))
    assert res.effective == ("b",)


@pytest.mark.parametrize(
    "value",
    [
        "products:read",
        "openid",
        "a",
        "x" * 128,
        "read:user/email",
        "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
    ],
)
def test_valid_scope_tokens(value: str) -> None:
    assert is_valid_scope(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "two words",
        'quote"d',
        "back\\slash",
        "tab\there",
        "new\nline",
        "trailing\n",
        "del\x7f",
        "nul\x00",
        "caf\u00e9",
        "emoji\U0001f600",
        "x" * 129,
    ],
)
def test_invalid_scope_tokens(value: str) -> None:
    assert not is_valid_scope(value)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128
    )
)
def test_scope_token_charset_property(value: str) -> None:
    # RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E, i.e. visible ASCII minus '"' and '\'.
    assert is_valid_scope(value) == ('"' not in value and "\\" not in value)
