"""``ipfs-share keychain ...`` and ``put --keychain``, run for real on the session node.

Each person has their own home; commands run in-process (``main(argv)``), except encrypt
and decrypt, which read stdin and run the console script. Offers and accepts are handed
over with ``keychain receive CID`` (the mailbox carries them once it knows the kind).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.cli.main import EXIT_CODES, main
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.node import RunningNode
from ipfs_share.services.identities import IdentityService

CLI = Path(sys.executable).with_name("ipfs-share")
PASSPHRASE = "keychain passphrase"


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, kubo: RunningNode, mp: pytest.MonkeyPatch, capsys: Any) -> None:
        self.api = kubo.api_url
        self._mp = mp
        self._capsys = capsys

    def __call__(self, home: Path, *argv: str) -> Result:
        self._mp.setenv("IPFS_SHARE_HOME", str(home))
        code = main(["--api", self.api, *argv])
        out, err = self._capsys.readouterr()
        return Result(code, out, err.decode())

    def ok(self, home: Path, *argv: str) -> Result:
        got = self(home, *argv)
        assert got.code == 0, (argv, got.err, got.out)
        return got

    def run(self, home: Path, *argv: str, stdin: bytes) -> Result:
        env = {**os.environ, "IPFS_SHARE_HOME": str(home), "IPFS_SHARE_PASSPHRASE": PASSPHRASE}
        done = subprocess.run(
            [str(CLI), "--api", self.api, *argv],
            input=stdin,
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr.decode())


@pytest.fixture
def cli(kubo: RunningNode, monkeypatch: pytest.MonkeyPatch, capsysbinary: Any) -> Cli:
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("IPFS_SHARE_API", raising=False)
    return Cli(kubo, monkeypatch, capsysbinary)


@pytest.fixture
def homes(cli: Cli, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    for name in ("owner", "bob", "carol"):
        home = tmp_path / name
        ids = IdentityService(
            home, None, passphrase=lambda _: PASSPHRASE.encode(), kdf=KdfParams.fastest()
        )
        out[name] = (home, asyncio.run(ids.create(name)).did)
        cli.ok(home, "identity", "publish")
    for name in ("bob", "carol"):
        cli.ok(out["owner"][0], "contacts", "add", name, out[name][1])
    return out


def invite(cli: Cli, sharer: Path, to: Path, fp: str, who: str, *flags: str) -> None:
    offer = cli.ok(sharer, "--json", "keychain", "share", fp, "--to", who, *flags).json()
    assert offer["status"] == "pending"
    accepted = cli.ok(to, "--json", "keychain", "receive", offer["offer"]).json()
    assert accepted["accepted"] == [offer["offer"]]
    released = cli.ok(sharer, "--json", "keychain", "receive", accepted["wrote"][0]).json()
    assert released["released"] == [offer["offer"]]
    deadline = time.monotonic() + 20
    while not cli.ok(to, "--json", "keychain", "sync").json()["received"]:
        assert time.monotonic() < deadline, "the release did not arrive"
        time.sleep(0.3)


def test_the_keychain_commands(cli: Cli, homes: dict[str, tuple[Path, str]]) -> None:
    (owner, _), (bob, bob_did), (carol, carol_did) = homes["owner"], homes["bob"], homes["carol"]
    fp = cli.ok(owner, "keychain", "create", "team").out.decode().strip()
    assert fp.startswith("bafyrei")
    listed = cli.ok(owner, "--json", "keychain", "list").json()["keychains"]
    assert [k["name"] for k in listed] == ["team"]

    invite(cli, owner, bob, fp, "bob", "--allow-sharing")
    shown = cli.ok(bob, "--json", "keychain", "show", fp[:12]).json()
    assert shown["name"] == "team" and shown["permissions"]["allow_sharing"]

    sealed = cli.run(bob, "keychain", "encrypt", fp, "--ad", "doc", stdin=b"for the team")
    assert sealed.code == 0, sealed.err
    plain = cli.run(owner, "keychain", "decrypt", fp, "--ad", "doc", stdin=sealed.out)
    assert (plain.code, plain.out) == (0, b"for the team")
    wrong_ad = cli.run(owner, "keychain", "decrypt", fp, "--ad", "other", stdin=sealed.out)
    assert wrong_ad.code == EXIT_CODES["decryption_failed"]

    invite(cli, bob, carol, fp, carol_did)
    refused = cli(carol, "--json", "keychain", "share", fp, "--to", bob_did)
    assert refused.code == EXIT_CODES["permission_denied"] == 10
    assert refused.json()["error"]["code"] == "permission_denied"

    cli.ok(owner, "keychain", "sync")  # owner learns carol joined (through bob)
    key = shown["keys"][0]["fingerprint"]
    holders = cli.ok(owner, "--json", "keychain", "participants", fp, "--key", key[:10]).json()
    assert [p["did"] for p in holders["participants"]][-1] == carol_did
    perms = cli.ok(owner, "--json", "keychain", "permissions", fp, carol_did).json()
    assert not perms["allow_sharing"]
    granted = cli.ok(
        owner, "--json", "keychain", "permissions", fp, carol_did, "--allow-rotation"
    ).json()
    assert granted["allow_rotation"] and not granted["allow_sharing"]

    banned = cli.ok(owner, "--json", "keychain", "ban", fp, carol_did).json()
    assert banned["rotated_to"] and banned["delivered_to"] == 2

    other = cli(owner, "--json", "keychain", "share", fp, "--to", carol_did).code
    assert other == EXIT_CODES["permission_denied"]  # carol is banned


def test_put_with_a_keychain_and_open(
    cli: Cli, homes: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    (owner, _), (bob, _) = homes["owner"], homes["bob"]
    fp = cli.ok(owner, "keychain", "create", "files").out.decode().strip()
    src = tmp_path / "plan.txt"
    src.write_bytes(b"the plan")
    put = cli.ok(owner, "--json", "put", str(src), "--keychain", fp).json()
    invite(cli, owner, bob, fp, "bob")  # bob joins after the put
    out = tmp_path / "opened.txt"
    cli.ok(bob, "open", put["keychain_file"], "-o", str(out))
    assert out.read_bytes() == b"the plan"
    stranger = cli(homes["carol"][0], "open", put["keychain_file"], "-o", str(out))
    assert stranger.code == EXIT_CODES["keychain_not_found"]


def test_cancel_and_outgoing(cli: Cli, homes: dict[str, tuple[Path, str]]) -> None:
    owner = homes["owner"][0]
    fp = cli.ok(owner, "keychain", "create", "drafts").out.decode().strip()
    cli.ok(owner, "keychain", "share", fp, "--to", "bob")
    assert len(cli.ok(owner, "--json", "keychain", "outgoing").json()["outgoing"]) == 1
    cancelled = cli.ok(owner, "--json", "keychain", "cancel", fp, "--to", "bob").json()
    assert [c["status"] for c in cancelled["cancelled"]] == ["cancelled"]
    assert cli.ok(owner, "--json", "keychain", "outgoing").json()["outgoing"] == []
    again = cli(owner, "keychain", "cancel", fp, "--to", "bob")
    assert again.code == EXIT_CODES["keychain_not_found"]
    assert any(
        r["kind"] == "keychain" for r in cli.ok(owner, "--json", "republish").json()["records"]
    )
