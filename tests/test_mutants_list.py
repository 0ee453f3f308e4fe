"""The security mutant list (tests/mutants.toml) stays pointed at real code.

scripts/mutants.py runs the mutants (in CI, after the suite); this checks only that the
list loads: every snippet is found exactly once, every test file exists, and a stale
entry is refused by name. So a change that moves a checked line fails here, in seconds,
with the entry to re-point.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutants_script", ROOT / "scripts/mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutant_points_at_code_that_exists() -> None:
    mutants = _script().load()
    assert len(mutants) >= 60
    files = {m.file for m in mutants}
    for must in (
        "ipfs_share/services/share.py",  # open's check order, expiry, policy, capability
        "ipfs_share/services/revocations.py",  # the revocation check, failing closed
        "ipfs_share/formats/capsule.py",  # the commitment, the stanza cap
        "ipfs_share/formats/signed.py",  # every signature
        "ipfs_share/formats/feed.py",  # rollbacks, forks and signers of every feed
        "ipfs_share/formats/identity_doc.py",  # the three kinds of feed ...
        "ipfs_share/formats/revocation.py",
        "ipfs_share/formats/mailbox.py",
        "ipfs_share/services/feeds/reader.py",  # ... and the reader that follows them
        "ipfs_share/formats/ipns.py",  # records under their names
        "ipfs_share/local/state/__init__.py",  # state_missing
        "ipfs_share/storage/leaves.py",  # the leaf hash
    ):
        assert must in files
    names = {m.name for m in mutants}
    for must in (  # the mutants issue 9 names: each must die on the feed primitive
        "revocation-fails-open-on-node-errors",
        "revocation-list-rollback-unchecked",
        "revocation-list-fork-unchecked",
        "open-expiry-moved-after-unwrap",
        "open-revocation-moved-after-unwrap",
    ):
        assert must in names


def test_a_mutant_dies_only_when_every_named_test_fails() -> None:
    selects = _script()._selects
    assert selects("tests/a.py::t", "tests/a.py::t")
    assert selects("tests/a.py::t", "tests/a.py::t[case one]")  # a parametrized case
    assert selects("tests/a.py", "tests/a.py::t")
    assert not selects("tests/a.py::t", "tests/a.py::t_other")
    assert not selects("tests/a.py::t[one]", "tests/a.py::t[two]")


def test_a_stale_entry_is_refused_by_name(tmp_path: Path) -> None:
    stale = tmp_path / "mutants.toml"
    stale.write_text(
        "[[mutant]]\n"
        'name = "gone"\n'
        'file = "ipfs_share/formats/capsule.py"\n'
        'why = "a check that moved"\n'
        'tests = ["tests/test_formats_capsule.py"]\n'
        "original = 'this line is not in the file'\n"
        "replacement = ''\n",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit, match="gone: expected the original snippet once"):
        _script().load(stale)
