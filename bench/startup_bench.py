"""Start-up: what a command costs before it does anything, against a bare interpreter.

Each row runs the installed ``ipfs-share`` console script (a fresh process, as a person
types it) and reports the median wall time over ``--rounds`` (at least 5) as a ratio to
``python -c pass`` measured in the same run. Targets: ``--version`` and ``--help`` within
5x. Also reported: the five heaviest imports of ``--help`` (``-X importtime``, cumulative)
and whether aiohttp and nacl were loaded, which is what a command should not pay for
unless it talks to a node or opens keys. ``--size`` is not used. The package's bytecode
is compiled first, as an installed copy has it (:mod:`bench.installed`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.installed import compile_package

CLI = str(Path(sys.executable).with_name("ipfs-share"))
TARGET = 5.0
ROWS: dict[str, list[str]] = {
    "--version": [CLI, "--version"],
    "--help": [CLI, "--help"],
    "node --help": [CLI, "node", "--help"],
    "files (empty home)": [CLI, "files"],
}


def _median(argv: list[str], rounds: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _heaviest(argv: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _RUN, *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        # A module imported by the program itself has one space after the bar; the
        # modules it pulled in are indented further.
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2][1:2].isspace():
            rows.append({"module": parts[2].strip(), "cumulative_ms": int(parts[1]) / 1000})
    return sorted(rows, key=lambda r: -float(r["cumulative_ms"]))[:5]


_RUN = (
    "import sys\n"
    "from ipfs_share.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('loaded: ' + ' '.join(m for m in ('aiohttp', 'nacl') "
    "if m in sys.modules) + '\\n')\n"
)


def _loaded(argv: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    line = [x for x in done.stderr.splitlines() if x.startswith("loaded:")]
    return line[-1].split()[1:] if line else ["?"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rounds = max(5, args.rounds)
    bytecode = compile_package()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "IPFS_SHARE_HOME": home}
        env.pop("IPFS_SHARE_API", None)
        bare = _median([sys.executable, "-c", "pass"], rounds, env)
        rows = {}
        for name, argv in ROWS.items():
            took = _median(argv, rounds, env)
            rows[name] = {
                "median_s": round(took, 4),
                "ratio_to_bare_python": round(took / bare, 2),
                "loaded": _loaded(argv, env),
            }
        heaviest = _heaviest(ROWS["--help"], env)
    return {
        "bench": "startup",
        "rounds": rounds,
        "bare_python_s": round(bare, 4),
        "bytecode": bytecode,
        "target_ratio": TARGET,
        "rows": rows,
        "within_target": {
            n: rows[n]["ratio_to_bare_python"] <= TARGET for n in ("--version", "--help")
        },
        "help_heaviest_imports": heaviest,
    }
