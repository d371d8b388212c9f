# The two commands of the README. Both set everything up first (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	bash scripts/demo.sh

test: setup
	.venv/bin/python -m pytest -q -n 4 --dist loadfile

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

bench: setup
	bash bench/run
