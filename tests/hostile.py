"""Hypothesis strategies for hostile input, shared by the property-based tests at every boundary.

Each strategy mixes three kinds of input: the well-formed (so properties also check that valid
input round-trips), the almost well-formed (a valid document truncated or with one value swapped
for a wrong type, the usual device bug), and the arbitrary (random bytes, deep nesting, numbers
at and past every range edge).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bounded so that the whole hostile-input suite runs in well under a minute on two busy cores.
BOUNDED = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Numbers a device or a hand-made message might send: range edges, past-float ints, non-finite.
EDGE_NUMBERS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**400, -(10**400),
     1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, 946_684_800_000, 1_700_000_000, -0.0]
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    EDGE_NUMBERS,
    st.text(max_size=80),
)

# JSON-ish trees; NaN and ±inf and ints past 64 bits are not JSON, so documents that hold them are
# serialised by hand (below) the way a sloppy device would write them.
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6), st.dictionaries(st.text(max_size=20), children, max_size=6)
    ),
    max_leaves=30,
)


# Strictly valid JSON (what a correct device sends): finite floats, integers within 64 bits.
json_safe = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def sloppy_json(value: Any) -> bytes:
    """`value` as JSON when orjson can write it, else as Python's json with NaN/Infinity tokens and
    big integers spelled out (what JavaScript or a C printf would send)."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(value, allow_nan=True).encode()


def nested(depth: int, key: str | None = None) -> bytes:
    """A document `depth` levels deep: lists, or objects under `key` (deep enough to break a
    recursive repr() or a recursive validator, the bug this found in the payload parser)."""
    if key is None:
        return b"[" * depth + b"]" * depth
    return f'{{"{key}":'.encode() * depth + b"1" + b"}" * depth


@st.composite
def truncated(draw: st.DrawFn, documents: st.SearchStrategy[bytes]) -> bytes:
    doc = draw(documents)
    cut = draw(st.integers(min_value=0, max_value=max(0, len(doc) - 1)))
    return doc[:cut]


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A valid document with one field removed, or replaced by a value of another type."""
    doc = draw(documents)
    if not doc:
        return sloppy_json(doc)
    key = draw(st.sampled_from(sorted(doc)))
    if draw(st.booleans()):
        del doc[key]
    else:
        doc[key] = draw(json_values)
    return sloppy_json(doc)


def hostile_bytes(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Everything a boundary must survive, built around `valid` documents of its own format."""
    valid_bytes = valid.map(sloppy_json)
    return st.one_of(
        valid_bytes,
        truncated(valid_bytes),
        mutated(valid),
        json_values.map(sloppy_json),
        st.binary(max_size=300),
        st.builds(
            nested,
            st.integers(min_value=100, max_value=2000),
            st.sampled_from([None, "metrics", "values", "data", "v", "type", "ts", "online", "event"]),
        ),
        st.sampled_from([b"", b" ", b"\x00", b"\xff\xfe", b"null", b"NaN", b'"online"', b"online\x00"]),
    )
