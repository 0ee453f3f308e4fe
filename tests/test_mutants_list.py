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
    assert len(mutants) >= 40
    files = {m.file for m in mutants}
    for must in (
        "ipfs_share/services/share.py",
        "ipfs_share/services/revocations.py",
        "ipfs_share/formats/capsule.py",
        "ipfs_share/formats/signed.py",
        "ipfs_share/storage/leaves.py",
    ):
        assert must in files


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
