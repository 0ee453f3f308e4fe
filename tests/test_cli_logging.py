"""``-v``/``-q``/``--log-level``/``IPFS_SHARE_LOG``: debug output names the calls, never a
passphrase or a key, on the real test node."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
import test_cli_share
from test_cli_share import PASSPHRASE, Cli, People, put, share

from ipfs_share.basex import b58encode
from ipfs_share.services.identities import IdentityService

cli = test_cli_share.cli
people = test_cli_share.people


def _secret_forms(home: Path) -> list[str]:
    """The home's identity keys in every spelling a leak might take."""
    ids = IdentityService(home, None, passphrase=lambda _: PASSPHRASE.encode())
    keys = asyncio.run(ids.unlock())
    forms = []
    for secret in (keys.signing.seed_bytes(), keys.encryption.secret_bytes()):
        forms += [secret.hex(), base64.b64encode(secret).decode(), b58encode(secret)]
        forms += [base64.urlsafe_b64encode(secret).decode().rstrip("=")]
    return forms


@pytest.mark.parametrize("how", [["--log-level", "debug"], ["-vv"], ["env"]])
def test_debug_never_prints_a_secret(
    cli: Cli, people: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: list[str]
) -> None:
    if how == ["env"]:
        monkeypatch.setenv("IPFS_SHARE_LOG", "debug")
        how = []
    src = tmp_path / "secret-note.txt"
    src.write_text("the plaintext of the secret note")
    cid = put(cli, people.alice, src)
    capsule = share(cli, people.alice, cid, "--to", "bob")
    runs = [
        cli.ok(people.alice, *how, "put", str(src)),
        cli.ok(people.alice, *how, "share", cid, "--to", "bob"),
        cli.ok(people.bob, *how, "open", capsule, "-o", str(tmp_path / "out.txt")),
        cli.ok(people.alice, *how, "identity", "publish"),
    ]
    err = "".join(r.err for r in runs)
    assert "ipfs-share: debug: ipfs_share.kubo: POST " in err  # debug is on, and says things
    assert PASSPHRASE not in err
    assert "the plaintext of the secret note" not in err
    for form in _secret_forms(people.alice) + _secret_forms(people.bob):
        assert form not in err


def test_quiet_and_a_bad_level(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "q.txt"
    src.write_text("q")
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    loud = cli.ok(people.bob, "open", capsule)
    assert "opening q.txt" in loud.err
    quiet = cli.ok(people.bob, "-q", "open", capsule)
    assert quiet.err == "" and quiet.out == b"q"
    got = cli(people.bob, "--log-level", "chatty", "files")
    assert got.code == 2 and "--log-level" in got.err


def test_a_bad_level_in_the_environment(
    cli: Cli, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPFS_SHARE_LOG", "chatty")
    got = cli(people.bob, "files")
    assert got.code == 3 and "IPFS_SHARE_LOG: expected one of debug" in got.err
