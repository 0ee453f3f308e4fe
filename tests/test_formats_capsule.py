"""Capsules and capability tokens: build, decode, open steps, and the refusals."""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.crypto.labels import LABEL_CAPSULE
from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import (
    CapabilityInvalidError,
    CapabilityRequiredError,
    FormatError,
    InvalidInputError,
    KeyUnwrapFailedError,
    RecipientNotAuthorizedError,
    ShareExpiredError,
    SignatureInvalidError,
)
from ipfs_share.formats import capsule as capsule_module
from ipfs_share.formats import dagcbor, signed
from ipfs_share.formats.capsule import (
    MAX_STANZAS,
    Perms,
    Policy,
    build_capsule,
    check_capability,
    check_commitment,
    check_expiry,
    decode_capability,
    decode_capsule,
    find_and_unwrap,
    make_capability,
    require_capability,
)
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.signed import did_key

ISSUER = SigningKey.from_seed(b"\x01" * 32)
VAULT = SigningKey.from_seed(b"\x05" * 32)
BOB = EncryptionKey(b"\x02" * 32)
CAROL = EncryptionKey(b"\x03" * 32)
EVE = EncryptionKey(b"\x04" * 32)
FILE_KEY = FileKey(b"\x06" * 32)
CONTENT = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
BOB_DID = did_key(SigningKey.from_seed(b"\x07" * 32).public_key)
T0 = 1_800_000_000
SPEC = Path(__file__).resolve().parent.parent / "docs" / "spec"


def _capsule(**over: Any) -> capsule_module.Capsule:
    args: dict[str, Any] = {
        "content": CONTENT,
        "file_key": FILE_KEY,
        "recipients": [BOB.public_key, CAROL.public_key],
        "created": T0,
        "expires": T0 + 3600,
        "rng": DeterministicRng(b"test"),
    }
    args.update(over)
    return build_capsule(ISSUER, **args)


def _resigned(value: dict[str, Any], key: SigningKey = ISSUER) -> bytes:
    body = {k: v for k, v in value.items() if k != "sig"}
    body["sig"] = key.sign(LABEL_CAPSULE + dagcbor.encode(body))
    return dagcbor.encode(body)


def test_docstring_examples() -> None:
    assert doctest.testmod(capsule_module).failed == 0


def test_round_trip_all_fields() -> None:
    capsule = _capsule(
        perms=Perms(download=False),
        policy=Policy("org.example.geo", {"region": "eu", "n": [1, -2, None, b"x"]}),
        cap_issuer=did_key(VAULT.public_key),
    )
    again = decode_capsule(capsule.data, issuer=did_key(ISSUER.public_key))
    assert again == capsule
    assert again.policy is not None and again.policy.params["n"] == [1, -2, None, b"x"]
    assert again.perms == Perms(download=False)
    assert "stanzas" not in repr(again) and "data" not in repr(again)


def test_every_recipient_opens_the_same_key() -> None:
    capsule = _capsule()
    for key in (BOB, CAROL):
        file_key = find_and_unwrap(capsule, key)
        check_commitment(capsule, file_key)
        assert file_key == FILE_KEY
    with pytest.raises(RecipientNotAuthorizedError):
        find_and_unwrap(capsule, EVE)


def test_commitment_binds_key_and_content() -> None:
    capsule = _capsule()
    with pytest.raises(KeyUnwrapFailedError):
        check_commitment(capsule, FileKey(b"\x09" * 32))
    value = dagcbor.decode(capsule.data)
    value["content"] = Link("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    moved = decode_capsule(_resigned(value))  # a validly signed capsule, other content
    with pytest.raises(KeyUnwrapFailedError):
        check_commitment(moved, find_and_unwrap(moved, BOB))


def _copy_as(original: capsule_module.Capsule, key: SigningKey, **terms: Any) -> bytes:
    """What someone without the file key can make: the original's stanzas and commit,
    other terms, signed by ``key`` as the issuer."""
    value = dagcbor.decode(original.data)
    value.update(issuer=did_key(key.public_key), **terms)
    return _resigned(value, key)


def test_a_copy_resigned_by_a_non_recipient_does_not_open() -> None:
    mallory = SigningKey.from_seed(b"\x0e" * 32)
    original = _capsule(
        perms=Perms(download=False),
        policy=Policy("ipfs-share/window", {"expires": T0 + 60}),
        cap_issuer=did_key(VAULT.public_key),
    )
    loose = {"expires": None, "perms": {"download": True}, "policy": None, "cap": None}
    for terms in ({}, loose):
        forged = decode_capsule(_copy_as(original, mallory, **terms))  # a valid signature
        assert forged.issuer == did_key(mallory.public_key)
        key = find_and_unwrap(forged, BOB)  # the stanza is the original's: it unwraps
        assert key == FILE_KEY
        with pytest.raises(KeyUnwrapFailedError, match="other terms"):
            check_commitment(forged, key)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("issuer", did_key(VAULT.public_key)),
        ("content", Link("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")),
        ("created", T0 - 1),
        ("expires", T0 + 3601),
        ("expires", None),
        ("perms", {"download": False}),
        ("policy", {"provider": "p", "params": {}}),
        ("cap", {"issuer": did_key(VAULT.public_key)}),
        ("stanzas", "drop-one"),
    ],
)
def test_the_commitment_covers_every_field(field: str, value: Any) -> None:
    """Each term changed, the commit kept, and signed validly by whoever the issuer field
    names: the key still unwraps, the commitment refuses it."""
    value_map = dagcbor.decode(_capsule().data)
    value_map[field] = value_map["stanzas"][:1] if value == "drop-one" else value
    signer = VAULT if field == "issuer" else ISSUER
    changed = decode_capsule(_resigned(value_map, signer))
    with pytest.raises(KeyUnwrapFailedError):
        check_commitment(changed, find_and_unwrap(changed, BOB))


def test_expiry() -> None:
    capsule = _capsule()
    check_expiry(capsule, T0 + 3599)
    with pytest.raises(ShareExpiredError):
        check_expiry(capsule, T0 + 3600)
    check_expiry(_capsule(expires=None), 2**40)
    with pytest.raises(FormatError, match="expires after created"):
        _capsule(expires=T0)


def test_stanza_limit_before_crypto() -> None:
    value = dagcbor.decode(_capsule().data)
    value["stanzas"] = [value["stanzas"][0]] * (MAX_STANZAS + 1)
    data = _resigned(value, SigningKey.from_seed(b"\x0f" * 32))  # wrong key, too
    assert len(data) < capsule_module.MAX_CAPSULE_SIZE
    with pytest.raises(FormatError, match=r"at most 10000 items in capsule\.stanzas"):
        decode_capsule(data)
    with pytest.raises(InvalidInputError):
        _capsule(recipients=[])


def test_stanza_limit_when_the_peek_gives_up() -> None:
    # Padding before the stanzas exhausts the peek's budget: the field check refuses the
    # count after decoding, still before the (wrong) signature is looked at.
    value = dagcbor.decode(_capsule().data)
    value["policy"] = {"provider": "p", "params": {"pad": [0] * (signed.PEEK_BUDGET + 10)}}
    value["stanzas"] = [value["stanzas"][0]] * (MAX_STANZAS + 1)
    data = _resigned(value, SigningKey.from_seed(b"\x0f" * 32))
    assert signed.peek_list_length(data, "stanzas") is None
    with pytest.raises(FormatError, match=r"1 to 10000 items at capsule\.stanzas"):
        decode_capsule(data)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("content",),
            Link("bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"),
            "raw or",
        ),
        (("stanzas",), [b"\x00" * 79], "80 bytes"),
        (("commit",), b"\x00" * 31, "32 bytes"),
        (("perms", "extra"), True, "unknown 'extra'"),
        (("perms", "reshare"), False, "unknown 'reshare'"),  # version 1 had it
        (("policy",), {"provider": "p"}, "missing 'params'"),
        (("policy",), {"provider": "p", "params": []}, "a map"),
        (("policy",), {"provider": "p", "params": {"a": [{"b": 1.0}]}}, "no floats"),
        (("cap",), {"issuer": "nobody"}, "did:key"),
        (("expires",), -1, "2\\^63-1"),
        (("v",), 1, "version 3 or 2"),
        (("v",), 4, "version 3 or 2"),
        (("replaces",), bytes(Link(CONTENT)), "36-byte binary CIDv1"),  # not a capsule ID
        (
            ("replaces",),
            Link("bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"),
            "36-byte",
        ),
        (("replaces",), "bafyrei", "36-byte"),
    ],
)
def test_field_refusals(path: tuple[str, ...], value: Any, message: str) -> None:
    body = dagcbor.decode(_capsule().data)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(FormatError, match=message):
        decode_capsule(_resigned(body))


def test_replaces_round_trips_and_is_a_term() -> None:
    old = _capsule()
    new = _capsule(replaces=old.cid)
    assert decode_capsule(new.data).replaces == old.cid and old.replaces is None
    assert new.version == 3
    # Held as bytes, never as a link: a pin of the new capsule follows no link to the old.
    assert dagcbor.decode(new.data)["replaces"] == bytes(Link(old.cid))
    # A copy that names another capsule in replaces fails the commitment.
    body = dagcbor.decode(new.data)
    body["replaces"] = bytes(Link(_capsule(expires=None).cid))
    forged = decode_capsule(_resigned(body))
    with pytest.raises(KeyUnwrapFailedError):
        check_commitment(forged, find_and_unwrap(forged, BOB))
    with pytest.raises(FormatError):
        _capsule(replaces=CONTENT)  # a content CID is no capsule ID


def test_signature_refusals() -> None:
    data = bytearray(_capsule().data)
    data[data.index(b"\x63sig\x58\x40") + 6] ^= 1
    with pytest.raises(SignatureInvalidError):
        decode_capsule(bytes(data))
    data = _capsule().data
    with pytest.raises(SignatureInvalidError, match="signed by"):
        decode_capsule(data, issuer=did_key(VAULT.public_key))


def test_capability_flow() -> None:
    vault_did = did_key(VAULT.public_key)
    capsule = _capsule(cap_issuer=vault_did)
    token = make_capability(VAULT, aud=BOB_DID, capsule=capsule.cid, nbf=T0, exp=T0 + 60)
    assert decode_capability(token.data) == token
    assert require_capability(capsule, token.data, audience=BOB_DID, now=T0) == token
    assert require_capability(_capsule(), None, audience=BOB_DID, now=T0) is None
    with pytest.raises(CapabilityRequiredError):
        require_capability(capsule, None, audience=BOB_DID, now=T0)
    with pytest.raises(CapabilityInvalidError, match="valid at"):
        require_capability(capsule, token.data, audience=BOB_DID, now=T0 + 60)
    with pytest.raises(CapabilityInvalidError, match="for did"):
        check_capability(token, capsule=capsule, audience=vault_did, now=T0)
    with pytest.raises(CapabilityInvalidError, match="capability for"):
        check_capability(
            token, capsule=_capsule(cap_issuer=vault_did, expires=None), audience=BOB_DID, now=T0
        )
    with pytest.raises(CapabilityInvalidError, match="issued by"):
        check_capability(token, capsule=_capsule(), audience=BOB_DID, now=T0)
    forged = make_capability(ISSUER, aud=BOB_DID, capsule=capsule.cid, nbf=T0, exp=T0 + 60)
    with pytest.raises(CapabilityInvalidError):
        require_capability(capsule, forged.data, audience=BOB_DID, now=T0)
    with pytest.raises(CapabilityInvalidError):
        require_capability(capsule, b"\xa0", audience=BOB_DID, now=T0)
    with pytest.raises(FormatError, match="nbf before exp"):
        make_capability(VAULT, aud=BOB_DID, capsule=capsule.cid, nbf=T0, exp=T0)


def test_no_secret_in_reprs() -> None:
    capsule = _capsule()
    text = repr(capsule) + repr(find_and_unwrap(capsule, BOB))
    assert FILE_KEY.secret_bytes().hex() not in text
    assert "<redacted>" in text


def test_the_spec_worked_example_is_what_the_code_writes() -> None:
    text = (SPEC / "capsule.md").read_text(encoding="utf-8").split("## 6. Worked example")[1]
    blocks = {"".join(b.split()) for b in re.findall(r"```\n(.*?)```", text, re.S)}
    issuer = SigningKey.from_seed(b"\x01" * 32)
    made = build_capsule(
        issuer,
        content=CONTENT,
        file_key=FileKey(b"\x05" * 32),
        recipients=[EncryptionKey(b"\x04" * 32).public_key],
        created=T0,
        expires=T0 + 86_400,
        rng=lambda n: b"\x06" * n,
    )
    terms = {k: v for k, v in dagcbor.decode(made.data).items() if k not in ("commit", "sig")}
    assert made.data.hex() in blocks
    assert dagcbor.encode(terms).hex() in blocks
    assert made.terms.hex() in text and made.commit.hex() in text and made.cid in text
    holder = did_key(SigningKey.from_seed(b"\x03" * 32).public_key)
    token = make_capability(issuer, aud=holder, capsule=made.cid, nbf=T0, exp=T0 + 3600)
    assert token.data.hex() in blocks and token.cid in text


def test_the_spec_stands_alone() -> None:
    """docs/spec is normative on its own: it cites no design note outside the repository."""
    for doc in sorted(SPEC.glob("*.md")):
        assert "DESIGN" not in doc.read_text(encoding="utf-8"), doc.name


@pytest.mark.parametrize("recipients", [1, 3, 40])
def test_the_terms_cut_from_a_capsules_bytes_are_the_terms_encoded_again(recipients: int) -> None:
    """A decoded capsule's terms digest comes from its bytes with the commit and sig pairs
    cut out; it is the digest of the map without them, encoded again."""
    made = _capsule(recipients=[EncryptionKey.generate().public_key for _ in range(recipients)])
    got = decode_capsule(made.data)
    fields = dagcbor.decode(made.data)
    assert got.terms == capsule_module.terms_digest(fields)  # encoded again
    assert got.terms == capsule_module.terms_digest(fields, made.data)
