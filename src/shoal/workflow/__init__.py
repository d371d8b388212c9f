"""shoal.workflow — the workflow language: loading, validation, expressions, templates, compiler → Plan.

Pure: nothing here does I/O except ``load_file``/``load_bundle``, which read the files they are given.
"""

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
