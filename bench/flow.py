"""End-to-end ATH flows per second: register → authorize → consent → token (§4–§6).

  .venv/bin/python bench/flow.py [--quick]

Each flow is a new agent (fresh P-256 key, identity document published on the identity host:
an agent_id registers only once), driven by ``athkit.client.ATHClient`` over one keep-alive
``httpx.Client``; the user's side is an ``HTTPBrowser`` over real HTTP. Two scenarios:

* signed-in user: one browser, signed in during warm-up, answers every consent page;
* fresh browser: a new browser per flow, so the consent step includes the shop's sign-in
  (its scrypt password check is deliberately slow).

Flows run one after another; flows/s counts the whole loop (agent creation included).
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
from common import (
    CONSENT_PARTS,
    STEPS,
    Env,
    FlowResult,
    environment,
    header,
    ms,
    parser,
    percentile,
    run_flow,
    table,
)
from sqlalchemy import event


def run_scenario(
    env: Env, *, fresh_browser: bool, max_flows: int, seconds: float
) -> tuple[list[FlowResult], float]:
    browser = None if fresh_browser else env.browser()
    results: list[FlowResult] = []
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while len(results) < max_flows and time.perf_counter() < deadline:
            results.append(run_flow(env, browser=browser))
        wall = time.perf_counter() - start
    finally:
        if browser is not None:
            browser.close()
    return results, wall


def report(title: str, results: list[FlowResult], wall: float) -> None:
    totals = [r.total for r in results]
    mean_total = sum(totals) / len(totals)
    print(f"{title}: {len(results)} flows in {wall:.2f} s = {len(results) / wall:.1f} flows/s")
    rows = []
    for step in (*STEPS[:3], *CONSENT_PARTS, *STEPS[3:]):
        d = [r.steps[step] for r in results]
        mean = sum(d) / len(d)
        rows.append(
            [
                "  " + step if step in CONSENT_PARTS else step,
                ms(percentile(d, 50)),
                ms(percentile(d, 99)),
                ms(mean),
                f"{100 * mean / mean_total:.0f}%",
            ]
        )
    rows.append(
        [
            "whole flow",
            ms(percentile(totals, 50)),
            ms(percentile(totals, 99)),
            ms(mean_total),
            "100%",
        ]
    )
    print(table(["step", "p50 ms", "p99 ms", "mean ms", "share"], rows))
    print()


def count_work(env: Env, flows: int) -> None:
    """HTTP requests (agent + browser) and SQL statements/commits per step, untimed pass."""
    counts: Counter[str] = Counter()
    engine = env.service.store.db.engine

    def on_sql(*_args: object) -> None:
        counts["sql"] += 1

    def on_commit(*_args: object) -> None:
        counts["commit"] += 1

    def on_request(_request: httpx.Request) -> None:
        counts["http"] += 1

    per_step: dict[str, Counter[str]] = {s: Counter() for s in (*STEPS, *CONSENT_PARTS)}
    last = Counter(counts)

    def on_step(name: str) -> None:
        nonlocal last
        if name == "consent":  # its parts are counted; summed below
            return
        per_step[name] += counts - last
        last = Counter(counts)

    browser = env.browser()
    run_flow(env, browser=browser)  # sign in outside the counted flows
    event.listen(engine, "before_cursor_execute", on_sql)
    event.listen(engine, "commit", on_commit)
    env.agent_http.event_hooks["request"].append(on_request)
    browser.http.event_hooks["request"].append(on_request)
    try:
        for _ in range(flows):
            last = Counter(counts)
            run_flow(env, browser=browser, on_step=on_step)
    finally:
        event.remove(engine, "before_cursor_execute", on_sql)
        event.remove(engine, "commit", on_commit)
        env.agent_http.event_hooks["request"].remove(on_request)
        browser.close()
    per_step["consent"] = per_step[CONSENT_PARTS[0]] + per_step[CONSENT_PARTS[1]]
    rows = []
    for step in (*STEPS[:3], *CONSENT_PARTS, *STEPS[3:]):
        c = per_step[step]
        rows.append(
            [
                "  " + step if step in CONSENT_PARTS else step,
                f"{c['http'] / flows:g}",
                f"{c['sql'] / flows:g}",
                f"{c['commit'] / flows:g}",
            ]
        )
    total = sum((per_step[s] for s in STEPS), Counter())
    rows.append(["whole flow", *(f"{total[k] / flows:g}" for k in ("http", "sql", "commit"))])
    print(f"work per flow (signed-in user, mean of {flows} untimed flows):")
    print(table(["step", "HTTP requests", "SQL statements", "commits"], rows))
    print()


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    header("athkit bench: full ATH flow (register, authorize, consent, token)", args)
    if args.quick:
        warm, signed_in, fresh = 3, (40, 5.0), (8, 3.0)
    else:
        warm, signed_in, fresh = 10, (400, 25.0), (60, 12.0)
    started = time.perf_counter()
    with environment() as env:
        print(
            f"shop at {env.shop_url}, identity host at {env.id_server.url}, "
            f"SQLite in {env.data_dir}"
        )
        print()
        run_scenario(env, fresh_browser=False, max_flows=warm, seconds=10.0)  # warm-up
        results, wall = run_scenario(
            env, fresh_browser=False, max_flows=signed_in[0], seconds=signed_in[1]
        )
        report("signed-in user (one browser, consent only)", results, wall)
        results, wall = run_scenario(env, fresh_browser=True, max_flows=fresh[0], seconds=fresh[1])
        report("fresh browser (consent includes sign-in)", results, wall)
        count_work(env, 3)
    print(f"done in {time.perf_counter() - started:.1f} s; servers stopped, temp dir removed")


if __name__ == "__main__":
    main()
