"""`python -m tests.kubesim --port P`: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from ._sim import KubeSim


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kubesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--kubeconfig", type=Path, default=Path("kubesim.kubeconfig"),
                        help="where to write a kubeconfig for the admin token")
    parser.add_argument("--token", default=None, help="admin bearer token (default: random)")
    parser.add_argument("--no-bwrap", action="store_true", help="run containers without bubblewrap")
    parser.add_argument("--sandbox", type=Path, default=None, help="directory for pod sandboxes")
    parser.add_argument("--unpullable", action="append", default=None,
                        help="image (or fnmatch pattern) whose pull fails; repeatable")
    args = parser.parse_args()
    sim = KubeSim(host=args.host, port=args.port, bwrap=False if args.no_bwrap else None, token=args.token,
                  sandbox_root=args.sandbox,
                  unpullable_images=args.unpullable if args.unpullable is not None else ("*:does-not-exist",))
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sim:
        path = sim.kubeconfig(args.kubeconfig)
        print(f"kubesim listening on {sim.url} and {sim.tls_url} (bwrap: {sim.options.bwrap}); "
              f"kubeconfig: {path}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
