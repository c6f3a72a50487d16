"""Cost of the 9-step handshake (PROTOCOL.md §10) and of its encrypted channel.

  .venv/bin/python bench/handshake.py [--quick] [--n N]

(a) N sequential handshakes against ATH Shop (real uvicorn, SQLite) with the client SDK. The
    user's approval (steps 6–7) is done programmatically as soon as step 5 answers and is
    **excluded**: the figures are steps 1–5 (four round trips: start, identity, scope, plus
    signature work on both sides) and steps 8–9 (the result poll that finds the approval, and
    the ECDH/HKDF completion). handshakes/s = 1 / mean(steps 1–5 + 8–9); the wall-clock rate
    including the programmatic approval is shown too.
(b) Sequential GET /api/goods over one keep-alive ``httpx.Client`` with the same handshake
    token: encrypted (AES-256-GCM envelope both ways, session lookup, seq update) vs plain
    (bearer only). Measured in alternating rounds; the tracked figure is the p50 ratio.
"""

from __future__ import annotations

import time

import httpx
from common import environment, header, ms, no_gc, parser, percentile, table

from athkit.cli.user import answer_confirmation, fetch_server_did, list_confirmations
from athkit.client import ATHClient
from athkit.client.handshake import HandshakeSession, PendingConfirmation
from athkit.core.handshake_restrictions import Restrictions
from athkit.crypto.credentials import issue
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey

SCOPES = ["goods:read", "order:create"]


def one_handshake(
    shop_url: str, user: AgentKey, server_did: str, user_http: httpx.Client, http: httpx.Client
) -> tuple[HandshakeSession, float]:
    agent = AgentKey.generate("P-256")
    agent_did = did_key_from_jwk(agent.public_jwk())
    cred = issue(user, agent_did, SCOPES, 7200)

    def approve(p: PendingConfirmation) -> None:
        items = [
            i
            for i in list_confirmations(user_http, shop_url, user, server_did)
            if i["request_id"] == p.request_id
        ]
        answer_confirmation(user_http, shop_url, user, items[0], SCOPES)

    client = ATHClient(shop_url, agent_did, agent, http_client=http, api_base=shop_url)
    t0 = time.perf_counter()
    session = client.handshake(SCOPES, cred, on_pending=approve, wait=30)
    return session, time.perf_counter() - t0


def bench_handshakes(shop_url: str, n: int, http: httpx.Client) -> HandshakeSession:
    user = AgentKey.generate("P-256")
    with httpx.Client(timeout=30.0) as user_http:
        server_did = fetch_server_did(user_http, shop_url)
        one_handshake(shop_url, user, server_did, user_http, http)  # warm-up
        s15: list[float] = []
        s89: list[float] = []
        wall: list[float] = []
        session: HandshakeSession | None = None
        for _ in range(n):
            session, total = one_handshake(shop_url, user, server_did, user_http, http)
            t = session.result.timings
            s15.append(t["steps_1_5"])
            s89.append(t.get("step_8_last_poll", 0.0) + t["step_9"])
            wall.append(total)
        assert session is not None
    core = [a + b for a, b in zip(s15, s89, strict=True)]
    rows = [
        ["steps 1–5", ms(percentile(s15, 50)), ms(percentile(s15, 90)), ms(percentile(s15, 99))],
        ["steps 8–9", ms(percentile(s89, 50)), ms(percentile(s89, 90)), ms(percentile(s89, 99))],
        ["1–5 + 8–9", ms(percentile(core, 50)), ms(percentile(core, 90)), ms(percentile(core, 99))],
        [
            "wall (incl. approval)",
            ms(percentile(wall, 50)),
            ms(percentile(wall, 90)),
            ms(percentile(wall, 99)),
        ],
    ]
    print(f"(a) {n} sequential handshakes (user approval excluded from 1–5 and 8–9)")
    print(table(["part", "p50 ms", "p90 ms", "p99 ms"], rows))
    print(f"handshakes/s (1 / mean of steps 1–5 + 8–9): {n / sum(core):.1f}")
    print(f"handshakes/s wall clock incl. programmatic approval: {n / sum(wall):.1f}")
    print()
    return session


def bench_calls(session: HandshakeSession, shop_url: str, quick: bool) -> None:
    rounds, per_round = (10, 50) if quick else (20, 200)
    res = session.result
    plain_headers = {
        "Authorization": f"Bearer {res.access_token}",
        "X-ATH-Agent-ID": res.client_did,
    }
    enc: list[float] = []
    plain: list[float] = []
    clock = time.perf_counter
    with httpx.Client(timeout=10.0) as http:
        for _ in range(20):  # warm-up both paths
            assert http.get(shop_url + "/api/goods", headers=plain_headers).status_code == 200
            assert session.get("/api/goods").status_code == 200
        with no_gc():
            for _ in range(rounds):
                for _ in range(per_round):
                    t0 = clock()
                    r = session.get("/api/goods")
                    enc.append(clock() - t0)
                    assert r.status_code == 200
                for _ in range(per_round):
                    t0 = clock()
                    r = http.get(shop_url + "/api/goods", headers=plain_headers)
                    plain.append(clock() - t0)
                    assert r.status_code == 200
    p50e, p50p = percentile(enc, 50), percentile(plain, 50)
    rows = [
        ["encrypted", str(len(enc)), ms(p50e), ms(percentile(enc, 90)), ms(percentile(enc, 99))],
        ["plain", str(len(plain)), ms(p50p), ms(percentile(plain, 90)), ms(percentile(plain, 99))],
    ]
    print("(b) GET /api/goods with the handshake token, sequential, keep-alive")
    print(table(["call", "n", "p50 ms", "p90 ms", "p99 ms"], rows))
    print(f"encrypted / plain p50 ratio: {p50e / p50p:.2f}")


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--n", type=int, default=0, help="handshakes to time (default 30, quick 10)")
    args = p.parse_args()
    n = args.n or (10 if args.quick else 30)
    header("athkit bench: the 9-step handshake and its encrypted channel", args)
    # the shop's default handshake policy allows 100 calls/s per session: (b) must stay below
    # it, so the rate limit is lifted for the bench app (restrictions are benchmarked elsewhere)
    with environment() as env:
        hs = env.shop_app.state.athkit_handshake
        hs.restrictions = Restrictions()
        with httpx.Client(timeout=30.0) as http:
            session = bench_handshakes(env.shop_url, n, http)
            bench_calls(session, env.shop_url, args.quick)


if __name__ == "__main__":
    main()
