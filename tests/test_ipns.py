"""IPNS records built in Python: unit tests with an injected clock, then a real Kubo.

The Kubo part also checks the dag-cbor codec against Kubo's Go codec (block/put, dag/get,
dag/put), since that is where our bytes meet another implementation.
"""

from __future__ import annotations

import doctest
import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ipfs_share.crypto.labels import IPNS_SIGNATURE_V2_PREFIX
from ipfs_share.crypto.signing import SigningKey, VerifyKey
from ipfs_share.errors import FormatError, IpnsRecordInvalidError
from ipfs_share.formats import dagcbor, ipns
from ipfs_share.formats.cid import RAW, cid_for
from ipfs_share.formats.dagcbor import Link, cid_of
from ipfs_share.formats.ipns import (
    MAX_RECORD_SIZE,
    format_rfc3339,
    ipns_name,
    make_record,
    parse_ipns_name,
    parse_rfc3339,
    verify_record,
)
from ipfs_share.formats.protobuf import field_bytes, field_varint, iter_fields

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SEED = bytes(range(32))
KEY = SigningKey.from_seed(SEED)
NAME = ipns_name(KEY.public_key)
VALUE = "/ipfs/bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def record(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "sequence": 3,
        "validity": timedelta(hours=1),
        "ttl_seconds": 60,
        "now": NOW,
    }
    args.update(overrides)
    return make_record(KEY, VALUE, **args)


def fields_of(raw: bytes) -> list[tuple[int, int, int | bytes]]:
    return list(iter_fields(raw))


def data_of(raw: bytes) -> dict[str, Any]:
    data = next(v for n, _, v in fields_of(raw) if n == 9)
    assert isinstance(data, bytes)
    value = dagcbor.decode(data)
    assert isinstance(value, dict)
    return value


def signed_entry(data: dict[str, Any] | bytes, *extra: bytes, key: SigningKey = KEY) -> bytes:
    """An IpnsEntry over ``data`` (a map, or raw bytes signed as they are) plus fields."""
    raw = data if isinstance(data, bytes) else dagcbor.encode(data)
    signature = key.sign(IPNS_SIGNATURE_V2_PREFIX + raw)
    return b"".join(extra) + field_bytes(8, signature) + field_bytes(9, raw)


def good_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Value": VALUE.encode(),
        "Validity": b"2026-11-22T13:00:00Z",
        "ValidityType": 0,
        "Sequence": 3,
        "TTL": 60 * 10**9,
    }
    data.update(overrides)
    return data


def test_docstring_examples() -> None:
    assert doctest.testmod(ipns).failed == 0


# --- names ---------------------------------------------------------------------------------


def test_name_of_the_zero_seed_key() -> None:
    # Cross-checked with multiformats: CIDv1, libp2p-key, identity multihash of
    # PublicKey{Type: Ed25519, Data: 3b6a27bc...}.
    zero = SigningKey.from_seed(bytes(32)).public_key
    assert ipns_name(zero) == "k51qzi5uqu5dhnwe629wdlncpql6frppdpwnz4wtlcw816aysd5wwlk63g4wmh"


def test_name_round_trip_in_several_spellings() -> None:
    from multiformats import CID

    base32 = CID.decode(NAME).encode("base32")
    for spelling in (NAME, "/ipns/" + NAME, base32, "/ipns/" + base32):
        assert parse_ipns_name(spelling) == KEY.public_key


def _name_for_digest(digest: bytes, *, codec: int = 0x72, hash_code: int = 0x00) -> str:
    from multiformats import CID, multihash

    mh = (
        multihash.wrap(digest, "identity")
        if hash_code == 0
        else multihash.digest(digest, "sha2-256")
    )
    return str(CID("base36", 1, codec, mh))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nonsense", "expected an IPNS name"),
        ("/ipns/", "expected an IPNS name"),
        ("example.com", "expected an IPNS name"),
        (cid_for(RAW, b"x"), "expected a libp2p-key"),
        ("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n", "expected a libp2p-key"),
        (_name_for_digest(b"\x08\x00\x12\x04abcd", hash_code=0x12), "expected an identity"),
        (_name_for_digest(field_varint(1, 2) + field_bytes(2, b"\x02" * 33)), "ed25519"),
        (_name_for_digest(field_varint(1, 1) + field_bytes(2, b"\x02" * 31)), "32-byte"),
        (_name_for_digest(field_bytes(2, bytes(KEY.public_key)) + field_varint(1, 1)), "canonical"),
        (
            _name_for_digest(
                field_varint(1, 1) + field_bytes(2, bytes(KEY.public_key)) + b"\x18\x00"
            ),
            "canonical",
        ),
        (_name_for_digest(b"\x08\x01\x12"), "PublicKey"),
    ],
)
def test_bad_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_ipns_name(name)


def test_non_text_name_is_refused() -> None:
    with pytest.raises(FormatError, match="as text"):
        parse_ipns_name(b"k51")  # type: ignore[arg-type]


# --- making records ------------------------------------------------------------------------


def test_record_is_v2_only_with_canonical_data() -> None:
    raw = record()
    assert [(n, w) for n, w, _ in fields_of(raw)] == [(8, 2), (9, 2)]
    data = data_of(raw)
    assert list(data) == ["TTL", "Value", "Sequence", "Validity", "ValidityType"]
    assert data == {
        "TTL": 60_000_000_000,
        "Value": VALUE.encode(),
        "Sequence": 3,
        "Validity": b"2026-11-22T13:00:00Z",
        "ValidityType": 0,
    }


def test_record_vector() -> None:
    """Ed25519 is deterministic, so a fixed key, clock and value give fixed bytes.
    These are the bytes of the worked example in docs/spec/ipns-record.md."""
    raw = make_record(
        SigningKey.from_seed(bytes(32)),
        "/ipfs/bafkqaaa",
        sequence=0,
        validity=datetime(2030, 1, 1, tzinfo=UTC),
        ttl_seconds=300,
    )
    assert raw.hex() == (
        "4240"  # field 8 (signatureV2), 64 bytes
        "0661f6fb4dfc4b1a1ebb776d4abc37e389a44540e5f6fb144e280239057f37bf"
        "02b842860b2b7f103ce598ed3a4cfc7243a45511ae32962132362820d49a9b0a"
        "4a59"  # field 9 (data), 89 bytes
        "a5" "6354544c" "1b00000045d964b800"
        "6556616c7565" "4e2f697066732f6261666b71616161"
        "6853657175656e6365" "00"
        "6856616c6964697479" "54323033302d30312d30315430303a30303a30305a"
        "6c56616c69646974795479706500"
    )  # fmt: skip
    zero_name = "k51qzi5uqu5dhnwe629wdlncpql6frppdpwnz4wtlcw816aysd5wwlk63g4wmh"
    checked = verify_record(zero_name, raw, now=NOW)
    assert (checked.value, checked.sequence, checked.ttl) == (
        "/ipfs/bafkqaaa",
        0,
        timedelta(minutes=5),
    )


def test_validity_can_be_absolute_or_a_lifetime() -> None:
    absolute = record(validity=datetime(2026, 11, 22, 13, 0, tzinfo=UTC), now=None)
    assert absolute == record()
    offset = timezone(timedelta(hours=2))
    assert record(validity=datetime(2026, 11, 22, 15, 0, tzinfo=offset), now=None) == record()


def test_fractional_validity_is_written_like_go() -> None:
    raw = record(validity=timedelta(hours=1, microseconds=120_000))
    assert data_of(raw)["Validity"] == b"2026-11-22T13:00:00.12Z"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sequence": -1}, "sequence"),
        ({"sequence": 2**64}, "sequence"),
        ({"sequence": True}, "sequence"),
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"ttl_seconds": 2**64}, "ttl_seconds"),
        ({"validity": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"now": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_make_record_refuses_bad_arguments(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        record(**overrides)


@pytest.mark.parametrize("value", ["", "bafy...", "ipfs/x", "/ipfsx/y"])
def test_make_record_refuses_values_that_are_not_content_paths(value: str) -> None:
    with pytest.raises(FormatError, match="/ipfs/ or /ipns/"):
        make_record(KEY, value, sequence=0, validity=timedelta(hours=1), ttl_seconds=0)


def test_make_record_refuses_oversize_records() -> None:
    with pytest.raises(FormatError, match=f"at most {MAX_RECORD_SIZE} bytes"):
        make_record(
            KEY, "/ipfs/" + "a" * MAX_RECORD_SIZE, sequence=0, validity=timedelta(1), ttl_seconds=0
        )


# --- verifying records ---------------------------------------------------------------------


def test_verify_returns_what_was_signed() -> None:
    checked = verify_record(NAME, record(), now=NOW)
    assert checked.value == VALUE
    assert checked.sequence == 3
    assert checked.validity == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
    assert checked.ttl == timedelta(seconds=60)
    assert verify_record("/ipns/" + NAME, record(), now=NOW) == checked


def test_expiry_is_strict() -> None:
    raw = record()
    verify_record(NAME, raw, now=datetime(2026, 11, 22, 12, 59, 59, 999999, tzinfo=UTC))
    with pytest.raises(IpnsRecordInvalidError, match="expired at 2026-11-22T13:00:00Z"):
        verify_record(NAME, raw, now=datetime(2026, 11, 22, 13, 0, tzinfo=UTC))


def test_verify_needs_an_aware_clock() -> None:
    with pytest.raises(FormatError, match="timezone-aware"):
        verify_record(NAME, record(), now=datetime(2026, 11, 22))


def test_record_for_another_name_is_refused() -> None:
    other = ipns_name(SigningKey.from_seed(bytes(32)).public_key)
    with pytest.raises(IpnsRecordInvalidError, match="signatureV2 by the name's key"):
        verify_record(other, record(), now=NOW)


def test_size_is_checked_before_parsing() -> None:
    junk = b"\xff" * (MAX_RECORD_SIZE + 1)  # would be a protobuf error if parsed
    with pytest.raises(IpnsRecordInvalidError, match=f"at most {MAX_RECORD_SIZE} bytes"):
        verify_record(NAME, junk, now=NOW)


def test_every_single_byte_change_is_refused() -> None:
    raw = record()
    for i in range(len(raw)):
        for flip in (0x01, 0x80):
            changed = raw[:i] + bytes([raw[i] ^ flip]) + raw[i + 1 :]
            with pytest.raises(IpnsRecordInvalidError):
                verify_record(NAME, changed, now=NOW)
    for cut in range(len(raw)):
        with pytest.raises(IpnsRecordInvalidError):
            verify_record(NAME, raw[:cut], now=NOW)


def _entry_without(number: int, raw: bytes) -> bytes:
    out = b""
    for n, w, v in fields_of(raw):
        if n != number:
            out += field_bytes(n, v) if isinstance(v, bytes) else field_varint(n, v)
    return out


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: _entry_without(9, record()), "non-empty signatureV2 and data"),
        (lambda: _entry_without(8, record()), "non-empty signatureV2 and data"),
        (lambda: field_bytes(8, b"") + field_bytes(9, dagcbor.encode(good_data())), "non-empty"),
        (lambda: record() + field_bytes(10, b"x"), "fields 1-9"),
        (lambda: record() + field_bytes(9, b"\xa0"), "once"),
        (lambda: record() + field_varint(7, 1), "wire type 2 for field 7"),
        (lambda: field_varint(8, 1) + record(), "wire type 2 for field 8"),
        (lambda: record() + b"\x4a", "IpnsEntry protobuf"),
        (lambda: signed_entry(b"\xf6"), "data to be a map"),
        (lambda: signed_entry(b"\xa1\x61\x61\xf9\x3c\x00"), "non-canonical"),
        (lambda: signed_entry(good_data(Sequence=-1)), r"data\[Sequence\] >= 0"),
        (lambda: signed_entry(good_data(TTL=1.5)), r"data\[TTL\] to be int"),
        (lambda: signed_entry(good_data(Value=VALUE)), r"data\[Value\] to be bytes"),
        (lambda: signed_entry({k: v for k, v in good_data().items() if k != "TTL"}), "missing"),
        (lambda: signed_entry(good_data(ValidityType=1)), "ValidityType 0"),
        (lambda: signed_entry(good_data(Validity=b"2026-11-22 13:00:00Z")), "RFC 3339"),
        (lambda: signed_entry(good_data(Validity=b"\xff")), "ASCII"),
        (lambda: signed_entry(good_data(Value=b"/ipfs/\xff")), "UTF-8"),
        (lambda: signed_entry(good_data(), key=SigningKey.from_seed(bytes(32))), "signatureV2"),
    ],
)
def test_malformed_records_are_refused(build: Any, message: str) -> None:
    with pytest.raises(IpnsRecordInvalidError, match=message) as info:
        verify_record(NAME, build(), now=NOW)
    assert info.value.code == "ipns_record_invalid"


def test_non_canonical_data_fails_even_with_a_valid_signature() -> None:
    # Keys in the wrong order, signed as they are: only the canonical check catches it.
    canonical = dagcbor.encode(good_data())
    reordered = bytes.fromhex("a5") + b"".join(
        dagcbor.encode(k) + dagcbor.encode(v) for k, v in sorted(good_data().items())
    )
    assert reordered != canonical and len(reordered) == len(canonical)
    with pytest.raises(IpnsRecordInvalidError, match="sorted length-first"):
        verify_record(NAME, signed_entry(reordered), now=NOW)


def test_extra_data_keys_are_allowed_and_ignored() -> None:
    checked = verify_record(NAME, signed_entry(good_data(_ipfs_share={"v": 1})), now=NOW)
    assert checked.value == VALUE


def _public_key_field(key: VerifyKey) -> bytes:
    return field_bytes(7, field_varint(1, 1) + field_bytes(2, bytes(key)))


def test_embedded_public_key_must_be_the_names_key() -> None:
    ok = signed_entry(good_data(), _public_key_field(KEY.public_key))
    assert verify_record(NAME, ok, now=NOW).sequence == 3
    other = SigningKey.from_seed(bytes(32)).public_key
    with pytest.raises(IpnsRecordInvalidError, match="pubKey to be the name's key"):
        verify_record(NAME, signed_entry(good_data(), _public_key_field(other)), now=NOW)
    rsa = field_bytes(7, field_varint(1, 0) + field_bytes(2, b"\x30" * 200))
    with pytest.raises(IpnsRecordInvalidError, match="ed25519"):
        verify_record(NAME, signed_entry(good_data(), rsa), now=NOW)


def _v1_fields(**overrides: Any) -> bytes:
    v1: dict[str, Any] = {
        "value": VALUE.encode(),
        "validity": b"2026-11-22T13:00:00Z",
        "validity_type": 0,
        "sequence": 3,
        "ttl": 60 * 10**9,
    }
    v1.update(overrides)
    signature_v1 = KEY.sign(v1["value"] + v1["validity"] + b"EOL")
    return (
        field_bytes(1, v1["value"])
        + field_bytes(2, signature_v1)
        + field_varint(3, v1["validity_type"])
        + field_bytes(4, v1["validity"])
        + field_varint(5, v1["sequence"])
        + field_varint(6, v1["ttl"])
    )


def test_v1_fields_equal_to_data_are_accepted() -> None:
    assert verify_record(NAME, signed_entry(good_data(), _v1_fields()), now=NOW).value == VALUE


@pytest.mark.parametrize(
    "overrides",
    [
        {"value": b"/ipfs/bafkqaaa"},
        {"validity": b"2099-01-01T00:00:00Z"},
        {"sequence": 4},
        {"ttl": 1},
    ],
)
def test_v1_fields_different_from_data_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(IpnsRecordInvalidError, match="V1 field"):
        verify_record(NAME, signed_entry(good_data(), _v1_fields(**overrides)), now=NOW)


def test_a_lone_v1_field_is_compared_with_protobuf_defaults() -> None:
    # sequence present alone: the absent V1 value (b"") differs from data[Value].
    with pytest.raises(IpnsRecordInvalidError, match="V1 field 1"):
        verify_record(NAME, signed_entry(good_data(), field_varint(5, 3)), now=NOW)


# --- RFC 3339 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T13:00:00Z", datetime(2026, 11, 22, 13, tzinfo=UTC)),
        ("2026-11-22T13:00:00.5Z", datetime(2026, 11, 22, 13, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-22T13:00:00.999999999Z", datetime(2026, 11, 22, 13, 0, 0, 999999, tzinfo=UTC)),
        ("2026-11-22T15:00:00+02:00", datetime(2026, 11, 22, 13, tzinfo=UTC)),
        ("2026-11-22T08:30:00-04:30", datetime(2026, 11, 22, 13, tzinfo=UTC)),
    ],
)
def test_rfc3339_accepted(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text.encode()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22t13:00:00Z",
        "2026-11-22T13:00:00z",
        "2026-11-22T13:00:00",
        "2026-11-22T13:00:00.Z",
        "2026-11-22T13:00:00.1234567890Z",
        "2026-13-01T00:00:00Z",
        "2026-11-22T23:59:60Z",
        " 2026-11-22T13:00:00Z",
        "2026-11-22T13:00:00+0200",
    ],
)
def test_rfc3339_refused(text: str) -> None:
    with pytest.raises(FormatError):
        parse_rfc3339(text.encode())


def test_lifetime_beyond_year_9999_is_refused() -> None:
    with pytest.raises(FormatError, match="year 10000"):
        record(validity=timedelta(days=3_000_000))


def test_rfc3339_pads_small_years() -> None:
    assert format_rfc3339(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00Z"


def test_rfc3339_round_trip() -> None:
    for moment in (NOW, NOW + timedelta(microseconds=1), NOW + timedelta(microseconds=100)):
        assert parse_rfc3339(format_rfc3339(moment).encode()) == moment
    assert format_rfc3339(NOW + timedelta(microseconds=100)) == "2026-11-22T12:00:00.0001Z"


# --- a real Kubo -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalKubo:
    """The attributes match the shared ``RunningNode`` (tests/conftest.py), so this
    module's fixture can be swapped for the shared ``kubo`` fixture later."""

    api_url: str
    repo: Path
    binary: Path
    pid: int


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    candidates = list(range(47000, 48000))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports in 127.0.0.1:47000-47999")


def _api_ready(api_url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{api_url}/api/v0/id", data=b"", method="POST")
    try:
        with opener.open(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_daemon(
    binary: Path, repo: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    api_port, gateway_port, swarm_port = _free_ports(3)
    settings = [
        ("Addresses.API", f'"/ip4/127.0.0.1/tcp/{api_port}"'),
        ("Addresses.Gateway", f'"/ip4/127.0.0.1/tcp/{gateway_port}"'),
        ("Addresses.Swarm", f'["/ip4/127.0.0.1/tcp/{swarm_port}"]'),
        ("Plugins.Plugins.telemetry.Config.Mode", '"off"'),
    ]
    for key, value in settings:
        subprocess.run(
            [binary, "config", "--json", key, value], env=env, check=True, capture_output=True
        )
    log = (repo.parent / "daemon.log").open("ab")
    # Online (not --offline), so name/put goes through the routing system as it will in
    # use; the test profile keeps it on loopback with no bootstrap peers.
    proc = subprocess.Popen([binary, "daemon"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{api_port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # by its own pid
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def ipns_test_kubo(
    kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalKubo]:
    """A Kubo daemon of this module's own (replace with the shared ``kubo`` fixture later)."""
    repo = tmp_path_factory.mktemp("ipns-kubo") / "repo"
    env = {**os.environ, "IPFS_PATH": str(repo), "IPFS_TELEMETRY": "off"}
    subprocess.run(
        [kubo_binary, "init", "--profile=test"], env=env, check=True, capture_output=True
    )
    for _attempt in range(3):  # a port taken between probe and bind: try other ports
        proc, api_url = _start_daemon(kubo_binary, repo, env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not _api_ready(api_url):
            time.sleep(0.2)
        if proc.poll() is None and _api_ready(api_url):
            break
        _stop(proc)
    else:
        log = (repo.parent / "daemon.log").read_text(errors="replace")
        pytest.fail(f"kubo daemon did not start:\n{log[-2000:]}")
    try:
        yield LocalKubo(api_url=api_url, repo=repo, binary=kubo_binary, pid=proc.pid)
    finally:
        _stop(proc)


async def rpc(
    node: LocalKubo,
    command: str,
    params: Sequence[tuple[str, str]] = (),
    *,
    file: bytes | None = None,
) -> tuple[int, bytes]:
    """POST to Kubo's RPC API with aiohttp directly; return (status, body)."""
    form = None
    if file is not None:
        form = aiohttp.FormData()
        form.add_field("file", file, filename="data", content_type="application/octet-stream")
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            f"{node.api_url}/api/v0/{command}", params=list(params), data=form
        ) as response,
    ):
        return response.status, await response.read()


async def rpc_json(
    node: LocalKubo,
    command: str,
    params: Sequence[tuple[str, str]] = (),
    *,
    file: bytes | None = None,
) -> Any:
    status, body = await rpc(node, command, params, file=file)
    assert status == 200, body
    return json.loads(body)


async def test_kubo_stores_and_serves_our_record(ipns_test_kubo: LocalKubo) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    value = "/ipfs/" + cid_for(RAW, b"ipns test")
    raw = make_record(key, value, sequence=1, validity=timedelta(hours=1), ttl_seconds=5)

    put = await rpc_json(ipns_test_kubo, "name/put", [("arg", name)], file=raw)
    assert put == {"Name": name, "Value": value}

    status, got = await rpc(ipns_test_kubo, "name/get", [("arg", name)])
    assert status == 200
    assert got == raw  # byte for byte: Kubo kept our V2-only record as it is

    resolved = await rpc_json(ipns_test_kubo, "name/resolve", [("arg", name), ("nocache", "true")])
    assert resolved == {"Path": value}

    # And our own verifier accepts what Kubo hands back.
    assert verify_record(name, got, now=datetime.now(UTC)).value == value


def test_kubo_cli_inspect_says_valid(ipns_test_kubo: LocalKubo, tmp_path: Path) -> None:
    key = SigningKey.generate()
    name = ipns_name(key.public_key)
    path = tmp_path / "record.ipns"
    path.write_bytes(
        make_record(key, "/ipfs/bafkqaaa", sequence=9, validity=timedelta(hours=1), ttl_seconds=60)
    )
    env = {**os.environ, "IPFS_PATH": str(ipns_test_kubo.repo), "IPFS_TELEMETRY": "off"}
    done = subprocess.run(
        [
            ipns_test_kubo.binary,
            "name",
            "inspect",
            "--verify",
            name,
            "--dump=false",
            "--enc=json",
            path,
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["Validation"] == {"Valid": True, "Reason": "", "Name": name}
    assert report["SignatureType"] == "V2"
    assert report["Entry"]["Sequence"] == 9
    assert report["Entry"]["TTL"] == 60 * 10**9

    other = ipns_name(SigningKey.generate().public_key)
    done = subprocess.run(
        [
            ipns_test_kubo.binary,
            "name",
            "inspect",
            "--verify",
            other,
            "--dump=false",
            "--enc=json",
            path,
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    assert json.loads(done.stdout)["Validation"]["Valid"] is False


async def test_kubo_refuses_our_record_under_another_name(ipns_test_kubo: LocalKubo) -> None:
    raw = make_record(
        SigningKey.generate(),
        "/ipfs/bafkqaaa",
        sequence=1,
        validity=timedelta(hours=1),
        ttl_seconds=5,
    )
    other = ipns_name(SigningKey.generate().public_key)
    status, body = await rpc(ipns_test_kubo, "name/put", [("arg", other)], file=raw)
    assert status != 200, body


async def test_we_verify_records_kubo_made(ipns_test_kubo: LocalKubo) -> None:
    """The other direction: a V1+V2 record signed by Kubo's own key passes our checks,
    and the same record with a V1 field changed does not."""
    made = await rpc_json(ipns_test_kubo, "key/gen", [("arg", "ipns-interop"), ("type", "ed25519")])
    name = made["Id"]
    value = "/ipfs/" + cid_for(RAW, b"kubo made this")
    await rpc_json(
        ipns_test_kubo,
        "name/publish",
        [
            ("arg", value),
            ("key", "ipns-interop"),
            ("allow-offline", "true"),
            ("ttl", "30s"),
            ("resolve", "false"),
        ],
    )
    status, raw = await rpc(ipns_test_kubo, "name/get", [("arg", name)])
    assert status == 200
    checked = verify_record(name, raw, now=datetime.now(UTC))
    assert checked.value == value
    assert checked.ttl == timedelta(seconds=30)
    numbers = {n for n, _, _ in fields_of(raw)}
    assert {1, 2, 8, 9} <= numbers  # Kubo still writes V1 fields

    tampered = b"".join(
        field_bytes(n, b"/ipfs/bafkqaaa")
        if n == 1
        else (field_bytes(n, v) if isinstance(v, bytes) else field_varint(n, v))
        for n, _, v in fields_of(raw)
    )
    with pytest.raises(IpnsRecordInvalidError, match="V1 field 1"):
        verify_record(name, tampered, now=datetime.now(UTC))


# The objects we check against Kubo's Go codec: a little of everything we write.
KUBO_OBJECTS: dict[str, Any] = {
    "nested maps": {"a": {"b": {"c": [1, 2, {"d": None, "e": True, "f": False}]}}, "zz": "é 水 𐅑"},
    "links": {
        "content": Link(cid_for(RAW, b"x")),
        "v0": Link("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"),
        "list": [Link(cid_for(RAW, bytes([i]))) for i in range(3)],
    },
    "bytes": {"empty": b"", "all": bytes(range(256)), "big": os.urandom(100_000)},
    "big ints": {"i64max": 2**63 - 1, "i64min": -(2**63), "u64": 2**63, "u64max": 2**64 - 1},
    "floats": {"half": 0.5, "neg0": -0.0, "one": 1.0, "pi": 3.141592653589793, "tiny": 5e-324},
    "key order": {"b": 1, "a": 2, "aa": 3, "é": 4, "ab": 5, "": 6},
    "ipns data": good_data(),
    "empty list": [],
}


@pytest.mark.parametrize("label", list(KUBO_OBJECTS))
async def test_kubo_go_codec_agrees_with_ours(ipns_test_kubo: LocalKubo, label: str) -> None:
    value = KUBO_OBJECTS[label]
    data = dagcbor.encode(value)
    cid = cid_of(value)

    stored = await rpc_json(
        ipns_test_kubo, "block/put", [("cid-codec", "dag-cbor"), ("mhtype", "sha2-256")], file=data
    )
    assert stored["Key"] == cid

    # Kubo decodes with go-ipld-prime and re-encodes: the bytes must survive unchanged.
    status, again = await rpc(
        ipns_test_kubo, "dag/get", [("arg", cid), ("output-codec", "dag-cbor")]
    )
    assert status == 200
    assert again == data

    put = await rpc_json(
        ipns_test_kubo,
        "dag/put",
        [("input-codec", "dag-cbor"), ("store-codec", "dag-cbor")],
        file=data,
    )
    assert put["Cid"]["/"] == cid


@pytest.mark.xfail(reason="Kubo 0.43's Go codec refuses or mangles ints below -2^63", strict=False)
async def test_kubo_go_codec_and_ints_below_int64(ipns_test_kubo: LocalKubo) -> None:
    """Known limitation (docs/spec/dag-cbor.md): our codec accepts -2^64..-2^63-1, Kubo's
    does not (an error for -2^63-1, 0 for -2^64). block/put still keeps our bytes."""
    value = {"min": -(2**64), "below": -(2**63) - 1}
    data = dagcbor.encode(value)
    stored = await rpc_json(ipns_test_kubo, "block/put", [("cid-codec", "dag-cbor")], file=data)
    assert stored["Key"] == cid_of(value)
    _, again = await rpc(
        ipns_test_kubo, "dag/get", [("arg", stored["Key"]), ("output-codec", "dag-cbor")]
    )
    assert again == data


_FIXTURES = json.loads(
    (Path(__file__).parent / "data" / "codec-fixtures" / "dag-cbor-positive.json").read_text(
        "utf-8"
    )
)
# Top-level integers outside int64: Kubo 0.43's codec fails on them (docs/spec/dag-cbor.md).
_KUBO_INT64_ONLY = {
    "int--11959030306112471732",
    "int-11959030306112471731",
    "int-18446744073709551615",
}


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param(
            f,
            id=f["name"],
            marks=[pytest.mark.xfail(reason="Kubo's codec: int64 only", strict=False)]
            if f["name"] in _KUBO_INT64_ONLY
            else [],
        )
        for f in _FIXTURES
    ],
)
async def test_kubo_go_codec_on_codec_fixtures(
    ipns_test_kubo: LocalKubo, fixture: dict[str, str]
) -> None:
    """All 130 codec-fixtures through Kubo: stored under the CID we compute, and Kubo's
    decode-then-encode gives back the same bytes."""
    data = bytes.fromhex(fixture["hex"])
    stored = await rpc_json(ipns_test_kubo, "block/put", [("cid-codec", "dag-cbor")], file=data)
    assert stored["Key"] == fixture["cid"]
    status, again = await rpc(
        ipns_test_kubo, "dag/get", [("arg", fixture["cid"]), ("output-codec", "dag-cbor")]
    )
    assert status == 200
    assert again == data
