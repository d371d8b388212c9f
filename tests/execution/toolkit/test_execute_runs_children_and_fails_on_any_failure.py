from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from shoal.execution._toolkit._execute import ChildRequest, StatusSink, run_execute
from tests.execution.toolkit.toolkit_helpers import Execution


class FakeChildren:
    """Children pass unless their config says ``fail: "<index>"``; records everything it is asked."""

    def __init__(self, labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.requests: list[ChildRequest] = []
        self.detached: list[ChildRequest] = []
        self.labels = labels or {}
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0

    def workflows(self, selector: Mapping[str, str], environment: str = "") -> list[str]:
        assert environment == ""
        return sorted(
            n for n, labels in self.labels.items() if all(labels.get(k) == v for k, v in selector.items())
        )

    def run(self, request: ChildRequest, on_status: StatusSink, cancel: threading.Event) -> str:
        with self.lock:
            self.requests.append(request)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        on_status("running")
        cancel.wait(0.02)
        failing = request.config.get("fail")
        status = "failed" if failing is not None and failing == request.config.get("i") else "passed"
        on_status(status)
        with self.lock:
            self.running -= 1
        return status

    def detach(self, request: ChildRequest) -> None:
        self.detached.append(request)


def _spec(**extra: Any) -> dict[str, Any]:
    return {
        "workflows": [{"name": "child", "count": 3, "config": {"i": "{{ index }}", "fail": "none"}}],
        **extra,
    }


def test_children_get_config_bound_to_their_index(execution: Execution) -> None:
    children = FakeChildren()
    res = execution.call(run_execute, "execute", _spec(), children)
    assert res.code == 0, res.output
    assert sorted(r.config["i"] for r in children.requests) == ["0", "1", "2"]
    assert len({r.execution_id for r in children.requests}) == 3
    finals = [m for m in res.named("execute") if m["status"] == "passed"]
    assert len(finals) == 3
    assert "3/3 executions passed" in res.text


def test_a_failed_child_fails_the_stage(execution: Execution) -> None:
    spec = {"workflows": [{"name": "child", "count": 2, "config": {"i": "{{ index }}", "fail": "1"}}]}
    children = FakeChildren()
    res = execution.call(run_execute, "execute", spec, children)
    assert res.code == 1
    assert "1/2 executions passed" in res.text


def test_parallelism_bounds_running_children(execution: Execution) -> None:
    children = FakeChildren()
    spec = {"workflows": [{"name": "child", "count": 5, "config": {"i": "{{ index }}"}}], "parallelism": 2}
    res = execution.call(run_execute, "execute", spec, children)
    assert res.code == 0, res.output
    assert children.max_running <= 2
    assert len(children.requests) == 5


def test_selector_and_matrix_expand_children(execution: Execution) -> None:
    children = FakeChildren({"a": {"suite": "smoke"}, "b": {"suite": "smoke"}, "c": {"suite": "full"}})
    spec = {
        "workflows": [
            {
                "selector": {"matchLabels": {"suite": "smoke"}},
                "matrix": {"env": ["x", "y"]},
                "config": {"e": "{{ matrix.env }}"},
            }
        ]
    }
    res = execution.call(run_execute, "execute", spec, children)
    assert res.code == 0, res.output
    assert sorted((r.workflow, r.config["e"]) for r in children.requests) == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
        ("b", "y"),
    ]


def test_async_starts_children_without_waiting(execution: Execution) -> None:
    children = FakeChildren()
    res = execution.call(run_execute, "execute", _spec(**{"async": True}), children)
    assert res.code == 0
    assert len(children.detached) == 3 and children.requests == []


class DownloadingChildren(FakeChildren):
    """Children that fetch ``config.url`` (what a child's content.tarball would do) and list it."""

    def __init__(self) -> None:
        super().__init__()
        self.members: list[list[str]] = []

    def run(self, request: ChildRequest, on_status: StatusSink, cancel: threading.Event) -> str:
        data = httpx.get(request.config["url"]).content
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            self.members.append(sorted(tar.getnames()))
        return super().run(request, on_status, cancel)


def test_tarball_files_are_served_to_children_by_url(execution: Execution) -> None:
    (execution.data / "repo" / "tests").mkdir(parents=True)
    (execution.data / "repo" / "tests" / "a.js").write_text("a")
    (execution.data / "repo" / "README.md").write_text("r")
    spec = {
        "workflows": [
            {
                "name": "child",
                "count": 2,
                "tarball": {"src": {"from": "/data/repo", "files": ["tests/**"]}},
                "config": {"url": "{{ tarball.src.url }}", "i": "{{ index }}"},
            }
        ]
    }
    children = DownloadingChildren()
    res = execution.call(run_execute, "execute", spec, children)
    assert res.code == 0, res.output
    assert children.members == [["tests/a.js"], ["tests/a.js"]]
    assert all(r.config["url"].startswith("http://127.0.0.1:") for r in children.requests)
    assert all(r.parent_workflow == "wf" for r in children.requests)
