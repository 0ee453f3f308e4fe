"""Recipient stanzas: round trip with injected randomness, the vectors in
tests/vectors/stanza/, and the rules for low-order points and failures."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from nacl.bindings import crypto_aead_chacha20poly1305_ietf_decrypt

from ipfs_share.crypto import wrap as wrap_module
from ipfs_share.crypto.hkdf import hkdf
from ipfs_share.crypto.labels import LABEL_WRAP
from ipfs_share.crypto.random import DeterministicRng
from ipfs_share.crypto.stream import FileKey
from ipfs_share.crypto.wrap import STANZA_SIZE, Stanza, unwrap, wrap
from ipfs_share.crypto.x25519 import EncryptionKey, PublicEncryptionKey, x25519
from ipfs_share.errors import (
    FormatError,
    InvalidInputError,
    IpfsShareError,
    KeyUnwrapFailedError,
    RecipientNotAuthorizedError,
)

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))
import vectorfile  # noqa: E402

STANZA_VECTORS = vectorfile.load_dir(VECTORS / "stanza")
ORDER_8 = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def _load_generator(folder: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"generate_{folder}", VECTORS / folder / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stanzas(body: bytes) -> list[Stanza]:
    assert len(body) % STANZA_SIZE == 0
    return [Stanza.from_bytes(body[i : i + STANZA_SIZE]) for i in range(0, len(body), STANZA_SIZE)]


@pytest.mark.parametrize("vector", STANZA_VECTORS, ids=lambda v: v.name)
def test_stanza_vector(vector: vectorfile.Vector) -> None:
    me = EncryptionKey(vector.hex("identity"))
    assert me.public_key.to_text() == vector.fields["recipient"]
    assert vector.body is not None
    stanzas = _stanzas(vector.body)
    if vector.expect == "success":
        assert unwrap(stanzas, me).secret_bytes() == vector.hex("file_key")
    else:
        with pytest.raises(IpfsShareError) as info:
            unwrap(stanzas, me)
        assert info.value.code == vector.expect


def test_every_outcome_is_covered() -> None:
    outcomes = {v.expect for v in STANZA_VECTORS}
    assert outcomes == {"success", "recipient_not_authorized", "key_unwrap_failed"}


def test_generator_reproduces_the_files() -> None:
    built = _load_generator("stanza").build()
    on_disk = {v.name for v in STANZA_VECTORS}
    assert set(built) == on_disk
    for name, text in built.items():
        assert (VECTORS / "stanza" / name).read_text(encoding="utf-8") == text, name


def test_stanza_follows_the_spec_formulas() -> None:
    # Recompute one stanza from docs/spec/keys.md with the primitives, independently.
    rng = DeterministicRng(b"formula")
    me, file_key = EncryptionKey.generate(rng), FileKey.generate(rng)
    e = DeterministicRng(b"ephemeral")(32)
    (stanza,) = wrap(file_key, [me.public_key], rng=DeterministicRng(b"ephemeral"))
    assert stanza.ephemeral == bytes(EncryptionKey(e).public_key)
    shared = x25519(e, bytes(me.public_key))
    wrap_key = hkdf(
        shared, salt=stanza.ephemeral + bytes(me.public_key), info=LABEL_WRAP, length=32
    )
    opened = crypto_aead_chacha20poly1305_ietf_decrypt(stanza.body, None, bytes(12), wrap_key)
    assert opened == file_key.secret_bytes()


def test_round_trip_many_recipients() -> None:
    rng = DeterministicRng(b"many")
    keys = [EncryptionKey.generate(rng) for _ in range(20)]
    file_key = FileKey.generate(rng)
    stanzas = wrap(file_key, [k.public_key for k in keys], rng)
    assert len(stanzas) == 20 and len({s.ephemeral for s in stanzas}) == 20
    for key in keys:
        assert unwrap(stanzas, key) == file_key
    with pytest.raises(RecipientNotAuthorizedError):
        unwrap(stanzas, EncryptionKey.generate(rng))


def test_same_rng_same_stanzas_and_fresh_ephemerals_otherwise() -> None:
    me, file_key = EncryptionKey(bytes(32)), FileKey(bytes(32))
    assert wrap(file_key, [me.public_key], DeterministicRng(b"x")) == wrap(
        file_key, [me.public_key], DeterministicRng(b"x")
    )
    assert wrap(file_key, [me.public_key]) != wrap(file_key, [me.public_key])


def test_wrap_refuses_bad_recipient_lists() -> None:
    file_key = FileKey(bytes(32))
    me = EncryptionKey(bytes(32)).public_key
    with pytest.raises(InvalidInputError, match="at least one recipient"):
        wrap(file_key, [])
    with pytest.raises(InvalidInputError, match="distinct recipients"):
        wrap(file_key, [me, me])
    for low in (bytes(32), ORDER_8):
        with pytest.raises(InvalidInputError, match="full order"):
            wrap(file_key, [PublicEncryptionKey(low)])


def test_unwrap_of_no_stanzas_is_not_authorized() -> None:
    with pytest.raises(RecipientNotAuthorizedError, match="among 0"):
        unwrap([], EncryptionKey(bytes(32)))


def test_first_matching_stanza_wins() -> None:
    me = EncryptionKey(bytes(range(32)))
    a, b = FileKey(b"\x01" * 32), FileKey(b"\x02" * 32)
    stanzas = wrap(a, [me.public_key]) + wrap(b, [me.public_key])
    assert unwrap(stanzas, me) == a


def test_low_order_stanza_fails_even_after_a_match() -> None:
    me = EncryptionKey(bytes(range(32)))
    stanzas = [*wrap(FileKey(bytes(32)), [me.public_key]), Stanza(ORDER_8, bytes(48))]
    with pytest.raises(KeyUnwrapFailedError):
        unwrap(stanzas, me)


def test_stanza_codec_is_strict() -> None:
    stanza = Stanza(b"e" * 32, b"b" * 48)
    assert Stanza.from_bytes(bytes(stanza)) == stanza
    for n in (0, 79, 81):
        with pytest.raises(FormatError):
            Stanza.from_bytes(bytes(n))
    with pytest.raises(FormatError):
        Stanza(b"e" * 31, b"b" * 48)
    with pytest.raises(FormatError):
        Stanza(b"e" * 32, bytearray(48))  # type: ignore[arg-type]


def test_errors_carry_no_secret() -> None:
    me = EncryptionKey(bytes(range(32)))
    file_key = FileKey(b"\x07" * 32)
    stanzas = wrap(file_key, [EncryptionKey(bytes(32)).public_key])
    for bad in (stanzas, [Stanza(bytes(32), bytes(48))]):
        with pytest.raises(IpfsShareError) as info:
            unwrap(bad, me)
        text = repr(info.value) + str(info.value) + info.value.hint
        assert me.secret_bytes().hex() not in text and file_key.secret_bytes().hex() not in text


def test_doctests() -> None:
    assert doctest.testmod(wrap_module).failed == 0


def test_spec_worked_example_is_the_success_vector() -> None:
    spec = (Path(__file__).parent.parent / "docs" / "spec" / "keys.md").read_text()
    vector = next(v for v in STANZA_VECTORS if v.name == "success")
    assert vector.body is not None
    stanza = Stanza.from_bytes(vector.body)
    for value in (
        vector.fields["identity"],
        vector.fields["recipient"],
        vector.fields["file_key"],
        stanza.ephemeral.hex(),
        stanza.body.hex()[:64],
        stanza.body.hex()[64:],
    ):
        assert value in spec, value
