"""``ipfs-share completion``: the bash script run by a real bash, names read from a real
home (identities, contacts, capsules, files), without the node and without aiohttp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_cli_share
from test_cli_share import Cli, People, put, share

from ipfs_share.cli.completion import TREE_ENV, tree_of
from ipfs_share.cli.main import build_parser, main

cli = test_cli_share.cli
people = test_cli_share.people

BASH = shutil.which("bash")


def complete(script: Path, home: Path, *words: str) -> list[str]:
    """What bash offers for ``ipfs-share WORDS...`` (the last word is the one completed)."""
    quoted = " ".join(f"'{w}'" for w in ("ipfs-share", *words))
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMPREPLY=()\n"
        '_ipfs_share_complete; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "IPFS_SHARE_HOME": str(home)}
    done = subprocess.run(
        [str(BASH), "--norc", "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_names(
    cli: Cli, people: People, tmp_path: Path, capsysbinary: Any
) -> None:
    src = tmp_path / "c.txt"
    src.write_text("complete me")
    cid = put(cli, people.alice, src)
    capsule = share(cli, people.alice, cid, "--to", "bob")
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "ipfs-share.bash"
    script.write_text(capsysbinary.readouterr().out.decode())

    alice = people.alice
    assert complete(script, alice, "sh") == ["share", "shares"]
    node_commands = ["connect", "install", "peers", "start", "status", "stop"]
    assert complete(script, alice, "node", "") == node_commands
    assert "--expires" in complete(script, alice, "share", cid, "--exp")
    assert complete(script, alice, "--as", "") == ["alice"]
    assert complete(script, alice, "share", cid, "--to", "") == ["alice", "bob", "carol"]
    assert complete(script, alice, "open", "") == [capsule]
    assert complete(script, alice, "revoke", capsule[:10]) == [capsule]
    assert complete(script, alice, "files", "rm", "") == [cid]
    assert complete(script, alice, "identity", "show", "") == ["alice"]
    assert complete(script, alice, "contacts", "remove", "c") == ["carol"]
    assert complete(script, alice, "--log-level", "") == ["debug", "error", "info", "warning"]
    assert complete(script, alice, "put", str(src)[:-3]) == [str(src)]
    assert complete(script, tmp_path / "nobody", "--as", "") == []  # an empty home


def test_names_are_read_without_the_node_or_aiohttp(people: People) -> None:
    tree = json.dumps(tree_of(build_parser()))
    probe = (
        "import sys\n"
        "from ipfs_share.cli import completion\n"
        "completion.main(['--complete', '', 'share', 'bafy', '--to'])\n"
        "print('loaded:', sorted(m for m in ('aiohttp', 'ipfs_share.client', "
        "'ipfs_share.cli.main') if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "IPFS_SHARE_HOME": str(people.alice),
        TREE_ENV: tree,
        "IPFS_SHARE_API": "http://127.0.0.1:9",  # nothing there: a node call would fail
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["alice", "bob", "carol", "loaded: []"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_carry_the_tree(shell: str, capsys: Any) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert "--complete" in out and '"node":' in out and sys.executable in out
    assert ("compdef _ipfs_share ipfs-share" in out) == (shell == "zsh")
    assert ("complete -c ipfs-share" in out) == (shell == "fish")
