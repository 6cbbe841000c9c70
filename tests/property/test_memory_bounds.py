"""Allocation bounds, enforced: every parser mlplab runs on a file or a request (IDX,
safetensors, PNG and JPEG decoding, JSON, multipart, training states) meets its worst input
in a process whose address space is capped (RLIMIT_AS) at what it uses plus 768 MiB, and
answers with its clean error: never a MemoryError, never a kill. A control case allocating
past the cap shows that the cap is real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEADROOM_MIB = 768
CHILD = Path(__file__).with_name("bounded_child.py")


def test_every_parser_stays_under_the_cap():
    done = subprocess.run(
        [sys.executable, str(CHILD), str(HEADROOM_MIB)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["case"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert results.pop("control: 2 GiB past the cap")["outcome"] == "MemoryError"
    assert results.pop("JSON: 1024 rows of 784 pixels")["outcome"] == "ok"  # the largest legal
    for name, result in results.items():
        assert result["outcome"] == "error", (name, result)
        assert "\n" not in result["detail"], (name, result)
    assert len(results) == 11
