"""The command line itself: no abbreviations, no passphrase on argv, usage errors that help.

These parse only (no node is needed: each fails or answers before connecting).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ipfs_share.cli.main import _subparsers_of, build_parser, main

SECRET = "hunter2-do-not-print"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPFS_SHARE_HOME", str(tmp_path / "home"))


def test_no_parser_takes_abbreviations() -> None:
    top = build_parser()
    parsers = [top, *_subparsers_of(top)]
    assert len(parsers) > 30
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_an_abbreviated_option_is_a_usage_error(capsys: Any) -> None:
    code, _, err = run(capsys, "open", "bafyfake", "--max-stal", "5")
    assert code == 2
    assert "unrecognized arguments: --max-stal" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["identity", "create", "alice", "--passphrase", SECRET],
        ["identity", "create", "alice", f"--passphrase={SECRET}"],
        ["open", "bafyfake", "--passphr", SECRET],  # a prefix of it
        ["--passphrase", SECRET, "identity", "list"],
        ["identity", "create", "alice", "--passphrase-f", SECRET],  # was --passphrase-file
    ],
)
def test_a_passphrase_on_the_command_line_is_refused_unseen(capsys: Any, argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert SECRET not in out + err
    assert "--passphrase is not an option" in err
    assert "IPFS_SHARE_PASSPHRASE" in err and "--passphrase-file" in err
    code, out, err = run(capsys, "--json", *argv)
    assert code == 2 and SECRET not in out + err
    assert json.loads(out)["error"]["code"] == "usage_error"


def test_passphrase_file_is_still_the_option(capsys: Any, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("a passphrase\n")
    assert run(capsys, "identity", "list", "--help")[0] == 0
    parsed = build_parser().parse_args(["identity", "create", "a", "--passphrase-file", str(pw)])
    assert parsed.passphrase_file == pw


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["open"], "the following arguments are required: CAPSULE"),
        (["share", "--expires"], "argument --expires: expected one argument"),
        (["shre"], "expected a command, found 'shre'"),
        (["node"], "'ipfs-share node' needs a command"),
        ([], "a command is required"),
    ],
)
def test_usage_errors_are_json_with_json(capsys: Any, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "usage_error" and error["exit_code"] == 2
    assert message in error["message"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and message in err


def test_a_mistyped_command_suggests_the_nearest(capsys: Any) -> None:
    assert "hint: did you mean 'share'?" in run(capsys, "shrae")[2]
    assert "hint: did you mean 'status'?" in run(capsys, "node", "stats")[2]
    assert "hint: did you mean" not in run(capsys, "xyzzy")[2]


@pytest.mark.parametrize(
    ("group", "some"), [("node", "status"), ("contacts", "add"), ("identity", "create")]
)
def test_a_group_alone_lists_its_commands(capsys: Any, group: str, some: str) -> None:
    code, _, err = run(capsys, group)
    assert code == 2
    listing = err.split("commands:\n", 1)[1]
    assert any(line.split()[0] == some for line in listing.splitlines() if line.strip())
    assert "one of: " in err


def test_every_help_has_the_environment_defaults_and_positional_help() -> None:
    top = build_parser()
    for parser in [top, *_subparsers_of(top)]:
        text = parser.format_help()
        assert "IPFS_SHARE_HOME" in text, parser.prog
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.dest} has no help"
    share = next(p for p in _subparsers_of(top) if p.prog == "ipfs-share share")
    assert "(default: 7d)" in share.format_help()
    for prog in ("ipfs-share", "ipfs-share open", "ipfs-share share", "ipfs-share node connect"):
        parser = next(p for p in [top, *_subparsers_of(top)] if p.prog == prog)
        assert "examples:\n  ipfs-share " in parser.format_help(), prog


def test_version_loads_no_command_module_and_no_network_or_crypto_library() -> None:
    probe = (
        "import sys\n"
        "from ipfs_share.cli.main import main\n"
        "assert main(['--version']) == 0\n"
        "heavy = ('aiohttp', 'nacl', 'asyncio', 'ipfs_share.client', 'ipfs_share.cli.put')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
