"""Pytest fixtures: `kubesim` (a running simulator), `kubeconfig_path` (a kubeconfig for it) and
`kubesim_factory` (start simulators with other options; all stopped at teardown).

Import them in a conftest.py:
`from tests.kubesim.fixtures import kubeconfig_path, kubesim, kubesim_factory  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._sim import KubeSim

# The shoal image's ENTRYPOINT ["/usr/bin/tini", "--", "shoal"], with the host's tools: `tini` is a
# signal-forwarding stand-in next to this file, `shoal` the venv's console script (first on pods' PATH).
TINI = Path(__file__).with_name("tini")
SHOAL_IMAGE = {"entrypoint": [str(TINI), "--", "shoal"]}

# back-offs a real cluster counts in tens of seconds, shortened so tests stay fast
FAST: dict[str, Any] = {"job_backoff_base": 0.2, "restart_backoff": 0.2, "image_pull_backoff": 0.2}


@pytest.fixture
def kubesim() -> Iterator[KubeSim]:
    with KubeSim(**FAST) as sim:
        yield sim


@pytest.fixture
def kubesim_factory() -> Iterator[Callable[..., KubeSim]]:
    """`make(**options)` → a started KubeSim (FAST back-offs unless overridden); all stopped at teardown."""
    started: list[KubeSim] = []

    def make(**options: Any) -> KubeSim:
        sim = KubeSim(**{**FAST, **options}).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def kubeconfig_path(kubesim: KubeSim, tmp_path: Path) -> Path:
    return kubesim.kubeconfig(tmp_path / "kubeconfig")
