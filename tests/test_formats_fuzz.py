"""Property and fuzz tests for the signed-object codecs.

Round trips: whatever a builder accepts, its decoder gives back. Fuzz: every decoder fed
arbitrary bytes, or a valid object with a few bytes changed, returns a value or raises a
typed :class:`IpfsShareError`: never another exception, never a hang. The short runs are
part of the suite; ``pytest -m fuzz_long tests/test_formats_fuzz.py`` runs the long one.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import IpfsShareError
from ipfs_share.formats import capsule, identity_doc, mailbox, revocation
from ipfs_share.formats.cid import DAG_CBOR, cid_from_digest
from ipfs_share.formats.dagcbor import Link
from ipfs_share.formats.signed import did_key, peek_list_length, run_walk

KEY = SigningKey.from_seed(b"\x01" * 32)
VAULT = SigningKey.from_seed(b"\x02" * 32)
RECIPIENTS = [EncryptionKey(bytes([i]) * 32) for i in range(3, 9)]
CONTENT = "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CAPSULE_ID = "bafyreifqwkmiw256ojf2zws6tzjeonw6bpd5vza4i22ccpcq4hjv2ts7cm"

uints = st.integers(0, 2**63 - 1)
times = st.integers(0, 2**40)
# Policy parameters: any dag-cbor map without floats (links allowed).
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.just(Link(CONTENT)),
)
params = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        leaves,
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
        ),
        max_leaves=10,
    ),
    max_size=4,
)


def _decoders() -> dict[str, Callable[[bytes], Any]]:
    return {
        "identity": identity_doc.decode_identity_document,
        "capsule": capsule.decode_capsule,
        "capability": capsule.decode_capability,
        "entry": mailbox.decode_entry,
        "head": revocation.decode_head,
        "node": revocation.decode_node,
        "peek": lambda data: peek_list_length(data, "stanzas"),
    }


DECODERS = _decoders()


def _valid_samples() -> list[bytes]:
    enc = RECIPIENTS[0]
    built = capsule.build_capsule(
        KEY,
        content=CONTENT,
        file_key=FileKey(b"\x09" * 32),
        recipients=[r.public_key for r in RECIPIENTS[:3]],
        created=10,
        expires=20,
        policy=capsule.Policy("p", {"a": [1, -2, None]}),
        cap_issuer=did_key(VAULT.public_key),
        rng=DeterministicRng(b"fuzz"),
    )
    first = mailbox.make_entry(KEY, None, capsule=CAPSULE_ID, sent=1)
    store: dict[str, bytes] = {}
    revoked = run_walk(
        revocation.revoke(KEY, None, [CAPSULE_ID, built.cid], updated=5), store.__getitem__
    )
    return [
        identity_doc.make_identity_document(KEY, enc.public_key, seq=1, created=2).data,
        built.data,
        capsule.make_capability(
            VAULT, aud=did_key(KEY.public_key), capsule=built.cid, nbf=1, exp=2
        ).data,
        first.data,
        mailbox.make_ack(KEY, first, capsule=CAPSULE_ID, via=VAULT, state="opened", sent=3).data,
        *(b.data for b in revoked.blocks),
    ]


SAMPLES = _valid_samples()


def _value_or_typed_error(decode: Callable[[bytes], Any], data: bytes) -> None:
    with contextlib.suppress(IpfsShareError):
        decode(data)


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        action = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        pos = draw.draw(st.integers(0, max(0, len(out) - 1)))
        if action == "flip" and out:
            out[pos] ^= 1 << draw.draw(st.integers(0, 7))
        elif action == "set" and out:
            out[pos] = draw.draw(
                st.sampled_from([0x00, 0x18, 0x40, 0x60, 0x80, 0xA0, 0xD8, 0xF6, 0xFF])
            )
        elif action == "insert":
            out.insert(pos, draw.draw(st.integers(0, 255)))
        elif action == "delete" and out:
            del out[pos]
        elif action == "truncate":
            del out[pos:]
    return bytes(out)


# --- round trips ----------------------------------------------------------------------------


@given(uints, uints, st.binary(min_size=32, max_size=32))
@settings(max_examples=40, deadline=None)
def test_identity_round_trip(seq: int, created: int, enc_secret: bytes) -> None:
    enc = EncryptionKey(enc_secret)
    doc = identity_doc.make_identity_document(KEY, enc.public_key, seq=seq, created=created)
    assert identity_doc.decode_identity_document(doc.data, did=doc.did) == doc
    assert (doc.seq, doc.created, doc.enc) == (seq, created, enc.public_key)


@given(
    st.integers(1, 6),
    times,
    st.one_of(st.none(), st.integers(1, 2**40)),
    st.booleans(),
    st.one_of(st.none(), st.builds(capsule.Policy, st.text(max_size=30), params)),
    st.booleans(),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_capsule_round_trip(
    n: int, created: int, lifetime: int | None, download: bool,
    policy: capsule.Policy | None, with_cap: bool,
) -> None:  # fmt: skip
    built = capsule.build_capsule(
        KEY,
        content=CONTENT,
        file_key=FileKey(b"\x09" * 32),
        recipients=[r.public_key for r in RECIPIENTS[:n]],
        created=created,
        expires=None if lifetime is None else created + lifetime,
        perms=capsule.Perms(download=download),
        policy=policy,
        cap_issuer=did_key(VAULT.public_key) if with_cap else None,
        rng=DeterministicRng(b"round trip"),
    )
    again = capsule.decode_capsule(built.data)
    assert again == built and again.policy == policy
    key = capsule.find_and_unwrap(again, RECIPIENTS[n - 1])
    capsule.check_commitment(again, key)


@given(times, st.integers(1, 2**32))
@settings(max_examples=30, deadline=None)
def test_capability_round_trip(nbf: int, window: int) -> None:
    token = capsule.make_capability(
        VAULT, aud=did_key(KEY.public_key), capsule=CAPSULE_ID, nbf=nbf, exp=nbf + window
    )
    assert capsule.decode_capability(token.data, issuer=token.issuer) == token


@given(st.lists(st.tuples(st.booleans(), times), min_size=1, max_size=6))
@settings(max_examples=30, deadline=None)
def test_mailbox_chain_round_trip(steps: list[tuple[bool, int]]) -> None:
    entries: list[mailbox.MailboxEntry] = []
    for is_ack, sent in steps:
        previous = entries[-1] if entries else None
        if is_ack:
            entries.append(
                mailbox.make_ack(
                    KEY, previous, capsule=CAPSULE_ID, via=VAULT, state="delivered", sent=sent
                )
            )
        else:
            entries.append(mailbox.make_entry(KEY, previous, capsule=CAPSULE_ID, sent=sent))
    store = {e.cid: e.data for e in entries}
    walk = mailbox.verify_chain(
        entries[-1].cid, sender=entries[0].sender, head_seq=len(entries) - 1
    )
    assert run_walk(walk, store.__getitem__) == entries


@given(st.lists(st.integers(0, 5000), max_size=1500), st.integers(0, 2**32))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_revocation_round_trip(numbers: list[int], seed: int) -> None:
    ids = [
        cid_from_digest(DAG_CBOR, hashlib.sha256(n.to_bytes(4, "big")).digest()) for n in numbers
    ]
    store: dict[str, bytes] = {}
    head = None
    shuffled = ids[:]
    random.Random(seed).shuffle(shuffled)
    for batch in (shuffled[: len(ids) // 2], shuffled[len(ids) // 2 :]):
        result = run_walk(revocation.revoke(KEY, head, batch, updated=1), store.__getitem__)
        store.update((b.cid, b.data) for b in result.blocks)
        head = result.head
    assert head is not None and head.count == len(set(ids))
    assert run_walk(revocation.audit(head), store.__getitem__) == len(set(ids))
    direct = run_walk(revocation.add(None, ids), store.__getitem__)
    assert direct.root == head.root  # the shape is a function of the set alone
    for cid in ids[:20]:
        assert run_walk(revocation.is_revoked(head, cid), store.__getitem__)


# --- fuzz ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DECODERS))
@given(data=st.binary(max_size=600))
@settings(max_examples=150, deadline=None)
def test_fuzz_arbitrary_bytes(name: str, data: bytes) -> None:
    _value_or_typed_error(DECODERS[name], data)


@pytest.mark.parametrize("name", list(DECODERS))
@given(sample=st.sampled_from(SAMPLES), draw=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_objects(name: str, sample: bytes, draw: st.DataObject) -> None:
    _value_or_typed_error(DECODERS[name], _mutate(sample, draw))


@given(sample=st.sampled_from(SAMPLES), draw=st.data())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_walks_over_mutated_blocks(sample: bytes, draw: st.DataObject) -> None:
    """A mutated block stored under its own CID (so it passes the CID check) as a chain
    head, a revocation head or a trie root."""
    data = _mutate(sample, draw)
    from ipfs_share.formats.signed import block_from_bytes

    block = block_from_bytes(data)
    store = {block.cid: data}
    walks = [
        lambda: mailbox.verify_chain(block.cid, sender=did_key(KEY.public_key)),
        lambda: revocation.contains(Link(block.cid), CAPSULE_ID),
        lambda: revocation.add(Link(block.cid), [CAPSULE_ID]),
    ]
    for make in walks:
        try:
            run_walk(make(), store.__getitem__)
        except IpfsShareError:
            pass
        except KeyError:
            pass  # the walk asked for a block the store does not have: the walk is fine


@pytest.mark.fuzz_long
@pytest.mark.timeout(3600)
@given(st.one_of(st.binary(max_size=4096), st.sampled_from(SAMPLES)), st.data())
@settings(max_examples=50_000, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_long(data: bytes, draw: st.DataObject) -> None:
    """50,000 inputs through every decoder: ``pytest -m fuzz_long tests/test_formats_fuzz.py``."""
    mutated = _mutate(data, draw) if draw.draw(st.booleans()) else data
    for decode in DECODERS.values():
        _value_or_typed_error(decode, mutated)


@pytest.fixture(autouse=True)
def _skip_long_fuzz_unless_selected(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("fuzz_long") and "fuzz_long" not in (
        request.config.getoption("-m") or ""
    ):
        pytest.skip("long fuzz run; select it with -m fuzz_long")
