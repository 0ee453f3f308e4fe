"""Introductions without a network: the seal, the spec's worked example, the receiver's
checks and limits (docs/spec/introductions.md section 4) against a real SQLite home, and
accepting, rejecting and links. The pubsub path is in tests/test_agent_delivery.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.crypto.labels import LABEL_INTRODUCTION_SEAL
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.crypto.seal import seal, unseal
from ipfs_share.crypto.signing import SigningKey
from ipfs_share.crypto.x25519 import EncryptionKey
from ipfs_share.errors import (
    DecryptionError,
    FormatError,
    IntroductionRejectedError,
    InvalidInputError,
    NotFoundError,
)
from ipfs_share.formats.introduction import (
    format_link,
    introduction_topic,
    make_introduction,
    open_introduction,
)
from ipfs_share.formats.keystore import IdentityKeys
from ipfs_share.formats.signed import did_key
from ipfs_share.local.agentdb import IntroductionRepository
from ipfs_share.local.state import StateDB
from ipfs_share.services.identities import IdentityService
from ipfs_share.services.introductions import IntroductionLimits, IntroductionService

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec" / "introductions.md"
NOW = 1_800_000_000


def test_the_spec_worked_example_is_what_the_code_makes() -> None:
    text = re.sub(r"\s+", "", SPEC.read_text(encoding="utf-8"))
    sender = SigningKey.from_seed(b"\x01" * 32)
    recipient = SigningKey.from_seed(b"\x03" * 32)
    enc = EncryptionKey(b"\x04" * 32)
    to = did_key(recipient.public_key)
    draws = iter([b"\x06" * 16, b"\x05" * 32])  # the nonce, then the ephemeral secret
    sealed = make_introduction(sender, to, enc.public_key, sent=NOW, rng=lambda n: next(draws))
    inner = unseal(sealed, enc, label=LABEL_INTRODUCTION_SEAL)
    got = open_introduction(sealed, to, enc, now=NOW)
    assert got.sender == did_key(sender.public_key) and got.recipient == to
    for value in (introduction_topic(to), inner.hex(), sealed.hex(), got.cid):
        assert value in text, f"{value[:40]}... is not in {SPEC.name}"


def test_seal_round_trip_and_failures_are_coarse() -> None:
    bob = EncryptionKey.generate()
    sealed = seal(b"x" * 100, bob.public_key, label=LABEL_INTRODUCTION_SEAL)
    assert unseal(sealed, bob, label=LABEL_INTRODUCTION_SEAL) == b"x" * 100
    with pytest.raises(DecryptionError) as other:
        unseal(sealed, EncryptionKey.generate(), label=LABEL_INTRODUCTION_SEAL)
    with pytest.raises(DecryptionError) as label:
        unseal(sealed, bob, label=b"ipfs-share/v1/x25519-wrap")
    assert other.value.message == label.value.message  # no oracle about which check
    with pytest.raises(InvalidInputError):  # a low-order recipient key
        seal(b"x", EncryptionKey.generate().public_key.__class__(bytes(32)), label=b"l")


# -- the receiver -----------------------------------------------------------------------


class Home:
    """A home with one unsealed identity, bob, and his introduction service."""

    def __init__(self, path: Path, *, limits: IntroductionLimits | None = None) -> None:
        self.db = StateDB(path)
        self.ids = IdentityService(path, None, db=self.db, kdf=KdfParams.fastest())
        asyncio.run(self.ids.create("bob", encrypted=False))
        self.keys: IdentityKeys = asyncio.run(self.ids.unlock("bob"))
        self.clock = [0.0]
        self.now = [float(NOW)]
        self.intros = IntroductionService(
            path,
            None,
            self.ids,
            self.db,
            limits=limits,
            now=lambda: self.now[0],
            clock=lambda: self.clock[0],
        )

    def message(self, sender: SigningKey | None = None, **kw: Any) -> bytes:
        sender = sender or SigningKey.generate()
        sent = kw.pop("sent", int(self.now[0]))
        to = kw.pop("to", self.keys.did)
        return make_introduction(sender, to, self.keys.enc_public, sent=sent)

    def receive(self, message: bytes) -> str:
        return self.intros.receive(self.keys, message).outcome


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def test_twenty_strangers_at_once_are_rate_limited_then_capped(home: Home) -> None:
    """The spec's numbers: a bucket of 10 refilled at 1/s, at most 16 pending."""
    strangers = [SigningKey.generate() for _ in range(20)]
    first = [home.receive(home.message(s)) for s in strangers]
    assert first.count("pending") == 10 and first.count("rate_limited") == 10
    home.clock[0] += 10  # ten seconds: ten tokens back
    second = [home.receive(home.message(s)) for s in strangers[10:]]
    assert second.count("pending") == 6 and second.count("capped") == 4
    assert len(home.intros.pending("bob")) == 16
    home.clock[0] += 10
    again = [home.receive(home.message(s)) for s in strangers[:10]]
    assert again == ["refreshed"] * 10  # known pending senders: refreshed, not new rows
    assert len(home.intros.pending("bob")) == 16
    counts = home.intros.counters.by_outcome
    assert counts["rate_limited"] == 10 and counts["capped"] == 4


def test_checks_in_the_order_of_the_spec(home: Home) -> None:
    stranger = SigningKey.generate()
    assert home.receive(b"\x00" * 561) == "oversize"
    assert home.receive(b"\x00" * 48) == "invalid"
    assert home.receive(home.message(stranger, sent=NOW - 301)) == "stale"
    assert home.receive(home.message(stranger, sent=NOW + 301)) == "stale"
    other = did_key(SigningKey.generate().public_key)
    assert home.receive(home.message(stranger, to=other)) == "stale"  # rejected: not ours
    message = home.message(stranger)
    assert home.receive(message) == "pending"
    assert home.receive(message) == "replayed"
    home.now[0] += 601  # out of the replay memory, but then out of the window too
    assert home.receive(message) == "stale"


def test_oversize_and_over_budget_cost_no_crypto(home: Home) -> None:
    """Steps 1-2 drop before any decryption: an unopenable message over budget is counted
    as rate limited, not as invalid (nothing looked inside it)."""
    for _ in range(10):
        assert home.receive(b"\x01" * 100) == "invalid"
    assert home.receive(b"\x01" * 100) == "rate_limited"


def test_known_senders_are_no_introduction_and_accept_makes_a_contact(
    home: Home, tmp_path: Path
) -> None:
    friend, stranger = SigningKey.generate(), SigningKey.generate()
    home.db.contacts.put("friend", did_key(friend.public_key))
    assert home.receive(home.message(friend)) == "known"
    assert home.receive(home.message(stranger)) == "pending"
    did = did_key(stranger.public_key)
    [pending] = home.intros.pending()
    assert (pending.sender, pending.recipient, pending.count) == (did, home.keys.did, 1)
    name = home.intros.accept(did)
    assert name == f"peer-{did[-8:]}" and home.db.contacts.of(did)[0].petname == name
    assert home.intros.pending() == []
    assert home.receive(home.message(stranger)) == "known"  # a contact now
    with pytest.raises(NotFoundError):
        home.intros.accept(did_key(SigningKey.generate().public_key))
    with pytest.raises(InvalidInputError):
        home.intros.accept("not a did")


def test_rejected_senders_are_ignored_and_names_do_not_clash(home: Home) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    assert home.receive(home.message(a)) == "pending"
    assert home.receive(home.message(b)) == "pending"
    assert home.intros.reject(did_key(a.public_key)) == 1
    home.clock[0] += 5
    assert home.receive(home.message(a)) == "rejected"
    home.db.contacts.put("carol", did_key(SigningKey.generate().public_key))
    with pytest.raises(InvalidInputError, match="already names"):
        home.intros.accept(did_key(b.public_key), "carol")
    assert home.intros.accept(did_key(b.public_key), "bee") == "bee"


def test_a_link_registers_its_sender_once(home: Home) -> None:
    sender = SigningKey.generate()
    did = did_key(sender.public_key)
    capsule = "bafyreihcskf4rgwbdmlbt33cj45zo2chhugqsaplmhx3tw3oubz4ewgo54"
    link = format_link(capsule, did)
    assert home.intros.register_link(link) == (capsule, f"peer-{did[-8:]}")
    assert home.intros.register_link(link) == (capsule, None)  # a contact already
    with pytest.raises(FormatError):
        home.intros.register_link(link + "&more=1")


def test_the_repository_caps_and_migrates(tmp_path: Path) -> None:
    repo = IntroductionRepository(tmp_path)
    outcomes = [repo.offer("me", f"s{i}", at=i, max_pending=3) for i in range(5)]
    assert outcomes == ["pending"] * 3 + ["capped"] * 2
    repo.close()
    again = IntroductionRepository(tmp_path)  # reopened: the migration does not run twice
    assert [p.sender for p in again.pending("me")] == ["s0", "s1", "s2"]
    mode = (tmp_path / "agent.sqlite3").stat().st_mode & 0o777
    assert mode == 0o600
    again.close()


def test_open_introduction_refuses_what_it_must(home: Home) -> None:
    message = home.message(SigningKey.generate(), sent=NOW)
    enc = home.keys.encryption
    with pytest.raises(IntroductionRejectedError):
        open_introduction(message, did_key(SigningKey.generate().public_key), enc, now=NOW)
    with pytest.raises(IntroductionRejectedError):
        open_introduction(message, home.keys.did, enc, now=NOW + 301)
    with pytest.raises(DecryptionError):
        open_introduction(message, home.keys.did, EncryptionKey.generate(), now=NOW)
