"""What the property tests share: the example count, any JSON value, and damaged bytes."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st


def examples(n: int) -> settings:
    """n examples under the ci profile, as many times more as the profile in use asks."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(n * scale)))


KEYS = st.text(max_size=6)


def json_any(keys=KEYS, biggest: int = 2**70):
    """Any JSON value: null, booleans, integers up to `biggest` either way, floats (NaN and
    infinities too), short text, and lists and objects of them a few levels deep."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-biggest, biggest),
            st.floats(),
            st.text(max_size=8),
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
        ),
        max_leaves=8,
    )


JSON_ANY = json_any()


def damaged(data, good: bytes) -> bytes:
    """`good` cut short at any byte, with one byte flipped, or with bytes inserted (drawn
    from Hypothesis's st.data())."""
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    at = data.draw(st.integers(0, len(good) - 1))
    if how == "cut":
        return good[:at]
    if how == "flip":
        return good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1 :]
    return good[:at] + data.draw(st.binary(min_size=1, max_size=16)) + good[at:]
