"""Break each security check on purpose and make sure a test notices (tests/mutants.toml).

Usage (from the repository root)::

    .venv/bin/python scripts/mutants.py              # every mutant, in parallel
    .venv/bin/python scripts/mutants.py -j 1 NAME    # one mutant by name (or a prefix*)
    .venv/bin/python scripts/mutants.py --list       # names, files and why

Each entry of the list names a file, an exact snippet of it, the replacement that breaks
the check, and the tests that must then fail. For each mutant the script copies
``ipfs_share/``, ``tests/`` and ``pyproject.toml`` to a fresh temporary folder (the working
tree is never touched), applies the replacement there and runs the named tests against
the copy (``PYTHONPATH`` points at it; pytest's Kubo fixtures start their own daemons).
The mutant is killed when *every* named test fails: an entry that names one test per
client of a shared check (identity documents, revocation lists, mailboxes) proves that
each client's own tests notice, not just the first. The run fails if any mutant survives
(some named test still passes), if a snippet is not found exactly once (the list went
stale: re-point the entry), or if the named tests fail on the unchanged tree too (a
baseline run, so a broken test cannot pass for a kill).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "tests" / "mutants.toml"
COPIED = ("ipfs_share", "tests", "pyproject.toml")
TIMEOUT = 300.0  # seconds for one mutant's tests; a hang counts as an error, not a kill
_FAILED = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Outcome:
    name: str
    verdict: str  # "killed", "survived" or "error"
    seconds: float
    detail: str


def load(path: Path = LIST) -> list[Mutant]:
    """The list, checked: unique names, every field present, every snippet in its file
    exactly once. A problem is a SystemExit with the entry's name."""
    with path.open("rb") as f:
        raw = tomllib.load(f).get("mutant", [])
    mutants: list[Mutant] = []
    problems: list[str] = []
    for entry in raw:
        name = str(entry.get("name", "?"))
        missing = [k for k in ("name", "file", "original", "tests", "why") if not entry.get(k)]
        if "replacement" not in entry:  # an empty replacement deletes the snippet
            missing.append("replacement")
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        m = Mutant(
            name,
            entry["file"],
            entry["original"],
            entry["replacement"],
            tuple(entry["tests"]),
            " ".join(entry["why"].split()),
        )
        source = ROOT / m.file
        if not source.is_file():
            problems.append(f"{name}: no file {m.file}")
            continue
        found = source.read_text(encoding="utf-8").count(m.original)
        if found != 1:
            problems.append(
                f"{name}: expected the original snippet once in {m.file}, found it {found} "
                "times (the code moved: re-point the entry)"
            )
        if m.original == m.replacement:
            problems.append(f"{name}: the replacement is the original")
        for test in m.tests:
            if not (ROOT / test.split("::")[0]).is_file():
                problems.append(f"{name}: no test file {test.split('::')[0]}")
        mutants.append(m)
    names = [m.name for m in mutants]
    problems += [f"{n}: named twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise SystemExit("mutants: the list is stale or malformed:\n  " + "\n  ".join(problems))
    return mutants


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for item in COPIED:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        else:
            shutil.copy2(src, dest / item)


def _pytest(tree: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("IPFS_SHARE_HOME", None)
    env.pop("IPFS_SHARE_API", None)
    # No hypothesis plugin: no listed test uses it, and importing it costs a second a run.
    plugins = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    # No -x: every named test must fail, so each one runs; -rfE lists the ones that did.
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", *plugins, *tests]
    # errors="replace": a test may print bytes that are not UTF-8 (a fuzzed input, a
    # binary file's name); the verdict is read from pytest's summary, not from them.
    return subprocess.run(
        command,
        cwd=tree,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )


def _imports_from(tree: Path) -> bool:
    """The copy, not the editable install, is what a child process imports."""
    found = subprocess.run(
        [sys.executable, "-c", "import ipfs_share; print(ipfs_share.__file__)"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip().startswith(str(tree))


def run_one(mutant: Mutant | None, tests: tuple[str, ...]) -> Outcome:
    """Apply ``mutant`` (None: the baseline) to a fresh copy and run ``tests`` there."""
    name = "baseline" if mutant is None else mutant.name
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"ipfs-share-mutant-{name}-") as folder:
        tree = Path(folder)
        _copy_tree(tree)
        if mutant is not None:
            target = tree / mutant.file
            text = target.read_text(encoding="utf-8")
            target.write_text(text.replace(mutant.original, mutant.replacement, 1), "utf-8")
        elif not _imports_from(tree):
            return Outcome(name, "error", 0.0, "the copy is not what python imports")
        try:
            done = _pytest(tree, tests)
        except subprocess.TimeoutExpired:
            return Outcome(name, "error", time.monotonic() - started, f"over {TIMEOUT:.0f} s")
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    if done.returncode == 1:  # some test failed: did each named one?
        failed = _FAILED.findall(output)
        passed = [t for t in tests if not any(_selects(t, f) for f in failed)]
        if mutant is not None and passed:
            return Outcome(name, "survived", seconds, "still passed: " + ", ".join(passed))
        first = failed[0] if failed else "a test failed"
        if len(tests) > 1 and mutant is not None:
            first = f"all {len(tests)} named tests failed, first {first}"
        return Outcome(name, "killed", seconds, first)
    if done.returncode == 0:
        return Outcome(name, "survived", seconds, "every named test passed")
    tail = "\n".join(output.strip().splitlines()[-15:])
    return Outcome(name, "error", seconds, f"pytest exit {done.returncode}:\n{tail}")


def _selects(test: str, failed: str) -> bool:
    """Is the failed node id ``failed`` one that the named ``test`` selects (itself, a
    parametrized case of it, or a test inside it)?"""
    return failed == test or failed.startswith((f"{test}[", f"{test}::"))


def _select(mutants: list[Mutant], patterns: list[str]) -> list[Mutant]:
    if not patterns:
        return mutants
    chosen = [m for m in mutants if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"mutants: no mutant matches {' '.join(patterns)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="mutants to run (glob)")
    parser.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 2, help="parallel runs (default: cores)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args(argv)
    mutants = _select(load(), args.names)
    if args.list:
        for m in mutants:
            print(f"{m.name}\n    {m.file}\n    {m.why}")
        return 0
    print(f"mutants: {len(mutants)} from {LIST.relative_to(ROOT)}, {args.jobs} at a time")
    started = time.monotonic()
    every_test = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    jobs: list[tuple[Mutant | None, tuple[str, ...]]] = [(m, m.tests) for m in mutants]
    if not args.no_baseline:
        jobs.insert(0, (None, every_test))
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for outcome in pool.map(lambda job: run_one(*job), jobs):
            outcomes.append(outcome)
            verdict = outcome.verdict
            if outcome.name == "baseline":  # no mutant: what counts is that nothing failed
                verdict = "passed" if verdict == "survived" else "FAILED"
            print(f"  {verdict:8} {outcome.name} ({outcome.seconds:.1f} s): "
                  f"{outcome.detail}", flush=True)  # fmt: skip
    total = time.monotonic() - started
    baseline = [o for o in outcomes if o.name == "baseline"]
    bad = [o for o in outcomes if o.name != "baseline" and o.verdict != "killed"]
    if baseline and baseline[0].verdict != "survived":  # the clean tree must pass
        print(f"mutants: the named tests fail without any mutant: {baseline[0].detail}")
        return 1
    killed = sum(o.verdict == "killed" for o in outcomes)
    print(f"mutants: {killed} of {len(mutants)} killed in {total:.0f} s")
    for o in bad:
        print(f"mutants: {o.verdict}: {o.name}: {o.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
