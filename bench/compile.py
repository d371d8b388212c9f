"""Workflow compile time on a generated 1,000-step workflow.

The workflow has nested groups, step-level and spec-level templates (`use`), config, and expressions
in every step. Prints one JSON line per figure (median of several runs after a warm-up):
``compile_1000_steps_ms`` (load + validate + compile from the file), ``yaml_parse_1000_steps_ms``
(bare ``yaml.load`` with the C loader, the baseline), ``compile_vs_yaml_parse_ratio`` and
``compile_only_1000_steps_ms`` (compile from already loaded data).

Times are the CPU time of this process (``time.process_time``): the build machines are shared, and
wall-clock medians there swing by 2-3x with the load of other jobs; everything measured is
single-threaded, so CPU time is the honest figure.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shoal.workflow import (  # noqa: E402
    ExecutionContext,
    compile_workflow,
    internal_template_name,
    load_file,
    validate_documents,
)

RUNS = 7
STEPS = 1000
GROUP_SIZE = 20


def generate(steps: int = STEPS) -> str:
    """A multi-document YAML: two templates and one workflow with ``steps`` leaf steps."""
    templates = [
        {
            "apiVersion": "testworkflows.testkube.io/v1",
            "kind": "TestWorkflowTemplate",
            "metadata": {"name": "bench--base"},
            "spec": {
                "config": {"cpu": {"type": "string", "default": "100m"}},
                "container": {
                    "image": "alpine:3.20",
                    "resources": {"requests": {"cpu": "{{ config.cpu }}"}},
                    "env": [{"name": "BASE", "value": "base"}],
                },
                "setup": [{"name": "Template setup", "shell": "echo setup {{ config.cpu }}"}],
            },
        },
        {
            "apiVersion": "testworkflows.testkube.io/v1",
            "kind": "TestWorkflowTemplate",
            "metadata": {"name": "bench--step"},
            "spec": {
                "config": {"label": {"type": "string", "default": "x"}},
                "container": {"env": [{"name": "LABEL", "value": "{{ config.label }}"}]},
            },
        },
    ]
    groups: list[dict[str, Any]] = []
    n = 0
    while n < steps:
        children: list[dict[str, Any]] = []
        for _ in range(min(GROUP_SIZE, steps - n)):
            step: dict[str, Any] = {
                "name": f"Step {n} of {{{{ workflow.name }}}}",
                "shell": f'echo {n} {{{{ config.message }}}} {{{{ execution.id }}}} "{{{{ env.HOME }}}}"',
            }
            if n % 5 == 0:
                step["use"] = [{"name": "bench/step", "config": {"label": f"l{n}"}}]
            if n % 7 == 0:
                step["condition"] = "passed && config.enabled"
            if n % 11 == 0:
                step["timeout"] = "{{ config.timeout }}"
            if n % 13 == 0:
                step["retry"] = {"count": 2, "until": "self.passed"}
            if n % 17 == 0:
                step["optional"] = True
            children.append(step)
            n += 1
        groups.append(
            {
                "name": f"Group {len(groups)}",
                "steps": [
                    {
                        "name": f"Inner {len(groups)}",
                        "container": {"workingDir": "/data/{{ config.dir }}"},
                        "steps": children,
                    }
                ],
            }
        )
    workflow = {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": "bench-1000", "labels": {"team": "perf"}},
        "spec": {
            "use": [{"name": "bench/base", "config": {"cpu": "250m"}}],
            "config": {
                "message": {"type": "string", "default": "hello"},
                "enabled": {"type": "boolean", "default": "true"},
                "timeout": {"type": "string", "default": "10m"},
                "dir": {"type": "string", "default": "work"},
            },
            "job": {"labels": {"run": "{{ execution.id }}"}},
            "steps": groups,
        },
    }
    return yaml.safe_dump_all([*templates, workflow], sort_keys=False)


def _median_ms(fn: Callable[[], Any], runs: int = RUNS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def _emit(name: str, value: float, unit: str) -> None:
    print(
        json.dumps({"bench": "compile", "name": name, "value": round(value, 3), "unit": unit, "runs": RUNS})
    )


def main() -> None:
    text = generate()
    context = ExecutionContext(id="0123456789abcdef01234567")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(text)

        def full() -> Any:
            docs = load_file(path)
            problems = validate_documents(docs)
            if problems:
                raise SystemExit(f"bench workflow is invalid: {problems[0]}")
            templates = {
                internal_template_name(str(d.name)): d for d in docs if d.kind == "TestWorkflowTemplate"
            }
            workflow = next(d for d in docs if d.kind == "TestWorkflow")
            return compile_workflow(workflow, templates, {}, context, validate=False)

        def parse_only() -> Any:
            return list(yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader))

        docs = load_file(path)
        templates = {
            internal_template_name(str(d.name)): d.data for d in docs if d.kind == "TestWorkflowTemplate"
        }
        data = next(d for d in docs if d.kind == "TestWorkflow").data

        def compile_only() -> Any:
            return compile_workflow(data, templates, {}, context, validate=False)

        plan = full().plan
        assert sum(1 for s in plan.stages.values() if s.kind == "shell") >= STEPS
        full_ms = _median_ms(full)
        parse_ms = _median_ms(parse_only)
        only_ms = _median_ms(compile_only)
    _emit("compile_1000_steps_ms", full_ms, "ms")
    _emit("yaml_parse_1000_steps_ms", parse_ms, "ms")
    _emit("compile_vs_yaml_parse_ratio", full_ms / parse_ms, "ratio")
    _emit("compile_only_1000_steps_ms", only_ms, "ms")


if __name__ == "__main__":
    main()
