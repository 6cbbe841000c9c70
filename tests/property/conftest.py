"""Hypothesis settings for the property tests, and the property they all share.

The "ci" profile is what `make test` runs: a fixed example count per test (each test
names its own with examples(n), 60 to 300), a deadline per example that catches a parser
stuck in a loop, a derandomized search so that CI sees the same examples every run, and
no example database, so nothing is written into the repository. HYPOTHESIS_PROFILE=deep
runs ten times the examples, freshly random each run, for a local bug hunt.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, settings

from mlplab.errors import MlplabError

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=timedelta(seconds=2),  # generous: two cores are shared by several test runs
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "deep",
    parent=settings.get_profile("ci"),
    max_examples=2000,
    derandomize=False,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def clean():
    """clean(parse, *args, names=...): the property every parser here must have."""
    return clean_outcome


def clean_outcome(parse, *args, names: tuple[str, ...], **kwargs):
    """parse(*args): its result, or None when it raised an MlplabError whose message is one
    line naming the input (one of `names`). Any other exception fails the test."""
    try:
        result = parse(*args, **kwargs)
    except MlplabError as e:
        event(f"refused: {type(e).__name__}")
        message = str(e)
        assert "\n" not in message, f"a multi-line error: {message!r}"
        assert any(n in message for n in names), f"{message!r} names none of {names}"
        return None
    event("accepted")
    return result
