# The two commands that set up and run everything on a fresh machine (see README.md).
.PHONY: demo test lint bench

# The main job: install what is missing, start the managed Kubo node, then share a file,
# open it as the recipient, revoke it, and show the refused open (examples/quickstart.py).
demo:
	scripts/bootstrap.sh
	.venv/bin/ipfs-share node start
	.venv/bin/python examples/quickstart.py

# The tests: install what is missing (with the dev tools), then run the whole suite against
# real Kubo daemons the fixtures start and stop.
test:
	scripts/bootstrap.sh --dev
	.venv/bin/python -m pytest -q -m "not fuzz_long"

lint:
	.venv/bin/ruff check ipfs_share tests bench examples
	.venv/bin/ruff format --check ipfs_share tests bench examples
	.venv/bin/mypy

bench:
	.venv/bin/python -m bench.run
