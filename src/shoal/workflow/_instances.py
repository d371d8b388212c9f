"""Instances of parallel workers, services and `execute` entries (reference §4.7), and their Plans.

``expand_instances`` turns `count`/`maxCount`/`matrix`/`shards` into one variable set per instance.
Matrix keys are enumerated in **sorted key order**, the first key varying slowest (mixed radix);
Testkube uses Go map order, which is unspecified. ``compile_worker`` and ``compile_service_instance``
build the Plan one worker or one service instance runs, from the parent Plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.workflow._context import ExecutionContext
from shoal.workflow._errors import WorkflowError
from shoal.workflow._expressions import Machine, is_truthy, to_string
from shoal.workflow._merge import deep_copy, merge_container
from shoal.workflow._plan import Plan
from shoal.workflow._resolve import FieldError, compile_cached

Data = dict[str, Any]

# Keys of a parallel spec that only the parent uses (fan-out and file transfer), not the worker.
_PARALLEL_ONLY = (
    "count",
    "maxCount",
    "matrix",
    "shards",
    "parallelism",
    "failFast",
    "description",
    "logs",
    "transfer",
    "fetch",
)
_STEP_CONTROL = ("paused", "negative", "optional", "retry", "timeout")
_STEP_OPERATIONS = ("delay", "shell", "run", "execute", "artifacts")
_SERVICE_CONTAINER = (
    "workingDir",
    "image",
    "imagePullPolicy",
    "env",
    "envFrom",
    "command",
    "args",
    "resources",
    "securityContext",
    "volumeMounts",
)


def _machine(variables: Mapping[str, Any] | Machine | None) -> Machine:
    if isinstance(variables, Machine):
        return variables
    return Machine(variables=dict(variables or {}))


def _evaluate(value: Any, machine: Machine, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        expr = compile_cached(value, False).resolve(machine, final=True)
    except FieldError as exc:
        raise WorkflowError.at(f"{what}: {exc.message}") from None
    except Exception as exc:  # the engine's own errors (unknown names at the final stage)
        raise WorkflowError.at(f"{what}: {getattr(exc, 'message', exc)} in {value!r}") from None
    return expr.value()


def _read_count(value: Any, machine: Machine, what: str) -> int:
    resolved = _evaluate(value, machine, what)
    try:
        count = int(float(resolved)) if not isinstance(resolved, bool) else int(resolved)
    except (TypeError, ValueError):
        raise WorkflowError.at(f"{what}: expected an integer, got {resolved!r}") from None
    if count < 0:
        raise WorkflowError.at(f"{what}: should not be lower than zero, got {count}")
    return count


def _read_lists(spec: Any, machine: Machine, what: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if not isinstance(spec, dict):
        return out
    for key in sorted(spec):
        items = spec[key]
        if isinstance(items, list):
            values = []
            for item in items:
                if isinstance(item, str) and "{{" in item:
                    try:
                        item = to_string(compile_cached(item, True).resolve(machine, final=True).value())
                    except FieldError as exc:
                        raise WorkflowError.at(f"{what}.{key}: {exc.message}") from None
                    except Exception as exc:
                        raise WorkflowError.at(f"{what}.{key}: {getattr(exc, 'message', exc)}") from None
                values.append(item)
        else:
            resolved = _evaluate(items, machine, f"{what}.{key}")
            if not isinstance(resolved, list):
                raise WorkflowError.at(f"{what}.{key}: expected a list, got {resolved!r}")
            values = resolved
        if values:
            out[key] = values
    return out


def expand_instances(
    spec: Mapping[str, Any], variables: Mapping[str, Any] | Machine | None = None
) -> list[Data]:
    """One dict of instance variables per instance (`index`, `count`, `matrix`, `shard`, ...).

    Rules (Testkube's): neither count nor maxCount -> 1; both and maxCount < count -> maxCount;
    a maxCount above the shortest shard list -> that length, else maxCount. Total instances =
    count x matrix combinations; `shardIndex = index % count`, `matrixIndex = index // count`;
    shards are split into contiguous chunks, the first `len % count` chunks one item longer.
    """
    machine = _machine(variables)
    shards = _read_lists(spec.get("shards"), machine, "shards")
    matrix = _read_lists(spec.get("matrix"), machine, "matrix")
    min_shards = min((len(v) for v in shards.values()), default=None)
    combinations = 1
    for values in matrix.values():
        combinations *= len(values)
    count = _read_count(spec["count"], machine, "count") if spec.get("count") is not None else None
    max_count = (
        _read_count(spec["maxCount"], machine, "maxCount") if spec.get("maxCount") is not None else None
    )
    if count is None and max_count is None:
        count = 1
    if count is not None and max_count is not None and max_count < count:
        count, max_count = max_count, None
    if max_count is not None and min_shards is not None and max_count > min_shards:
        count = min_shards
    elif max_count is not None:
        count = max_count
    shard_count = count or 0
    total = shard_count * combinations
    keys = list(matrix)
    out: list[Data] = []
    for index in range(total):
        shard_index = index % shard_count
        matrix_index = index // shard_count
        matrix_values = _matrix_at(matrix, keys, matrix_index)
        shard_values = {k: _shard_at(v, shard_index, shard_count) for k, v in shards.items()}
        instance: Data = {
            "index": index,
            "count": total,
            "matrixIndex": matrix_index,
            "matrixCount": combinations,
            "matrix": matrix_values,
            "shardIndex": shard_index,
            "shardCount": shard_count,
            "shard": shard_values,
        }
        for key, value in matrix_values.items():
            instance[f"matrix.{key}"] = value
        for key, value in shard_values.items():
            instance[f"shard.{key}"] = value
        out.append(instance)
    return out


def _matrix_at(matrix: Mapping[str, list[Any]], keys: list[str], index: int) -> Data:
    out: Data = {}
    for i, key in enumerate(keys):
        floor = 1
        for later in keys[i + 1 :]:
            floor *= len(matrix[later])
        out[key] = matrix[key][(index // floor) % len(matrix[key])]
    return out


def _shard_at(values: list[Any], index: int, count: int) -> list[Any]:
    total = len(values)
    if index >= total:
        return []
    size = total // count
    extra = total - size * count
    if index < extra:
        start = index * (size + 1)
        return values[start : start + size + 1]
    start = extra + index * size
    return values[start : start + size]


def _instance(spec: Mapping[str, Any], plan: Plan, index: int, what: str) -> Data:
    variables = _context_variables(plan)
    instances = expand_instances(spec, variables)
    if not 0 <= index < len(instances):
        raise WorkflowError.at(f"{what} has {len(instances)} instance(s); index {index} does not exist")
    return instances[index]


def _context_variables(plan: Plan) -> Data:
    context = ExecutionContext.from_dict(plan.context) if plan.context else ExecutionContext()
    return context.variables(plan.workflow, plan.labels, plan.tags)


def _global_env(plan: Plan, ref: str) -> list[Data]:
    out: list[Data] = []
    for env in plan.stages[ref].env:
        if env.global_:
            item: Data = {"name": env.name, "global": True}
            if env.value is not None:
                item["value"] = env.value
            if env.value_from is not None:
                item["valueFrom"] = env.value_from
            out.append(item)
    return out


def _child_context(plan: Plan, suffix: str) -> ExecutionContext:
    context = ExecutionContext.from_dict(plan.context) if plan.context else ExecutionContext()
    parent = context.resource_id or context.id
    context.resource_root = context.resource_root or context.id
    context.resource_id = f"{parent}-{suffix}"
    return context


def _compile_child(plan: Plan, spec: Data, instance: Data, context: ExecutionContext) -> Plan:
    from shoal.workflow._compiler import compile_workflow

    data = {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": plan.workflow, "labels": dict(plan.labels)},
        "spec": spec,
    }
    compiled = compile_workflow(data, {}, {}, context, None, validate=False, extra_variables=instance)
    child = compiled.plan
    child.sensitive_env = {**plan.sensitive_env, **child.sensitive_env}
    return child


def compile_worker(plan: Plan, ref: str, index: int) -> Plan:
    """The Plan of worker ``index`` of the parallel stage ``ref`` (its instance variables bound)."""
    stage = plan.stages.get(ref)
    if stage is None or stage.kind != "parallel":
        raise WorkflowError.at(f"{ref!r} is not a parallel stage of workflow {plan.workflow!r}")
    parallel: Data = deep_copy(stage.spec.get("parallel") or {})
    instance = _instance(parallel, plan, index, f"parallel stage {ref}")
    spec: Data = {
        k: v for k, v in parallel.items() if k not in (*_PARALLEL_ONLY, *_STEP_CONTROL, *_STEP_OPERATIONS)
    }
    own = {k: parallel[k] for k in (*_STEP_CONTROL, *_STEP_OPERATIONS) if k in parallel}
    if any(k in own for k in _STEP_OPERATIONS):
        spec["steps"] = [own, *(spec.get("steps") or [])]
    env = _global_env(plan, ref)
    if env:
        spec["container"] = merge_container({"env": env}, spec.get("container")) or {"env": env}
    return _compile_child(plan, spec, instance, _child_context(plan, f"{ref}-{index}"))


def compile_service_instance(plan: Plan, ref: str, name: str, index: int) -> Plan:
    """The Plan of instance ``index`` of service ``name`` started by the services stage ``ref``."""
    stage = plan.stages.get(ref)
    if stage is None or stage.kind != "services-start":
        raise WorkflowError.at(f"{ref!r} is not a services stage of workflow {plan.workflow!r}")
    services = stage.spec.get("services") or {}
    if name not in services:
        raise WorkflowError.at(f"stage {ref!r} starts no service named {name!r}")
    service: Data = deep_copy(services[name])
    instance = _instance(service, plan, index, f"service {name!r}")
    container = {k: service[k] for k in _SERVICE_CONTAINER if k in service}
    env = _global_env(plan, ref)
    if env:
        container = merge_container({"env": env}, container) or container
    step: Data = {"name": name}
    if service.get("shell") is not None:
        step["shell"] = service["shell"]
    else:
        step["run"] = {}
    spec: Data = {"container": container, "steps": [step]}
    for key in ("content", "pod", "pvcs"):
        if service.get(key) is not None:
            spec[key] = service[key]
    return _compile_child(plan, spec, instance, _child_context(plan, f"{ref}-{name}-{index}"))


def should_keep_logs(expression: Any, passed: bool) -> bool:
    """Evaluate a worker/service `logs` condition against the instance's own result."""
    if expression is None:
        return True
    variables = {
        "passed": passed,
        "success": passed,
        "failed": not passed,
        "error": not passed,
        "status": "passed" if passed else "failed",
        "always": True,
        "never": False,
    }
    value = _evaluate(expression, Machine(variables=variables), "logs")
    return bool(is_truthy(value))
