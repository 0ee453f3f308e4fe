"""The newcomer pass, run for real (issue 13): views that agree, the CLI saying what it
read, revoke --rotate doing what a user means, and mistakes forgiven.

Each person has a home under tmp_path, all on the session's ``kubo`` node; the CLI runs
in-process (``main(argv)``) as in test_cli_share.py.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_cli_share import FAST, PASSPHRASE, Cli, People, Result, block_get, put, share

from ipfs_share import errors
from ipfs_share.cli.main import EXIT_CODES
from ipfs_share.client import connect
from ipfs_share.formats.capsule import Perms, decode_capsule
from ipfs_share.node import RunningNode
from ipfs_share.services.identities import IdentityService

ROOT = Path(__file__).resolve().parent.parent
UNIX_SECONDS = re.compile(r"(?<![\w.-])1[5-9]\d{8}(?![\w.-])")  # a Unix time, 2017-2033


@pytest.fixture
def cli(kubo: RunningNode, monkeypatch: pytest.MonkeyPatch, capsysbinary: Any) -> Cli:
    monkeypatch.setenv("IPFS_SHARE_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("IPFS_SHARE_API", raising=False)
    return Cli(kubo, monkeypatch, capsysbinary)


def make_people(cli: Cli, tmp_path: Path, *names: str) -> dict[str, Path]:
    """Homes with one published identity each; the first has the others as contacts, and
    each other has the first."""
    homes = {n: tmp_path / n for n in names}
    dids = {}
    for name, home in homes.items():
        ids = IdentityService(home, None, passphrase=lambda _: PASSPHRASE.encode(), kdf=FAST)
        dids[name] = asyncio.run(ids.create(name)).did
        cli.ok(home, "identity", "publish")
    first = names[0]
    for name in names[1:]:
        cli.ok(homes[first], "contacts", "add", name, dids[name])
        cli.ok(homes[name], "contacts", "add", first, dids[first])
    return homes


@pytest.fixture
def people(cli: Cli, tmp_path: Path) -> People:
    homes = make_people(cli, tmp_path, "alice", "bob", "carol")
    dids = {n: IdentityService(h, None).get().did for n, h in homes.items()}
    return People(homes["alice"], homes["bob"], homes["carol"], dids)


def code_of(result: Result) -> str:
    found: str = json.loads(result.out)["error"]["code"]
    return found


def put_text(cli: Cli, home: Path, tmp_path: Path, text: str, name: str = "note.txt") -> str:
    src = tmp_path / name
    src.write_text(text)
    return put(cli, home, src)


# -- silence where it should speak ----------------------------------------------------------


def test_inbox_says_what_it_read_and_why_some_did_not_answer(
    cli: Cli, tmp_path: Path, kubo: RunningNode
) -> None:
    alone = tmp_path / "alone"
    ids = IdentityService(alone, None, passphrase=lambda _: PASSPHRASE.encode(), kdf=FAST)
    asyncio.run(ids.create("alone"))
    empty = cli.ok(alone, "inbox")
    assert empty.text.startswith("0 new")
    assert "read 0 mailboxes (0 contacts" in empty.err
    assert "hint: you have no contacts" in empty.err and "contacts add" in empty.err

    # A contact whose did was never published (and so has no mailbox): unreachable, and why.
    ghost = IdentityService(tmp_path / "ghost", None, passphrase=lambda _: b"x", kdf=FAST)
    ghost_did = asyncio.run(ghost.create("ghost")).did
    cli.ok(alone, "contacts", "add", "ghost", ghost_did, "--no-check")
    seen = cli.ok(alone, "inbox")
    assert "read 1 mailbox (1 contact" in seen.err and "1 unreachable" in seen.err
    assert "ghost: its identity document could not be found" in seen.err
    assert "hint: you have no contacts" not in seen.err
    data = cli.ok(alone, "inbox", "--json").json()
    assert data["read"] == [ghost_did]
    assert data["unreachable"][0]["sender"] == ghost_did and data["unreachable"][0]["why"]


def test_states_agree_across_views(cli: Cli, people: People, tmp_path: Path) -> None:
    cid = put_text(cli, people.alice, tmp_path, "agree\n")
    soon = share(cli, people.alice, cid, "--to", "bob", "--expires", "3s", "--send")
    later = share(cli, people.alice, cid, "--to", "bob", "--send")
    got = cli.ok(people.bob, "inbox", "--json").json()
    assert {i["capsule"]: i["state"] for i in got["inbox"]} == {
        soon: "delivered",
        later: "delivered",
    }

    # A plain open sends the "opened" receipt at once: alice sees it without bob's inbox,
    # and its time is the time of the open.
    before = int(time.time())
    cli.ok(people.bob, "open", later)
    after = int(time.time())
    time.sleep(1.2)
    out = {o["capsule"]: o for o in cli.ok(people.alice, "outgoing", "--json").json()["outgoing"]}
    assert out[later]["state"] == "opened"
    assert before <= out[later]["opened_at"] <= after

    # Revoked after delivery: bob's inbox says so; expired: so does everyone.
    cli.ok(people.alice, "revoke", later)
    time.sleep(max(0.0, 3.5 - (time.time() - before)))
    got = cli.ok(people.bob, "inbox", "--json").json()
    states = {i["capsule"]: i["state"] for i in got["inbox"]}
    assert states == {soon: "expired", later: "revoked"}
    assert got["revoked"] == [later]
    listed = {
        s["capsule"]: s["state"] for s in cli.ok(people.alice, "shares", "--json").json()["shares"]
    }
    assert listed == {soon: "expired", later: "revoked"}

    # shares show and outgoing agree on every delivery, state and times.
    outgoing = cli.ok(people.alice, "outgoing", "--no-refresh", "--json").json()["outgoing"]
    for capsule in (soon, later):
        shown = cli.ok(people.alice, "shares", "show", capsule, "--json").json()
        mine = [o for o in outgoing if o["capsule"] == capsule]
        assert shown["deliveries"] == mine and len(mine) == 1
        assert shown["state"] == mine[0]["state"]


def test_times_shown_to_people_are_iso_dates(cli: Cli, people: People, tmp_path: Path) -> None:
    cid = put_text(cli, people.alice, tmp_path, "when\n")
    capsule = share(cli, people.alice, cid, "--to", "bob", "--expires", "2s", "--send")
    texts = [
        cli.ok(people.alice, "shares").text,
        cli.ok(people.alice, "shares", "show", capsule).text,
        cli.ok(people.bob, "inbox").text,
        cli.ok(people.alice, "outgoing").text,
    ]
    time.sleep(2.1)
    refused = cli(people.bob, "open", capsule)
    assert refused.code == EXIT_CODES["share_expired"]
    for text in [*texts, refused.err]:
        assert not UNIX_SECONDS.search(text), text
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    # --json keeps Unix seconds, as integers, under the same keys everywhere.
    shown = cli.ok(people.alice, "shares", "show", capsule, "--json").json()
    assert isinstance(shown["created"], int) and isinstance(shown["expires"], int)


def test_mistaken_windows_and_drops_are_errors(cli: Cli, people: People, tmp_path: Path) -> None:
    cid = put_text(cli, people.alice, tmp_path, "window\n")
    for flag in ("--not-after", "--until"):
        past = cli(people.alice, "share", cid, "--to", "bob", flag, "2020-01-01", "--json")
        assert past.code == 3 and "in the future" in json.loads(past.out)["error"]["message"]
    both = cli(
        people.alice,
        "share",
        cid,
        "--to",
        "bob",
        "--until",
        "2099-01-01",
        "--not-after",
        "2099-01-01",
    )
    assert both.code == 2  # one end of the window, not two
    capsule = share(cli, people.alice, cid, "--to", "bob,carol")
    alone = cli(people.alice, "revoke", capsule, "--drop", "carol")
    assert alone.code == 3 and "--rotate" in alone.err
    stranger = cli(people.alice, "revoke", capsule, "--rotate", "--drop", "alice")
    assert stranger.code == 3 and "is not a recipient" in stranger.err
    assert "recipients: bob, carol" in stranger.err
    assert cli.ok(people.alice, "shares", "show", capsule, "--json").json()["state"] == "active"


def _window(node: RunningNode, capsule: str) -> dict[str, Any]:
    policy = decode_capsule(block_get(node, capsule)).policy
    assert policy is not None and policy.provider == "ipfs-share/window"
    return dict(policy.params)


def test_not_after_is_inclusive_at_its_boundaries(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    cid = put_text(cli, people.alice, tmp_path, "bounds\n")
    day = share(cli, people.alice, cid, "--to", "bob", "--not-after", "2099-12-31")
    second = share(cli, people.alice, cid, "--to", "bob", "--not-after", "2099-12-31T23:59:59Z")
    offset = share(
        cli, people.alice, cid, "--to", "bob", "--not-after", "2099-12-31T23:59:59+01:00"
    )
    until = share(cli, people.alice, cid, "--to", "bob", "--until", "2100-01-01")
    new_year = 4102444800  # 2100-01-01T00:00:00Z: the first second refused
    assert _window(kubo, day)["expires"] == new_year
    assert _window(kubo, second)["expires"] == new_year
    assert _window(kubo, offset)["expires"] == new_year - 3600
    assert _window(kubo, until)["expires"] == new_year
    assert cli.ok(people.bob, "open", day).text == "bounds\n"
    # Just inside and just outside a window that ends a second from now.
    end = int(time.time()) + 3
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
    tight = share(cli, people.alice, cid, "--to", "bob", "--not-after", stamp)
    assert _window(kubo, tight)["expires"] == end + 1
    assert cli.ok(people.bob, "open", tight).text == "bounds\n"
    time.sleep(max(0.0, end + 1.2 - time.time()))
    late = cli(people.bob, "open", tight)
    assert late.code == EXIT_CODES["policy_denied"] and "window closed at" in late.err


# -- revoke --rotate that does what a user means --------------------------------------------


def test_rotate_sends_the_reissued_capsules_and_the_old_one_names_its_replacement(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    cid = put_text(cli, people.alice, tmp_path, "v1\n")
    old = share(cli, people.alice, cid, "--to", "bob,carol", "--send")
    other = share(cli, people.alice, cid, "--to", "carol")  # never sent
    for home in (people.bob, people.carol):
        cli.ok(home, "inbox")
    done = cli.ok(people.alice, "revoke", old, "--rotate", "--drop", "carol")
    data = cli.ok(people.alice, "shares", "show", old, "--json").json()
    new = data["replaced_by"]
    assert data["state"] == "replaced" and new
    text = done.text
    assert f"revoked {old} (to bob, carol), re-issued as {new} to bob" in text
    # Carol is dropped from every re-issue: the other share, hers alone, is not re-issued.
    assert f"revoked {other} (to carol)\n" in text
    assert "dropped: carol" in text and f"sent {new} to bob's inbox" in text
    reissued = cli.ok(people.alice, "shares", "--json").json()["shares"]
    assert [s["capsule"] for s in reissued if s["replaces"] is not None] == [new]

    got = cli.ok(people.bob, "inbox", "--json").json()
    arrived = {i["capsule"]: i for i in got["inbox"]}
    assert arrived[new]["state"] == "delivered" and arrived[new]["replaces"] == old
    assert arrived[old]["state"] == "replaced" and arrived[old]["replaced_by"] == new
    replaced = cli(people.bob, "open", old, "--json", "-o", str(tmp_path / "x"))
    assert replaced.code == 11 and code_of(replaced) == "share_replaced"
    assert f"replaced by {new}" in replaced.err and f"ipfs-share open {new}" in replaced.err
    assert cli.ok(people.bob, "open", new).text == "v1\n"
    revoked = cli(people.carol, "open", old, "--json", "-o", str(tmp_path / "y"))
    assert code_of(revoked) == "share_revoked"  # carol got no new one: plainly revoked


def test_rotate_no_send_and_send(cli: Cli, people: People, tmp_path: Path) -> None:
    cid = put_text(cli, people.alice, tmp_path, "v1\n")
    gone = share(cli, people.alice, cid, "--to", "bob", "--send")
    kept = share(cli, people.alice, cid, "--to", "bob", "--send")
    cli.ok(people.bob, "inbox")
    quiet = cli.ok(people.alice, "revoke", gone, "--rotate", "--no-send", "--json").json()
    (made,) = quiet["reissued"]
    assert made["replaces"] == kept and quiet["sent"] == []
    assert cli.ok(people.bob, "inbox", "--json").json()["new"] == []  # not sent
    cid2 = put_text(cli, people.alice, tmp_path, "v2\n", "two.txt")
    first = share(cli, people.alice, cid2, "--to", "bob")  # never sent
    second = share(cli, people.alice, cid2, "--to", "bob,carol")  # never sent
    loud = cli.ok(people.alice, "revoke", first, "--rotate", "--send", "--json").json()
    (made,) = loud["reissued"]
    assert made["replaces"] == second  # never sent, sent now (--send)
    assert sorted(s["recipient"] for s in loud["sent"]) == sorted(
        [people.dids["bob"], people.dids["carol"]]
    )
    inbox = cli.ok(people.carol, "inbox", "--json").json()["inbox"]
    assert [i["capsule"] for i in inbox] == [made["capsule"]]


def _snapshot(home: Path, node: RunningNode) -> tuple[Any, ...]:
    conn = sqlite3.connect(home / "state.sqlite3")
    try:
        tables = {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in ("shares", "share_recipients", "reissues", "rotations", "files", "feeds_own")
        }
        tables["mailbox_sent"] = conn.execute(
            "SELECT * FROM mailbox_sent ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()
    request = urllib.request.Request(
        f"{node.api_url}/api/v0/pin/ls?type=all", data=b"", method="POST"
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request) as resp:
        pins = sorted(json.loads(resp.read())["Keys"])
    return tables, pins


def test_dry_run_prints_the_plan_and_changes_nothing(
    cli: Cli, people: People, tmp_path: Path, kubo: RunningNode
) -> None:
    cid = put_text(cli, people.alice, tmp_path, "plan\n")
    old = share(cli, people.alice, cid, "--to", "bob,carol", "--send")
    other = share(cli, people.alice, cid, "--to", "bob")
    cli.ok(people.alice, "revoke", share(cli, people.alice, cid, "--to", "bob"))  # a head
    before = _snapshot(people.alice, kubo)
    plan = cli.ok(people.alice, "revoke", old, "--rotate", "--drop", "carol", "--dry-run")
    assert f"would be revoked {old} (to bob, carol), re-issued to bob" in plan.text
    assert f"would be revoked {other} (to bob), re-issued to bob" in plan.text
    assert f"would be re-keyed: {cid}" in plan.text
    assert f"would send the capsule re-issued for {old} to: bob" in plan.text
    assert "nothing was changed (--dry-run)" in plan.text
    as_json = cli.ok(
        people.alice, "revoke", old, "--rotate", "--drop", "carol", "--dry-run", "--json"
    ).json()
    assert as_json["dry_run"] is True and as_json["dropped"] == [people.dids["carol"]]
    assert set(as_json["unpin"]) == {old, other, cid}
    assert _snapshot(people.alice, kubo) == before  # rows, pins and revocation head
    assert cli.ok(people.bob, "open", old).text == "plan\n"  # still open


# -- mistakes forgiven, secrets kept -------------------------------------------------------


def test_contacts_refuse_overwrites_and_shadows_and_warn_when_unresolvable(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    taken = cli(people.alice, "contacts", "add", "bob", people.dids["carol"], "--json")
    assert taken.code == 3 and "already" in json.loads(taken.out)["error"]["message"]
    assert "--force" in taken.err
    assert (
        cli.ok(people.alice, "contacts", "list", "--json").json()["contacts"][0]["did"]
        == (people.dids["bob"])
    )
    assert cli.ok(people.alice, "contacts", "add", "bob", people.dids["bob"]).code == 0  # same
    forced = cli.ok(people.alice, "contacts", "add", "bob", people.dids["carol"], "--force")
    assert "was " + people.dids["bob"] in forced.err
    shadow = cli(people.alice, "contacts", "add", "alice", people.dids["carol"])
    assert shadow.code == 3 and "local identity" in shadow.err
    ghost = IdentityService(tmp_path / "ghost", None, passphrase=lambda _: b"x", kdf=FAST)
    ghost_did = asyncio.run(ghost.create("ghost")).did
    warned = cli.ok(people.alice, "contacts", "add", "ghost", ghost_did)
    assert "warning: the identity document of" in warned.err and "cannot be resolved" in warned.err
    quiet = cli.ok(people.alice, "contacts", "add", "dave", people.dids["carol"])
    assert "warning" not in quiet.err


def test_a_second_identity_keeps_the_default_and_as_is_honoured(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "me"
    first = cli.ok(home, "identity", "create", "me", "--json").json()
    made = cli.ok(home, "identity", "create", "work")
    assert "me stays the default identity" in made.err
    assert cli.ok(home, "identity", "show", "--json").json()["did"] == first["did"]
    published = cli.ok(home, "--as", "work", "identity", "publish", "--json").json()
    work = cli.ok(home, "identity", "show", "work", "--json").json()
    assert published["did"] == work["did"] != first["did"]
    assert cli.ok(home, "identity", "show", "--as", "work", "--json").json()["did"] == work["did"]
    assert cli(home, "identity", "show", "me", "--as", "work").code == 3  # two names
    src = tmp_path / "w.txt"
    src.write_text("work\n")
    put_json = cli.ok(home, "put", str(src), "--as", "work", "--json").json()
    assert put_json["owner"] == work["did"]
    # Every command that acts as an identity reads --as (an unknown one is refused).
    capsule = cli.ok(home, "--as", "work", "share", put_json["content"], "--to", "me").text.strip()
    for argv in (
        ["put", str(src)],
        ["files"],
        ["share", put_json["content"], "--to", "me"],
        ["shares"],
        ["open", capsule],
        ["get", put_json["content"]],
        ["revoke", capsule],
        ["capability", "issue", capsule, "--to", "me", "-o", str(tmp_path / "c")],
        ["send", capsule],
        ["inbox"],
        ["outgoing"],
        ["cancel", capsule],
        ["identity", "show"],
        ["identity", "publish"],
        ["identity", "export"],
    ):
        assert cli(home, "--as", "nobody", *argv).code == EXIT_CODES["identity_not_found"], argv
    noted = cli.ok(home, "--as", "work", "contacts", "list")
    assert "--as work changes nothing here" in noted.err


def test_plain_words_for_wrong_ids_own_files_and_big_durations(
    cli: Cli, people: People, tmp_path: Path
) -> None:
    cid = put_text(cli, people.alice, tmp_path, "mine\n")
    capsule = share(cli, people.alice, cid, "--to", "bob")
    theirs = cli(people.bob, "open", cid)
    assert theirs.code == 3 and "is a content CID" in theirs.err
    assert "takes the capsule ID that 'ipfs-share share' printed" in theirs.err
    own_cid = cli(people.alice, "open", cid)
    assert own_cid.code == 3 and f"ipfs-share get {cid}" in own_cid.err
    own = cli(people.alice, "open", capsule, "--json", "-o", str(tmp_path / "o"))
    assert code_of(own) == "recipient_not_authorized" and "issued this share for others" in own.err
    assert f"ipfs-share get {cid}" in own.err
    assert cli.ok(people.alice, "get", cid).text == "mine\n"
    saved = cli.ok(people.alice, "get", cid, "-o", str(tmp_path / "m.txt"), "--json").json()
    assert saved["content"] == cid and (tmp_path / "m.txt").read_text() == "mine\n"
    assert cli.ok(people.alice, "get", cid, "--range", "1-2").text == "in"
    assert cli(people.bob, "get", cid).code == EXIT_CODES["not_found"]  # not bob's file
    huge = cli(people.alice, "share", cid, "--to", "bob", "--expires", "99999999999999w")
    assert huge.code == 3 and "at most 36500d" in huge.err
    assert "accepted: 1s to 36500d (100 years)" in huge.err


def test_one_key_name_per_concept_in_json(cli: Cli, people: People, tmp_path: Path) -> None:
    cid = put_text(cli, people.alice, tmp_path, "keys\n")
    outputs = [
        cli.ok(people.alice, "put", str(tmp_path / "note.txt"), "--json").json(),
        cli.ok(people.alice, "share", cid, "--to", "bob", "--send", "--json").json(),
        cli.ok(people.alice, "shares", "--json").json(),
        cli.ok(people.bob, "inbox", "--json").json(),
        cli.ok(people.alice, "outgoing", "--json").json(),
    ]

    def keys(value: Any) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    found = set().union(*(keys(o) for o in outputs))
    assert "capsule" in found and "content" in found
    assert not found & {"id", "cid"}, found  # a capsule is "capsule", content "content"
    item = outputs[3]["inbox"][0]
    assert "sent_at" in item and "sent" not in item  # as outgoing names the same time


# -- the library ------------------------------------------------------------------------------


async def test_connect_takes_a_passphrase_as_text_bytes_or_function(
    kubo: RunningNode, tmp_path: Path
) -> None:
    for i, passphrase in enumerate(["text", b"bytes", lambda prompt: "from a function"]):
        home = tmp_path / f"h{i}"
        async with connect(kubo.api_url, home=home, passphrase=passphrase, kdf=FAST) as mesh:
            await mesh.identity.create("me")
            mesh.identity.lock()
            await mesh.identity.unlock()  # the same passphrase opens it again
        async with await connect(kubo.api_url, home=home, passphrase=passphrase) as mesh:
            assert mesh.identity.get().name == "me"
        mesh = await connect(kubo.api_url, home=home, passphrase=passphrase)
        await mesh.identity.unlock()
        await mesh.close()
    with pytest.raises(TypeError):
        connect(kubo.api_url, passphrase=42)  # type: ignore[arg-type]


def _hints_in(path: Path) -> list[tuple[int, str]]:
    """Every literal string given as ``hint=`` or ``default_hint =`` in a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        values: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg == "hint":
            values.append(node.value)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "default_hint" for t in node.targets
        ):
            values.append(node.value)
        for value in values:
            parts = [
                c.value
                for c in ast.walk(value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
            found.append((value.lineno, "".join(parts)))
    return found


def test_library_hints_name_no_command_and_no_flag() -> None:
    """The library's hints make sense outside the CLI; the CLI adds its own (cli/hints.py)."""
    library = [ROOT / "ipfs_share" / "errors.py", ROOT / "ipfs_share" / "client.py"]
    library += sorted((ROOT / "ipfs_share" / "services").rglob("*.py"))
    library += sorted((ROOT / "ipfs_share" / "formats").rglob("*.py"))
    library += sorted((ROOT / "ipfs_share" / "local").rglob("*.py"))
    library += sorted((ROOT / "ipfs_share" / "storage").rglob("*.py"))
    bad = [
        (p.name, line, text)
        for p in library
        for line, text in _hints_in(p)
        if re.search(r"'ipfs-share |(?<![\w-])--[a-z]", text)
    ]
    assert bad == []
    assert errors.NodeUnreachableError("x").hint  # still a hint, in the library's words


async def test_only_the_issuer_can_say_what_replaces_its_capsule(
    kubo: RunningNode, tmp_path: Path
) -> None:
    """A capsule of someone else that names a revoked capsule in ``replaces`` (anyone can
    sign one) is no replacement: the opener is told share_revoked, not steered to it."""
    from ipfs_share.client import Mesh
    from ipfs_share.errors import ShareReplacedError, ShareRevokedError
    from ipfs_share.storage.kubo import KuboStorage

    async def person(name: str) -> Mesh:
        mesh = Mesh(
            await KuboStorage.connect(kubo.api_url),
            tmp_path / name,
            passphrase=lambda _: b"pw",
            kdf=FAST,
        )
        await mesh.identity.create(name)
        await mesh.identity.publish()
        return mesh

    alice, bob, mallory = await person("alice"), await person("bob"), await person("mallory")
    for x, y in ((alice, bob), (bob, alice), (mallory, bob), (bob, mallory)):
        me = y.identity.get()
        x.identity.add_contact(me.name, me.did)
    old = await alice.share.file(await alice.files.put("a.txt", b"alice's")).with_("bob")
    await alice.share.send(old)
    await bob.inbox.sync()
    await alice.share.revoke(old.id)  # plainly revoked: nothing re-issued
    # mallory signs a capsule of her own that claims to replace alice's, and sends it.
    f = await mallory.files.put("m.txt", b"mallory's")
    keys = await mallory.identity.unlock()
    recipient = await mallory.identity.recipient("bob")
    forged = mallory.share._build(
        keys,
        f.cid,
        mallory.files.file_key(f.cid, keys.encryption),
        [recipient],
        int(time.time()),
        None,
        Perms(download=True),
        None,
        None,
        replaces=old.id,
    )
    await mallory.share._ensure_published(keys)
    made = await mallory.share._store(forged, [recipient], ["bob"])
    await mallory.share.send(made)
    (arrived,) = await bob.inbox.sync()
    assert arrived.id == made.id and arrived.replaces == old.id
    with pytest.raises(ShareRevokedError) as refused:
        await bob.share.open_capsule(old.id)
    assert not isinstance(refused.value, ShareReplacedError)
    states = {i.id: i.state for i in bob.inbox.list()}
    assert states[old.id] == "revoked"  # not "replaced" by mallory's
    for mesh in (alice, bob, mallory):
        await mesh.close()
