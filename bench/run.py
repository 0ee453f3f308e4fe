"""The benchmark harness: `python -m bench.run [NAME ...] [--size BYTES]`.

Each entry measures ipfs-share against the real thing in the same run, on the same node
(for example our streaming add against plain `ipfs add`), and reports ratios, not absolute
times, so the numbers mean the same on any machine. Results are printed and written to
bench/results/<name>.json. Entries register themselves in ENTRIES.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    agent_bench,
    cluster_bench,
    crypto_bench,
    feeds_bench,
    formats_bench,
    http_bench,
    keychain_bench,
    mailbox_bench,
    share_bench,
    startup_bench,
    storage_bench,
)

Entry = Callable[[argparse.Namespace], dict[str, Any]]

ENTRIES: dict[str, Entry] = {
    "storage": storage_bench.run,
    "crypto": crypto_bench.run,
    "formats": formats_bench.run,
    "share": share_bench.run,
    "mailbox": mailbox_bench.run,
    "feeds": feeds_bench.run,
    "cluster": cluster_bench.run,
    "keychain": keychain_bench.run,
    "agent": agent_bench.run,
    "startup": startup_bench.run,
    "http": http_bench.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"entries to run (default all: {', '.join(ENTRIES)})"
    )
    parser.add_argument(
        "--size", type=int, default=1 << 30, help="file size in bytes (default 1 GiB)"
    )
    parser.add_argument(
        "--cli-size",
        type=int,
        default=None,
        help="file size of the share bench's CLI rows (default: 512 MiB, or --size if less)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds per measurement (the share bench reports medians and spread; the "
        "storage bench keeps the best)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ENTRIES]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {sorted(ENTRIES)}")
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    for name in args.names or list(ENTRIES):
        result = ENTRIES[name](args)
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
