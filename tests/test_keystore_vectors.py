"""Key file vectors (tests/vectors/keystore/): decode and open each, expect its outcome."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

from ipfs_share.errors import IpfsShareError
from ipfs_share.formats.keystore import KeyFile

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))
import vectorfile  # noqa: E402

KEYSTORE_VECTORS = vectorfile.load_dir(VECTORS / "keystore")


@pytest.mark.parametrize("vector", KEYSTORE_VECTORS, ids=lambda v: v.name)
def test_keystore_vector(vector: vectorfile.Vector) -> None:
    assert vector.body is not None
    passphrase = vector.fields["passphrase"].encode()
    if vector.expect == "success":
        key_file = KeyFile.decode(vector.body)
        assert key_file.encode() == vector.body  # canonical: re-encodes to the same bytes
        assert key_file.unlock(passphrase).did == vector.fields["did"]
    else:
        with pytest.raises(IpfsShareError) as info:
            KeyFile.decode(vector.body).unlock(passphrase)
        assert info.value.code == vector.expect, info.value.message


def test_every_outcome_is_covered() -> None:
    outcomes = {v.expect for v in KEYSTORE_VECTORS}
    assert outcomes == {"success", "passphrase_invalid", "format_invalid"}


def test_generator_reproduces_the_files() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_keystore", VECTORS / "keystore" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build()
    assert set(built) == {v.name for v in KEYSTORE_VECTORS}
    for name, text in built.items():
        assert (VECTORS / "keystore" / name).read_text(encoding="utf-8") == text, name


def test_armor_round_trip_and_refusals() -> None:
    (success,) = [v for v in KEYSTORE_VECTORS if v.name == "success"]
    assert success.body is not None
    key_file = KeyFile.decode(success.body)
    armored = key_file.armored()
    assert KeyFile.from_armored(armored) == key_file
    with pytest.raises(IpfsShareError) as info:
        KeyFile.from_armored(armored.replace("-----END", "-----FIN"))
    assert info.value.code == "format_invalid" and info.value.hint
    (plain,) = [v for v in KEYSTORE_VECTORS if v.name == "success_unsealed"]
    assert plain.body is not None
    with pytest.raises(IpfsShareError):
        KeyFile.decode(plain.body).armored()  # an unsealed identity never leaves as is


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decode_of_any_bytes_is_a_value_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(IpfsShareError):
        KeyFile.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_decode_of_a_mutated_key_file_is_a_value_or_a_typed_error(data: st.DataObject) -> None:
    (success,) = [v for v in KEYSTORE_VECTORS if v.name == "success"]
    assert success.body is not None
    body = bytearray(success.body)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(IpfsShareError):
        KeyFile.decode(bytes(body)).unlock(b"correct horse battery staple")
