"""``ipfs-share put / share / open / revoke / shares / files / capability``, run for real.

Each person has their own ipfs-share home under tmp_path, all on the session's ``kubo``
node. Most calls run ``main(argv)`` in-process (stdout captured as bytes, so binary output
is checked byte for byte); stdin pipes and terminals need a real process and run the
installed console script. Identities are made with the cheapest KDF (the passphrase cost
is not what these test); the CLI reads the passphrase from IPFS_SHARE_PASSPHRASE.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import json
import os
import pty
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.cli import main as cli_main
from ipfs_share.cli import progress as progress_module
from ipfs_share.cli.main import EXIT_CODES, main
from ipfs_share.cli.progress import Progress
from ipfs_share.crypto.passphrase import KdfParams
from ipfs_share.formats.capsule import decode_capsule
from ipfs_share.node import RunningNode
from ipfs_share.services.identities import IdentityService

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).with_name("ipfs-share")
PASSPHRASE = "correct horse battery"
FAST = KdfParams.fastest()


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """``cli(home, *argv)``: run the CLI in-process in ``home`` against the test node."""

    def __init__(
        self,
        kubo: RunningNode,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[bytes],
    ) -> None:
        self.api = kubo.api_url
        self._mp = monkeypatch
        self._capsys = capsys
        self.seen = ""  # every byte of output, for the no-secrets check

    def __call__(self, home: Path, *argv: str) -> Result:
        self._mp.setenv("IPFS_SHARE_HOME", str(home))
        code = main(["--api", self.api, *argv])
        out, err = self._capsys.readouterr()
        self.seen += out.decode(errors="replace") + err.decode()
        return Result(code, out, err.decode())

    def ok(self, home: Path, *argv: str) -> Result:
        got = self(home, *argv)
        assert got.code == 0, (argv, got.err)
        return got

    def run(self, home: Path, *argv: str, stdin: bytes | None = None) -> Result:
        """The console script in a process (for stdin pipes)."""
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


@dataclass
class People:
    alice: Path
    bob: Path
    carol: Path
    dids: dict[str, str]


@pytest.fixture
def cli(kubo: RunningNode, monkeypatch: pytest.MonkeyPatch, capsysbinary: Any) -> Cli:
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("IPFS_SHARE_API", raising=False)
    return Cli(kubo, monkeypatch, capsysbinary)


@pytest.fixture
def people(cli: Cli, tmp_path: Path) -> People:
    """alice, bob and carol in three homes; bob and carol published, and alice's contacts."""
    homes = {name: tmp_path / name for name in ("alice", "bob", "carol")}
    dids = {}
    for name, home in homes.items():
        ids = IdentityService(home, None, passphrase=lambda _: PASSPHRASE.encode(), kdf=FAST)
        dids[name] = asyncio.run(ids.create(name)).did
    for name in ("bob", "carol"):
        cli.ok(homes[name], "identity", "publish")
        cli.ok(homes["alice"], "contacts", "add", name, dids[name])
    return People(homes["alice"], homes["bob"], homes["carol"], dids)


def put(cli: Cli, home: Path, path: Path, *extra: str) -> str:
    cid = cli.ok(home, "put", str(path), *extra).text.strip()
    assert re.fullmatch(r"baf[a-z0-9]+", cid), cid
    return cid


def share(cli: Cli, home: Path, cid: str, *extra: str) -> str:
    capsule = cli.ok(home, "share", cid, *extra).text.strip()
    assert re.fullmatch(r"bafyrei[a-z0-9]+", capsule), capsule
    return capsule


def block_get(node: RunningNode, cid: str) -> bytes:
    request = urllib.request.Request(
        f"{node.api_url}/api/v0/block/get?arg={cid}", data=b"", method="POST"
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as resp:
        data: bytes = resp.read()
    return data


def error_code(result: Result) -> str:
    """The error code from a --json run's output."""
    code: str = json.loads(result.out)["error"]["code"]
    return code


# -- the main flow --------------------------------------------------------------------------


def test_put_share_open_range_and_records(cli: Cli, people: People, tmp_path: Path) -> None:
    data = os.urandom(200_000)  # four envelope chunks
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    cid = put(cli, people.alice, src)
    capsule = share(cli, people.alice, cid, "--to", "bob")

    out = tmp_path / "out.bin"
    saved = cli.ok(people.bob, "open", capsule, "-o", str(out))
    assert out.read_bytes() == data
    assert f"to {out}" in saved.text
    # Stdout is binary-safe when it is not a terminal; --as works before and after.
    assert cli.ok(people.bob, "open", capsule).out == data
    assert (
        cli.ok(people.bob, "--as", "bob", "open", capsule, "--range", "65530-65545").out
        == (data[65530:65546])
    )
    assert (
        cli.ok(people.bob, "open", capsule, "--range", "199990-", "--as", "bob").out
        == (data[199990:])
    )
    assert cli(people.bob, "open", capsule, "--range", "9-3").code == 3

    # The sharer's records; the opener's own home recorded the opens.
    listed = cli.ok(people.alice, "shares").text
    assert capsule in listed and "bob" in listed
    shown = cli.ok(people.alice, "shares", "show", capsule).text
    assert "state:      active" in shown and people.dids["bob"] in shown
    assert cli.ok(people.alice, "files").text.startswith(cid)
    assert PASSPHRASE not in cli.seen


def test_open_says_who_shared_it(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "from.txt"
    src.write_text("from alice\n")
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    alice = people.dids["alice"]
    # bob has no contact for alice yet: the did, marked as a stranger.
    piped = cli.ok(people.bob, "open", capsule)
    assert piped.text == "from alice\n"  # stdout stays the plaintext alone
    assert f"shared by {alice} (not one of your contacts)" in piped.err
    cli.ok(people.bob, "contacts", "add", "alice", alice)
    saved = cli.ok(people.bob, "open", capsule, "-o", str(tmp_path / "got.txt"))
    assert f"shared by alice ({alice})" in saved.text
    info = cli.ok(people.bob, "open", capsule, "-o", str(tmp_path / "j.txt"), "--json").json()
    assert (info["issuer"], info["issuer_name"]) == (alice, "alice")


def test_a_resigned_copy_of_a_capsule_does_not_open(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    """carol, who is no recipient, copies the stanzas and commitment of alice's capsule
    for bob into a capsule of her own: signed by her, no expiry, no policy, no capability,
    downloads allowed. Every check before the unwrap passes; the commitment refuses it,
    before and after alice revokes the original."""
    from ipfs_share.crypto.labels import LABEL_CAPSULE
    from ipfs_share.formats import dagcbor
    from ipfs_share.storage.kubo import KuboStorage

    src = tmp_path / "terms.txt"
    src.write_text("only on alice's terms\n")
    cid = put(cli, people.alice, src)
    original = share(
        cli, people.alice, cid, "--to", "bob", "--expires", "1h", "--no-download",
        "--until", "2999-01-01", "--capability-from", "self",
    )  # fmt: skip
    assert cli(people.bob, "open", original).code == EXIT_CODES["capability_required"]
    # carol publishes her identity and revocation list the ordinary way: a share of her own.
    mine = tmp_path / "mine.txt"
    mine.write_text("carol's\n")
    share(cli, people.carol, put(cli, people.carol, mine), "--to", "carol")

    async def forge() -> str:
        ids = IdentityService(people.carol, None, passphrase=lambda _: PASSPHRASE.encode())
        carol = await ids.unlock()
        value = dagcbor.decode(block_get(kubo, original))
        value.update(
            issuer=carol.did, expires=None, perms={"download": True}, policy=None, cap=None
        )
        del value["sig"]
        value["sig"] = carol.signing.sign(LABEL_CAPSULE + dagcbor.encode(value))
        async with await KuboStorage.connect(kubo.api_url) as store:
            return await store.block_put(dagcbor.encode(value), codec="dag-cbor")

    forged = asyncio.run(forge())
    assert decode_capsule(block_get(kubo, forged)).issuer == people.dids["carol"]  # it verifies
    for revoked in (False, True):
        if revoked:
            cli.ok(people.alice, "revoke", original)
        refused = cli(people.bob, "open", forged, "-o", str(tmp_path / "stolen.txt"), "--json")
        assert refused.code == EXIT_CODES["key_unwrap_failed"] == 10, refused.err
        assert error_code(refused) == "key_unwrap_failed"
        assert "signed again" in refused.err
        assert not (tmp_path / "stolen.txt").exists()


def test_ranges_across_steps_and_saved(cli: Cli, people: People, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)  # more than one range step (4 MiB)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    a, b = 4 * 1024 * 1024 - 100, 4 * 1024 * 1024 + 100
    assert cli.ok(people.bob, "open", capsule, "--range", f"{a}-{b}").out == data[a : b + 1]
    assert cli.ok(people.bob, "open", capsule, "--range", "1-").out == data[1:]
    dest = tmp_path / "part.bin"
    saved = cli.ok(people.bob, "open", capsule, "--range", f"{a}-", "-o", str(dest), "--json")
    assert dest.read_bytes() == data[a:]
    assert saved.json()["range"] == [a, len(data) - 1]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert cli(people.bob, "open", capsule, "--range", f"{len(data) + 1}-").code == 3


def test_json_shapes(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("some notes\n")
    f = cli.ok(people.alice, "put", str(src), "--name", "n.txt", "--type", "text/x-notes", "--json")
    f_json = f.json()
    assert f_json["name"] == "n.txt" and f_json["size"] == 11
    assert f_json["media_type"] == "text/x-notes" and f_json["owner"] == people.dids["alice"]
    s = cli.ok(people.alice, "share", f_json["content"], "--to", "bob,carol", "--expires", "never")
    capsule = s.text.strip()
    shown = cli.ok(people.alice, "shares", "show", capsule, "--json").json()
    assert shown["expires"] is None and shown["state"] == "active"
    assert {r["name"] for r in shown["recipients"]} == {"bob", "carol"}
    assert shown["opens"] == [] and shown["revocation_head"] is None

    opened = cli.ok(people.carol, "open", capsule, "-o", str(tmp_path / "c.txt"), "--json").json()
    assert opened["capsule"] == capsule and opened["content"] == f_json["content"]
    assert opened["name"] == "n.txt" and opened["size"] == 11 and opened["saved_to"]
    listed = cli.ok(people.alice, "shares", "list", "--content", f_json["content"], "--json").json()
    assert [x["capsule"] for x in listed["shares"]] == [capsule]
    files = cli.ok(people.alice, "files", "list", "--json").json()["files"]
    assert [x["content"] for x in files] == [f_json["content"]]
    # Without -o, stdout carries the file, so --json is refused rather than mixed in.
    assert cli(people.carol, "open", capsule, "--json").code == 3


def test_revoke_then_open_is_refused(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("soon gone\n")
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    assert cli.ok(people.bob, "open", capsule).text == "soon gone\n"

    revoked = cli.ok(people.alice, "revoke", capsule, "--json").json()
    assert revoked["revoked"] == [capsule] and revoked["revocation_head"].startswith("bafy")
    assert revoked["rotated_to"] is None and revoked["reissued"] == []
    assert "cannot erase" in revoked["note"]

    refused = cli(people.bob, "open", capsule, "-o", str(tmp_path / "x"), "--json")
    assert refused.code == EXIT_CODES["share_revoked"] == 11
    assert error_code(refused) == "share_revoked"
    assert not (tmp_path / "x").exists()
    shown = cli.ok(people.alice, "shares", "show", capsule, "--json").json()
    assert shown["state"] == "revoked" and shown["revocation_head"] == revoked["revocation_head"]


def test_revoke_rotate_drop(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "plan.txt"
    src.write_text("the plan\n")
    cid = put(cli, people.alice, src)
    capsule = share(cli, people.alice, cid, "--to", "bob,carol")
    done = cli.ok(people.alice, "revoke", capsule, "--rotate", "--drop", "bob")
    assert "need its new ID" in done.err  # nothing was sent through mailboxes
    assert f"revoked {capsule} (to bob, carol), re-issued as bafyrei" in done.text
    again = cli.ok(people.alice, "shares", "show", capsule, "--json").json()
    assert again["state"] == "replaced"
    new_capsule = again["replaced_by"]
    assert cli(people.bob, "open", capsule).code == 11
    assert cli(people.bob, "open", new_capsule).code == EXIT_CODES["recipient_not_authorized"]
    assert cli.ok(people.carol, "open", new_capsule).text == "the plan\n"
    new = cli.ok(people.alice, "shares", "show", new_capsule, "--json").json()
    assert new["content"] != cid  # re-keyed: new ciphertext
    assert cli.ok(people.alice, "files", "--json").json()["files"][0]["content"] == new["content"]


def test_drop_with_rotate_leaves_the_dropped_recipient_out_of_every_reissue(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    src = tmp_path / "two.txt"
    src.write_text("two shares\n")
    cid = put(cli, people.alice, src)
    only_bob = share(cli, people.alice, cid, "--to", "bob")
    both = share(cli, people.alice, cid, "--to", "bob,carol")
    assert cli(people.alice, "--as", "bob", "revoke", both).code == 6  # bob is not local there
    done = cli.ok(people.alice, "revoke", both, "--rotate", "--drop", "bob", "--json").json()
    assert set(done["revoked"]) == {both, only_bob}  # rotation revokes every share of it
    # bob is dropped from every re-issued capsule, not only from the revoked one: with a
    # new key, another share of the same content must not carry it to him.
    names = [{r["name"] for r in c["recipients"]} for c in done["reissued"]]
    assert names == [{"carol"}]
    for c in done["reissued"]:
        assert cli(people.bob, "open", c["capsule"]).code == EXIT_CODES["recipient_not_authorized"]


def test_view_only_refuses_saving_but_not_reading(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "secret.txt"
    src.write_text("look, do not keep\n")
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob", "--no-download")
    dest = tmp_path / "kept.txt"
    for extra in ([], ["--range", "0-3"]):
        refused = cli(people.bob, "open", capsule, "-o", str(dest), *extra)
        assert refused.code == EXIT_CODES["download_not_allowed"] == 13
        assert "viewing only" in refused.err and "modified client can ignore" in refused.err
        assert not dest.exists()
    assert cli.ok(people.bob, "open", capsule).text == "look, do not keep\n"


def test_capability_issue_and_open(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "vault.txt"
    src.write_text("behind a capability\n")
    capsule = share(
        cli, people.alice, put(cli, people.alice, src), "--to", "bob", "--capability-from", "self"
    )
    missing = cli(people.bob, "open", capsule)
    assert missing.code == EXIT_CODES["capability_required"] == 10
    token = tmp_path / "bob.cap"
    issued = cli.ok(people.alice, "capability", "issue", capsule, "--to", "bob", "-o", str(token))
    assert str(token) in issued.text and token.stat().st_mode & 0o077 == 0
    opened = cli.ok(people.bob, "open", capsule, "--capability", str(token))
    assert opened.text == "behind a capability\n"
    # Piped stdout takes the raw token too; --json gives it in base64 with its facts.
    raw = cli.ok(people.alice, "capability", "issue", capsule, "--to", "bob").out
    as_json = cli.ok(people.alice, "capability", "issue", capsule, "--to", "bob", "--json").json()
    assert as_json["audience"] == people.dids["bob"] and as_json["capsule"] == capsule
    assert len(raw) > 100 and as_json["token_base64"]
    # A token for bob does not open for carol (who is not a recipient anyway).
    assert cli(people.carol, "open", capsule, "--capability", str(token)).code == 10


def test_window_policy_and_params(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    src = tmp_path / "w.txt"
    src.write_text("windowed\n")
    cid = put(cli, people.alice, src)
    capsule = share(
        cli, people.alice, cid, "--to", "bob,carol", "--allow", "bob", "--until", "2999-01-01"
    )
    assert cli.ok(people.bob, "open", capsule).text == "windowed\n"
    assert cli(people.carol, "open", capsule).code == EXIT_CODES["policy_denied"]
    other = share(
        cli, people.alice, cid, "--to", "bob", "--policy", "acme/x", "--policy-param", "n=3",
        "--policy-param", "s=x=y",
    )  # fmt: skip
    policy = decode_capsule(block_get(kubo, other)).policy
    assert policy is not None and policy.provider == "acme/x"
    assert dict(policy.params) == {"n": 3, "s": "x=y"}  # integers stay integers
    assert cli(people.bob, "open", other).code == EXIT_CODES["policy_provider_required"]
    mixed = cli(people.alice, "share", cid, "--to", "bob", "--policy", "acme/x", "--allow", "bob")
    assert mixed.code == 3


def test_put_from_a_stdin_pipe(cli: Cli, people: People, tmp_path: Path) -> None:
    data = os.urandom(150_000)
    put_out = cli.run(people.alice, "put", "-", "--name", "piped.bin", "--json", stdin=data)
    assert put_out.code == 0, put_out.err
    f = put_out.json()
    assert f["size"] == len(data) and f["name"] == "piped.bin"
    capsule = share(cli, people.alice, f["content"], "--to", "bob")
    assert cli.ok(people.bob, "open", capsule).out == data
    assert not list((people.alice / "tmp").iterdir())  # the ciphertext spool is gone


def test_files_rm_says_what_unpinning_does_not_do(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "r.txt"
    src.write_text("remove me\n")
    cid = put(cli, people.alice, src)
    share(cli, people.alice, cid, "--to", "bob")
    gone = cli.ok(people.alice, "files", "rm", cid)
    assert gone.err.count("does not erase") == 1
    assert "1 share not revoked still pin it" in gone.text
    assert cli.ok(people.alice, "files", "--json").json()["files"] == []
    assert cli(people.alice, "files", "rm", cid).code == EXIT_CODES["not_found"]


def test_exit_codes_for_bad_input_and_missing_identities(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    src = tmp_path / "f.txt"
    src.write_text("x")
    assert cli(people.bob, "open", "not-a-cid").code == 3
    assert error_code(cli(people.bob, "open", "nope", "-o", "x", "--json")) == "cid_invalid"
    assert cli(people.alice, "share", "bafy-nope", "--to", "bob").code == 3
    assert cli(people.alice, "put", str(src), "--as", "nobody").code == 6
    assert cli(tmp_path / "empty-home", "put", str(src)).code == EXIT_CODES["identity_not_found"]
    assert cli(people.alice, "put", str(tmp_path / "missing")).code == 3
    cid = put(cli, people.alice, src)
    assert cli(people.alice, "share", cid, "--to", "stranger").code == 6
    assert cli(people.alice, "share", cid, "--to", "bob", "--expires", "3x").code == 3
    assert cli(people.bob, "share", cid, "--to", "alice").code == 6  # bob never put it
    assert cli(people.alice, "revoke", cid).code == 6  # a content CID is not a share
    assert cli(people.alice, "share", cid).code == 2  # --to is required


# -- terminals ------------------------------------------------------------------------------


def _on_a_tty(cli: Cli, home: Path, *argv: str) -> tuple[int, str]:
    """Run the console script with stdout on a pseudo-terminal; (exit code, stderr)."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "IPFS_SHARE_HOME": str(home), "IPFS_SHARE_PASSPHRASE": PASSPHRASE}
    try:
        done = subprocess.run(
            [str(CLI), "--api", cli.api, *argv],
            stdout=secondary,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    return done.returncode, done.stderr.decode()


def test_binary_is_not_dumped_on_a_terminal(cli: Cli, people: People, tmp_path: Path) -> None:
    src = tmp_path / "b.bin"
    src.write_bytes(b"\x00\x01binary\xff" * 100)
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    code, err = _on_a_tty(cli, people.bob, "open", capsule)
    assert code == 3 and "refusing to write binary data to the terminal" in err
    assert "-o FILE" in err
    code, err = _on_a_tty(cli, people.alice, "capability", "issue", capsule, "--to", "bob")
    assert code == 3 and "terminal" in err


# -- pieces ---------------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_after_a_moment() -> None:
    ticks = iter([0.0, 0.1, 1.0, 1.05, 2.0])
    err = _Tty()
    with Progress(err, "put big", 100 << 20, clock=lambda: next(ticks), width=70) as bar:
        bar.update(1 << 20)  # 0.1 s in: too early to draw
        assert err.getvalue() == ""
        bar.update(50 << 20)  # 1.0 s: drawn
        bar.update(60 << 20)  # 1.05 s: too soon after the last draw
        bar.update(200 << 20)  # 2.0 s: past the total (ciphertext overhead) is clamped
    frames = [f.rstrip() for f in err.getvalue().split("\r") if f.strip()]
    assert frames[0].startswith("put big [") and " 50%" in frames[0]
    assert "100%" in frames[1] and "100.0/100.0 MiB" in frames[1]
    assert err.getvalue().endswith("\r")  # wiped at the end
    quiet = io.StringIO()  # not a terminal
    Progress(quiet, "x", 10, clock=iter([0.0, 5.0]).__next__).update(5)
    assert quiet.getvalue() == ""
    unknown = _Tty()
    Progress(unknown, "stdin", None, clock=iter([0.0, 2.0]).__next__, width=60).update(3 << 20)
    assert "stdin  3.0 MiB  1.5 MiB/s" in unknown.getvalue()


def test_doctests() -> None:
    import doctest

    from ipfs_share.cli import _shared

    for module in (progress_module, _shared):
        assert doctest.testmod(module).failed == 0


def test_readme_exit_code_table_matches_the_cli() -> None:
    """The README's table is checked against cli/main.py's, row by row."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, int] = {}
    exits: set[int] = set()
    for line in section.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|(.*)\|(.*)\|\s*$", line)
        if m:
            exits.add(int(m[1]))
            for code in re.findall(r"`([a-z_]+)`", m[3]):
                documented[code] = int(m[1])
    assert documented == EXIT_CODES
    assert {0, 2, 130, 141} <= exits
    doc = cli_main.__doc__ or ""
    for code, exit_code in EXIT_CODES.items():
        assert re.search(rf"^{exit_code}\s", doc, re.M), f"{exit_code} ({code}) not in main.py"


def test_quickstart_runs_the_whole_flow(
    kubo: RunningNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples/quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    asyncio.run(module.main(kubo.api_url, tmp_path, kdf=FAST))
    out = capsys.readouterr().out
    assert "bob opened it and read" in out
    assert "bob's next open is refused: share_revoked" in out


def test_open_to_a_real_stdout_and_the_console_scripts_exit(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    # Several pieces of 4 MiB, written with os.write to the pipe the test reads.
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom((9 << 20) + 12345))
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    got = cli.run(people.bob, "open", capsule)
    assert got.code == 0, got.err
    assert (
        hashlib.sha256(got.out).digest() == hashlib.sha256(src.read_bytes()).digest()
    )  # no diff of 9 MiB
    assert "opening big.bin, shared by" in got.err
    # The console script's exit code and its last output (block-buffered on a pipe)
    # survive its quick exit.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(IPFS_SHARE_HOME=str(people.bob), IPFS_SHARE_PASSPHRASE=PASSPHRASE)
    usage = subprocess.run(
        [str(CLI), "--json", "open"], capture_output=True, env=env, timeout=60, check=False
    )
    assert usage.returncode == 2 and usage.stdout.startswith(b'{"error"'), usage
    # A reader that stops early: the documented exit code, no traceback.
    reader = subprocess.Popen(
        [str(CLI), "--api", kubo.api_url, "open", capsule],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert len(reader.stdout.read(1000)) == 1000
    reader.stdout.close()
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 141, err
    assert "Traceback" not in err


def test_a_stdout_that_takes_no_more_bytes_is_an_error_never_a_success(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    # /dev/full refuses every write (ENOSPC), as a full disk does: the plaintext written
    # straight to the descriptor, a listing left in stdout's buffer until the exit, and
    # --version before the dispatcher, all say so and end with store_error's code.
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(5 << 20))
    capsule = share(cli, people.alice, put(cli, people.alice, src), "--to", "bob")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(IPFS_SHARE_HOME=str(people.bob), IPFS_SHARE_PASSPHRASE=PASSPHRASE)

    def to_dev_full(argv: list[str]) -> tuple[int, str]:
        api = ["--api", kubo.api_url] if argv != ["--version"] else []
        with open("/dev/full", "wb") as full:
            done = subprocess.run(
                [str(CLI), *api, *argv],
                stdout=full,
                stderr=subprocess.PIPE,
                env=env,
                timeout=60,
                check=False,
            )
        return done.returncode, done.stderr.decode()

    for argv in (["open", capsule], ["identity", "list"], ["--version"]):
        returncode, err = to_dev_full(argv)
        assert returncode == EXIT_CODES["store_error"], (argv, err)
        assert "cannot write to stdout: No space left on device" in err, (argv, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
    # Unbuffered (PYTHONUNBUFFERED, as many containers set it), a result fails where it is
    # printed, and a --json error report after it has nowhere to go but stderr.
    env["PYTHONUNBUFFERED"] = "1"
    for argv, code in (
        (["identity", "list"], "store_error"),
        (["--json", "identity", "list"], "store_error"),
        (["--json", "open", capsule], "invalid_input"),  # --json needs -o: said on stderr
    ):
        returncode, err = to_dev_full(argv)
        assert returncode == EXIT_CODES[code], (argv, err)
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
