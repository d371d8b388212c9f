"""``python -m shoal.execution._toolkit <kind> <ref>``: run one toolkit stage of the current execution.

Exit code 0 means the stage passed; anything else that it failed (the message says why).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ._context import ToolkitError, ToolkitRun, load_run

USAGE = "usage: toolkit <git|tarball|artifacts|services-start|services-stop|parallel|execute> <ref>"
EXIT_FAILED = 1
EXIT_USAGE = 155  # like Testkube's init: bad input


def _handler(kind: str) -> Callable[[ToolkitRun], int] | None:
    # Imported lazily: a git clone should not pay for the parallel machinery.
    if kind == "git":
        from ._git import run_git

        return run_git
    if kind == "tarball":
        from ._tarball import run_tarball

        return run_tarball
    if kind == "artifacts":
        from ._artifacts import run_artifacts

        return run_artifacts
    if kind == "services-start":
        from ._services import run_services_start

        return run_services_start
    if kind == "services-stop":
        from ._services import run_services_stop

        return run_services_stop
    if kind == "parallel":
        from ._parallel import run_parallel

        return run_parallel
    if kind == "execute":
        from ._execute import run_execute

        return run_execute
    return None


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    out: TextIO | None = None,
) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    stream = sys.stdout if out is None else out
    if len(args) != 2:
        stream.write(USAGE + "\n")
        return EXIT_USAGE
    kind, ref = args
    handler = _handler(kind)
    if handler is None:
        stream.write(f"unknown toolkit operation {kind!r}\n{USAGE}\n")
        return EXIT_USAGE
    try:
        run = load_run(kind, ref, os.environ if env is None else env, cwd or Path.cwd(), stream)
        return handler(run)
    except ToolkitError as exc:
        stream.write(f"error: {exc}\n")
        stream.flush()
        return EXIT_FAILED
    except OSError as exc:
        stream.write(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}\n")
        stream.flush()
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 137
    except Exception as exc:  # the stage fails with the reason instead of a bare traceback
        import traceback  # only on this path: every toolkit start would pay for it

        stream.write(f"error: {kind} failed unexpectedly: {exc.__class__.__name__}: {exc}\n")
        traceback.print_exc(file=sys.stderr)
        stream.flush()
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
