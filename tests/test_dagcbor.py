"""Strict DAG-CBOR: codec-fixtures, our negative cases, encoder refusals, fuzzing, speed."""

from __future__ import annotations

import doctest
import json
import math
import pickle
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_share.errors import CidInvalidError, FormatError
from ipfs_share.formats import dagcbor
from ipfs_share.formats.cid import DAG_CBOR, RAW, cid_for
from ipfs_share.formats.dagcbor import MAX_BLOCK_SIZE, Link, cid_of, decode, encode

DATA = Path(__file__).parent / "data" / "codec-fixtures"
POSITIVE = json.loads((DATA / "dag-cbor-positive.json").read_text(encoding="utf-8"))
NEGATIVE_UPSTREAM = [
    case
    for path in sorted((DATA / "negative-upstream" / "dag-cbor" / "decode").glob("*.json"))
    for case in json.loads(path.read_text(encoding="utf-8"))
]
NEGATIVE_OURS = json.loads((DATA / "negative-ipfs-share.json").read_text(encoding="utf-8"))

RAW_CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
V0_CID = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"


def test_docstring_examples() -> None:
    assert doctest.testmod(dagcbor).failed == 0


# --- codec-fixtures ------------------------------------------------------------------------


def test_fixture_counts() -> None:
    assert len(POSITIVE) == 130
    assert len(NEGATIVE_UPSTREAM) == 1
    assert len({case["name"] for case in NEGATIVE_OURS}) == len(NEGATIVE_OURS)


@pytest.mark.parametrize("fixture", POSITIVE, ids=[f["name"] for f in POSITIVE])
def test_positive_fixture_round_trips(fixture: dict[str, str]) -> None:
    data = bytes.fromhex(fixture["hex"])
    assert cid_for(DAG_CBOR, data) == fixture["cid"]  # the data file itself is intact
    value = decode(data)
    again = encode(value)
    assert again == data
    assert cid_of(value) == fixture["cid"]


@pytest.mark.parametrize(
    "case",
    NEGATIVE_UPSTREAM + NEGATIVE_OURS,
    ids=[c["name"] for c in NEGATIVE_UPSTREAM + NEGATIVE_OURS],
)
def test_negative_fixture_rejected(case: dict[str, str]) -> None:
    with pytest.raises(FormatError) as info:
        decode(bytes.fromhex(case["hex"]))
    assert info.value.code == "format_invalid"
    assert str(info.value).startswith("expected")


def test_values_from_fixtures_decode_as_expected() -> None:
    by_name = {f["name"]: bytes.fromhex(f["hex"]) for f in POSITIVE}
    assert decode(by_name["int-18446744073709551615"]) == 2**64 - 1
    assert decode(by_name["int--11959030306112471732"]) == -11959030306112471732
    assert decode(by_name["float-1.1"]) == 1.1
    assert decode(by_name["map-keysort"]) == {
        "f": 1, "ee": 2, "ddd": 3, "cccc": 4, "bbbbb": 5, "aaaaaa": 6, "aaaaab": 7, "aaaaac": 8,
        "aaaabb": 9,
    }  # fmt: skip
    v0 = decode(by_name["cid-QmQg1v4o9xdT3Q14wh4S7dxZkDjyZ9ssFzFzyep1YrVJBY"])
    assert v0 == Link("QmQg1v4o9xdT3Q14wh4S7dxZkDjyZ9ssFzFzyep1YrVJBY")
    assert v0.cid == "QmQg1v4o9xdT3Q14wh4S7dxZkDjyZ9ssFzFzyep1YrVJBY"
    identity = decode(by_name["cid-bafkqabiaaebagba"])
    assert identity.cid == "bafkqabiaaebagba"


# --- the rules, one by one -----------------------------------------------------------------


def test_map_keys_sort_length_first_then_bytewise() -> None:
    data = encode({"b": 1, "aa": 2, "a": 3, "é": 4, "ab": 5})
    assert list(decode(data)) == ["a", "b", "aa", "ab", "é"]  # "é" is 2 bytes: c3 a9


def test_floats_are_always_64_bit() -> None:
    assert encode(1.5).hex() == "fb3ff8000000000000"
    assert encode(-0.0).hex() == "fb8000000000000000"
    assert encode(1.0).hex() == "fb3ff0000000000000"
    assert type(decode(encode(1.0))) is float  # a float stays a float, never an int


def test_link_encodes_as_tag_42_with_identity_prefix() -> None:
    assert (
        encode(Link(RAW_CID)).hex()
        == "d82a582500015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert encode(Link(V0_CID)).hex().startswith("d82a582300" + "1220")


def test_link_value_semantics() -> None:
    link = Link(RAW_CID)
    assert link == Link(RAW_CID.upper().replace("B", "b", 1).lower())
    assert hash(link) == hash(decode(encode(link)))
    assert repr(link) == f"Link(cid={RAW_CID!r})"
    assert link != RAW_CID
    assert pickle.loads(pickle.dumps(link)) == link
    assert bytes(link) == bytes.fromhex(
        "015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    with pytest.raises(AttributeError):
        link.cid = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        link._raw = b""


def test_link_from_other_bases_is_normalised() -> None:
    base36 = "k2jmtxu61bnhrtj301lw7zizknztocdbeqhxgv76l2q9t36fn9jbzipo"
    assert Link(base36).cid.startswith("b")
    assert decode(encode(Link(base36))) == Link(base36)


def test_link_rejects_garbage() -> None:
    with pytest.raises(CidInvalidError):
        Link("not-a-cid")


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-float("inf"), "-inf"),
        (2**64, "18446744073709551616"),
        (-(2**64) - 1, "-18446744073709551617"),
        ({1: "x"}, "int"),
        ({b"k": 1}, "bytes"),
        ({"k": {2.0: 1}}, "float"),
        ({"s"}, "set"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        (cbor2.undefined, "UndefinedType"),
        (cbor2.CBORSimpleValue(16), "CBORSimpleValue"),
        (cbor2.CBORTag(1, 0), "CBORTag"),
        ([1, [2, {"deep": float("nan")}]], "nan at $[1][1].deep"),
    ],
)
def test_encoder_refuses_values_outside_the_data_model(value: Any, found: str) -> None:
    with pytest.raises(FormatError, match="expected") as info:
        encode(value)
    assert found in str(info.value)


def test_text_that_is_not_unicode_scalar_values_is_refused() -> None:
    with pytest.raises(FormatError):
        encode({"k": "lone surrogate \udc80"})
    with pytest.raises(FormatError):
        encode({"\ud800": 1})


def test_unsorted_keys_name_the_offending_key() -> None:
    with pytest.raises(FormatError, match=r"sorted length-first.*'a' after 'b' at \$\.x\.a$"):
        decode(bytes.fromhex("a16178a2616201616101"))  # {"x": {"b": 1, "a": 1}}


def test_integer_range_edges() -> None:
    for n in (2**64 - 1, -(2**64), 2**63, -(2**63) - 1, 0, -1, 23, 24, 255, 256):
        assert decode(encode(n)) == n


def test_tuples_encode_as_arrays() -> None:
    assert encode((1, 2)) == encode([1, 2])


def test_depth_limit_applies_to_encode_and_decode() -> None:
    ok: Any = None
    for _ in range(dagcbor.MAX_DEPTH):
        ok = [ok]
    assert decode(encode(ok)) == ok
    too_deep = [ok]
    with pytest.raises(FormatError, match="nesting"):
        encode(too_deep)
    with pytest.raises(FormatError):
        decode(b"\x81" + encode(ok))


def test_oversize_input_is_refused_before_parsing() -> None:
    # Garbage that would be a parse error: the size message proves the parser never ran.
    with pytest.raises(FormatError, match=r"at most 2097152 bytes.*found 2097153"):
        decode(b"\xff" * (MAX_BLOCK_SIZE + 1))
    with pytest.raises(FormatError, match="at most 8 bytes"):
        decode(encode("123456789"), max_size=8)
    big = encode(b"x" * (MAX_BLOCK_SIZE - 16))
    assert len(decode(big)) == MAX_BLOCK_SIZE - 16


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(FormatError, match="found str"):
        decode("a0")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="found bytearray"):
        decode(bytearray(b"\xa0"))  # type: ignore[arg-type]


def test_every_tag_but_42_is_refused() -> None:
    """Each tag cbor2 would interpret on its own (dates, bignums, sharing ...) must fail."""

    def tagged(number: int, payload: bytes) -> bytes:
        if number < 24:
            head = bytes([0xC0 | number])
        elif number < 256:
            head = bytes([0xD8, number])
        elif number < 65536:
            head = b"\xd9" + number.to_bytes(2, "big")
        elif number < 2**32:
            head = b"\xda" + number.to_bytes(4, "big")
        else:
            head = b"\xdb" + number.to_bytes(8, "big")
        return head + payload

    payloads = [b"\x00", b"\x41\x00", b"\x61a", b"\x80", b"\xa0", b"\x1a\x51\x4b\x67\xb0"]
    numbers = [*range(70_000), 2**32 - 1, 2**32, 2**63, 2**64 - 1]
    for number in numbers:
        if number == 42:
            continue
        for payload in payloads:
            with pytest.raises(FormatError):
                decode(tagged(number, payload))


# --- fuzzing -------------------------------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.builds(lambda d: Link(cid_for(RAW, d)), st.binary(max_size=8))
)
values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def _decode_or_format_error(data: bytes) -> None:
    try:
        value = decode(data)
    except FormatError:
        return
    # Anything accepted must be exactly the canonical encoding of what it decoded to.
    assert encode(value) == data


@given(values)
@settings(max_examples=300, deadline=None)
def test_round_trip_of_generated_values(value: Any) -> None:
    data = encode(value)
    again = decode(data)
    assert encode(again) == data
    if not (isinstance(value, float) and math.isnan(value)):
        assert _normalise(again) == _normalise(value)


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _decode_or_format_error(data)


@given(values, st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_encodings(value: Any, draw: st.DataObject) -> None:
    data = bytearray(encode(value))
    for _ in range(draw.draw(st.integers(1, 4))):
        action = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw.draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] ^= draw.draw(st.integers(1, 255))
        elif action == "insert":
            data.insert(pos, draw.draw(st.integers(0, 255)))
        elif action == "delete" and data:
            del data[pos]
        elif action == "truncate":
            del data[pos:]
    _decode_or_format_error(bytes(data))


@pytest.mark.fuzz_long
@pytest.mark.timeout(3600)  # the suite's 300 s default would cut the run short
@given(st.one_of(st.binary(max_size=4096), values.map(encode)), st.data())
@settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_long(data: bytes, draw: st.DataObject) -> None:
    """100 000 inputs, about four minutes: ``pytest -m fuzz_long tests/test_dagcbor.py``."""
    mutated = bytearray(data)
    if mutated and draw.draw(st.booleans()):
        mutated[draw.draw(st.integers(0, len(mutated) - 1))] ^= draw.draw(st.integers(1, 255))
    _decode_or_format_error(bytes(mutated))


@pytest.fixture(autouse=True)
def _skip_long_fuzz_unless_selected(request: pytest.FixtureRequest) -> None:
    # The marker is registered in pyproject.toml but not deselected by default: skip here
    # unless the run asked for it with -m.
    if request.node.get_closest_marker("fuzz_long") and "fuzz_long" not in (
        request.config.getoption("-m") or ""
    ):
        pytest.skip("long fuzz run; select it with -m fuzz_long")
