"""shoal.workflow — the workflow language: loading, validation, expressions, templates, compiler → Plan.

Pure: nothing here does I/O except ``load_file``/``load_bundle``, which read the files they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal._lazy import lazy_exports

if TYPE_CHECKING:
    from shoal.workflow._bundle import Bundle, load_bundle
    from shoal.workflow._compiler import (
        DEFAULT_IMAGE,
        ROOT_REF,
        TOOLKIT_IMAGE,
        CompiledWorkflow,
        compile_workflow,
        derive_step_id,
        resolve_workflow,
    )
    from shoal.workflow._context import ExecutionContext, new_execution_id
    from shoal.workflow._durations import parse_duration_ms
    from shoal.workflow._errors import Problem, WorkflowError
    from shoal.workflow._expressions import (
        Expression,
        ExpressionError,
        Machine,
        compile_expression,
        compile_template,
        expand_template_list,
        is_truthy,
        to_string,
    )
    from shoal.workflow._instances import (
        compile_service_instance,
        compile_worker,
        expand_instances,
        should_keep_logs,
    )
    from shoal.workflow._plan import (
        PLAN_VERSION,
        TOOLKIT_KINDS,
        Action,
        ConfigValue,
        Container,
        EnvVar,
        Plan,
        Retry,
        SignatureNode,
        Stage,
    )
    from shoal.workflow._runtime_names import (
        INSTANCE_ROOTS,
        RUNTIME_FUNCTIONS,
        RUNTIME_ROOTS,
        SENSITIVE_ENV_PREFIX,
        STATUS_NAMES,
        sensitive_env_name,
    )
    from shoal.workflow._templates import ResolutionError, internal_template_name
    from shoal.workflow._validate import parse_workflow, validate_document, validate_documents
    from shoal.workflow._yaml import Document, format_path, load_documents, load_file

__all__ = [
    "DEFAULT_IMAGE",
    "INSTANCE_ROOTS",
    "PLAN_VERSION",
    "ROOT_REF",
    "RUNTIME_FUNCTIONS",
    "RUNTIME_ROOTS",
    "SENSITIVE_ENV_PREFIX",
    "STATUS_NAMES",
    "TOOLKIT_IMAGE",
    "TOOLKIT_KINDS",
    "Action",
    "Bundle",
    "CompiledWorkflow",
    "ConfigValue",
    "Container",
    "Document",
    "EnvVar",
    "ExecutionContext",
    "Expression",
    "ExpressionError",
    "Machine",
    "Plan",
    "Problem",
    "ResolutionError",
    "Retry",
    "SignatureNode",
    "Stage",
    "WorkflowError",
    "compile_expression",
    "compile_service_instance",
    "compile_template",
    "compile_worker",
    "compile_workflow",
    "derive_step_id",
    "expand_instances",
    "expand_template_list",
    "format_path",
    "internal_template_name",
    "is_truthy",
    "load_bundle",
    "load_documents",
    "load_file",
    "new_execution_id",
    "parse_duration_ms",
    "parse_workflow",
    "resolve_workflow",
    "sensitive_env_name",
    "should_keep_logs",
    "to_string",
    "validate_document",
    "validate_documents",
]

# Public name -> the private module that defines it; imported on first use (PEP 562) so that
# importing one submodule does not pay for the whole package.
_EXPORTS: dict[str, str] = {
    "Bundle": "shoal.workflow._bundle",
    "load_bundle": "shoal.workflow._bundle",
    "DEFAULT_IMAGE": "shoal.workflow._compiler",
    "ROOT_REF": "shoal.workflow._compiler",
    "TOOLKIT_IMAGE": "shoal.workflow._compiler",
    "CompiledWorkflow": "shoal.workflow._compiler",
    "compile_workflow": "shoal.workflow._compiler",
    "derive_step_id": "shoal.workflow._compiler",
    "resolve_workflow": "shoal.workflow._compiler",
    "ExecutionContext": "shoal.workflow._context",
    "new_execution_id": "shoal.workflow._context",
    "parse_duration_ms": "shoal.workflow._durations",
    "Problem": "shoal.workflow._errors",
    "WorkflowError": "shoal.workflow._errors",
    "Expression": "shoal.workflow._expressions",
    "ExpressionError": "shoal.workflow._expressions",
    "Machine": "shoal.workflow._expressions",
    "compile_expression": "shoal.workflow._expressions",
    "compile_template": "shoal.workflow._expressions",
    "expand_template_list": "shoal.workflow._expressions",
    "is_truthy": "shoal.workflow._expressions",
    "to_string": "shoal.workflow._expressions",
    "compile_service_instance": "shoal.workflow._instances",
    "compile_worker": "shoal.workflow._instances",
    "expand_instances": "shoal.workflow._instances",
    "should_keep_logs": "shoal.workflow._instances",
    "PLAN_VERSION": "shoal.workflow._plan",
    "TOOLKIT_KINDS": "shoal.workflow._plan",
    "Action": "shoal.workflow._plan",
    "ConfigValue": "shoal.workflow._plan",
    "Container": "shoal.workflow._plan",
    "EnvVar": "shoal.workflow._plan",
    "Plan": "shoal.workflow._plan",
    "Retry": "shoal.workflow._plan",
    "SignatureNode": "shoal.workflow._plan",
    "Stage": "shoal.workflow._plan",
    "INSTANCE_ROOTS": "shoal.workflow._runtime_names",
    "RUNTIME_FUNCTIONS": "shoal.workflow._runtime_names",
    "RUNTIME_ROOTS": "shoal.workflow._runtime_names",
    "SENSITIVE_ENV_PREFIX": "shoal.workflow._runtime_names",
    "STATUS_NAMES": "shoal.workflow._runtime_names",
    "sensitive_env_name": "shoal.workflow._runtime_names",
    "ResolutionError": "shoal.workflow._templates",
    "internal_template_name": "shoal.workflow._templates",
    "parse_workflow": "shoal.workflow._validate",
    "validate_document": "shoal.workflow._validate",
    "validate_documents": "shoal.workflow._validate",
    "Document": "shoal.workflow._yaml",
    "format_path": "shoal.workflow._yaml",
    "load_documents": "shoal.workflow._yaml",
    "load_file": "shoal.workflow._yaml",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__, globals())
