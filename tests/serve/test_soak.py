"""The soak test, bounded: 2,000 requests, 32 at a time, good and bad mixed, against a real
`mlplab serve` on 127.0.0.1 (the 20,000-request form is benchmarks/soak.py)."""

from __future__ import annotations

import json

from benchmarks.serve_soak import mixed_cases, running_server, soak


def test_soak_mixed_good_and_bad_requests(trained_run, mnist):
    cases = mixed_cases(mnist.test.x[0].numpy())
    with running_server(trained_run) as (url, proc):
        # Generous: the machine is shared; the benchmark holds /healthz to 100 ms.
        stats = soak(url, proc.pid, cases, requests=2000, concurrency=32, healthz_p99_ms=500)
    print(f"\nsoak: {json.dumps({k: v for k, v in stats.items() if k != 'by_case'})}")
    assert stats["failures"] == []
    # Every kind of request came up and got its own answer, bad ones included.
    assert set(stats["by_case"]) == {c.name for c in cases}
    for case in cases:
        assert set(stats["by_case"][case.name]) <= {case.expect, 503}, case.name
    assert stats["statuses"]["200"] > 600 and stats["healthz_probes"] > 20
    assert len(stats["rss_mib"]) == 2  # sampled after the first and the last thousand
