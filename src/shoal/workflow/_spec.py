"""The TestWorkflow and TestWorkflowTemplate documents as pydantic models.

Field names and value types follow Testkube's ``testworkflows.testkube.io/v1`` resources: Python
attributes are snake_case, the YAML keys (aliases) are Testkube's camelCase. Every model forbids
unknown keys and validates strictly (no "5" -> 5 or "yes" -> True coercion); a field that Testkube
lets hold an expression (``count: "{{ config.workers }}"``) accepts a string beside its number.
Kubernetes sub-objects that shoal passes through untouched (affinity, tolerations, volumes, probes'
handlers, PVC specs…) are plain mappings whose top-level shape alone is checked here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# --- value types -------------------------------------------------------------------------------

DURATION_PATTERN = (
    r"^(?:[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0|[\s\S]*\{\{[\s\S]*)?$"
)
"""A Go duration (``30s``, ``1h30m``, ``1.5h``), or a template holding ``{{ }}``, or empty."""

DELAY_PATTERN = r"^((0|[1-9][0-9]*)h)?((0|[1-9][0-9]*)m)?((0|[1-9][0-9]*)s)?((0|[1-9][0-9]*)ms)?$"
"""``step.delay``: hours, minutes, seconds and milliseconds in that order, no expressions."""

STEP_ID_PATTERN = r"^[a-z0-9][a-z0-9_]*$"

PULL_POLICY_PATTERN = r"^(?:Always|IfNotPresent|Never|[\s\S]*\{\{[\s\S]*)$"
RESTART_POLICY_PATTERN = r"^(?:Never|OnFailure|[\s\S]*\{\{[\s\S]*)$"

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
Delay = Annotated[str, StringConstraints(pattern=DELAY_PATTERN)]
StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
PullPolicy = Annotated[str, StringConstraints(pattern=PULL_POLICY_PATTERN)]
RestartPolicy = Annotated[str, StringConstraints(pattern=RESTART_POLICY_PATTERN)]

IntOrString = int | str
"""Kubernetes' int-or-string; a string may be an expression."""

DynamicList = list[Any] | str
"""A static list, or an expression string that evaluates to a list (``matrix``, ``shards``, ``files``)."""

StringMap = dict[str, str]
KubeObject = dict[str, Any]


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused, no lax coercion. Validators are
    built on first use (``defer_build``): a command that validates nothing does not pay for them."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )


class _PassThrough(BaseModel):
    """A Kubernetes object kept as given, with a few keys checked."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,
    )


# --- small Kubernetes shapes -------------------------------------------------------------------


class KeySelector(SpecModel):
    """``configMapKeyRef`` / ``secretKeyRef``."""

    name: str | None = None
    key: str
    optional: bool | None = None


class FieldSelector(SpecModel):
    api_version: str | None = None
    field_path: str


class ResourceFieldSelector(SpecModel):
    container_name: str | None = None
    resource: str
    divisor: IntOrString | None = None


class EnvVarSource(SpecModel):
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    field_ref: FieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    file_key_ref: KubeObject | None = None


class EnvVar(SpecModel):
    """A Kubernetes EnvVar plus ``global`` (also passed to services and parallel workers)."""

    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None
    global_: bool | None = Field(default=None, alias="global")


class EnvFromReference(SpecModel):
    name: str | None = None
    optional: bool | None = None


class EnvFromSource(SpecModel):
    prefix: str | None = None
    config_map_ref: EnvFromReference | None = None
    secret_ref: EnvFromReference | None = None


class VolumeMount(SpecModel):
    name: str
    mount_path: str
    read_only: bool | None = None
    recursive_read_only: str | None = None
    sub_path: str | None = None
    sub_path_expr: str | None = None
    mount_propagation: str | None = None


class Volume(_PassThrough):
    """A pod volume: a ``name`` plus one volume source, passed through to Kubernetes."""

    name: str


class LocalObjectReference(SpecModel):
    name: str | None = None


class Resources(SpecModel):
    limits: dict[str, IntOrString] | None = None
    requests: dict[str, IntOrString] | None = None


class Capabilities(SpecModel):
    add: list[str] | None = None
    drop: list[str] | None = None


class SecurityContext(SpecModel):
    """Container security context; user and group ids may be expressions."""

    capabilities: Capabilities | None = None
    privileged: bool | None = None
    se_linux_options: KubeObject | None = None
    windows_options: KubeObject | None = None
    run_as_user: IntOrString | None = None
    run_as_group: IntOrString | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    proc_mount: str | None = None
    seccomp_profile: KubeObject | None = None
    app_armor_profile: KubeObject | None = None


class Sysctl(SpecModel):
    name: str
    value: str


class PodSecurityContext(SpecModel):
    se_linux_options: KubeObject | None = None
    windows_options: KubeObject | None = None
    run_as_user: IntOrString | None = None
    run_as_group: IntOrString | None = None
    run_as_non_root: bool | None = None
    supplemental_groups: list[int] | None = None
    supplemental_groups_policy: str | None = None
    fs_group: IntOrString | None = None
    sysctls: list[Sysctl] | None = None
    fs_group_change_policy: str | None = None
    seccomp_profile: KubeObject | None = None
    app_armor_profile: KubeObject | None = None
    se_linux_change_policy: str | None = None


class Probe(SpecModel):
    """A Kubernetes probe (``readinessProbe`` of a service); handlers are passed through."""

    exec: KubeObject | None = None
    http_get: KubeObject | None = None
    tcp_socket: KubeObject | None = None
    grpc: KubeObject | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    period_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    termination_grace_period_seconds: int | None = None


class LabelSelector(SpecModel):
    match_labels: StringMap | None = None
    match_expressions: list[KubeObject] | None = None


class ObjectMeta(SpecModel):
    """Kubernetes metadata; ``name`` is checked by the validator, the rest is kept as given."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    self_link: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    owner_references: list[KubeObject] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[KubeObject] | None = None


# --- workflow building blocks ------------------------------------------------------------------


class ParameterSchema(SpecModel):
    """A declared config parameter; without ``default`` it is required at run time."""

    description: str | None = None
    type: Literal["string", "integer", "number", "boolean"] | None = None
    enum: list[str] | None = None
    example: IntOrString | None = None
    default: IntOrString | None = None
    sensitive: bool | None = None
    format: str | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    exclusive_minimum: int | None = None
    exclusive_maximum: int | None = None
    multiple_of: int | None = None


class ContentGitRetry(SpecModel):
    count: int | None = Field(default=None, ge=1, le=20)
    delay: Duration | None = None


class ContentGit(SpecModel):
    uri: str | None = None
    revision: str | None = None
    username: str | None = None
    username_from: EnvVarSource | None = None
    token: str | None = None
    token_from: EnvVarSource | None = None
    ssh_key: str | None = None
    ssh_key_from: EnvVarSource | None = None
    auth_type: Literal["basic", "header", "github"] | None = None
    mount_path: str | None = None
    cone: bool | None = None
    paths: list[str] | None = None
    verbosity: Literal["quiet", "normal", "verbose"] | None = None
    retry: ContentGitRetry | None = None


class ContentFile(SpecModel):
    path: str
    content: str | None = None
    content_from: EnvVarSource | None = None
    mode: int | None = None


class ContentTarball(SpecModel):
    url: str
    path: str
    mount: bool | None = None


class Content(SpecModel):
    git: ContentGit | None = None
    files: list[ContentFile] | None = None
    tarball: list[ContentTarball] | None = None


class ContainerConfig(SpecModel):
    working_dir: str | None = None
    image: str | None = None
    image_pull_policy: PullPolicy | None = None
    env: list[EnvVar] | None = None
    env_from: list[EnvFromSource] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    resources: Resources | None = None
    security_context: SecurityContext | None = None
    volume_mounts: list[VolumeMount] | None = None


class StepRun(ContainerConfig):
    """``run``: a container of its own, with ``shell`` as an alternative to command/args."""

    shell: str | None = None

    @model_validator(mode="after")
    def _shell_excludes_command(self) -> StepRun:
        _check_shell(self.shell, self.command, self.args)
        return self


def _check_shell(shell: str | None, command: list[str] | None, args: list[str] | None) -> None:
    if shell is not None and (command is not None or args is not None):
        raise PydanticCustomError("shoal", "'shell' cannot be combined with 'command' or 'args'")


class JobConfig(SpecModel):
    labels: StringMap | None = None
    annotations: StringMap | None = None
    namespace: str | None = None
    active_deadline_seconds: int | None = None


class PodConfig(SpecModel):
    service_account_name: str | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None
    node_selector: StringMap | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    volumes: list[Volume] | None = None
    active_deadline_seconds: int | None = None
    dns_policy: str | None = None
    node_name: str | None = None
    security_context: PodSecurityContext | None = None
    disable_fs_group_defaulting: bool | None = None
    hostname: str | None = None
    subdomain: str | None = None
    affinity: KubeObject | None = None
    tolerations: list[KubeObject] | None = None
    host_aliases: list[KubeObject] | None = None
    priority_class_name: str | None = None
    priority: int | None = None
    dns_config: KubeObject | None = None
    preemption_policy: str | None = None
    topology_spread_constraints: list[KubeObject] | None = None
    scheduling_gates: list[KubeObject] | None = None
    resource_claims: list[KubeObject] | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")


class TemplateRef(SpecModel):
    """A reference to a TestWorkflowTemplate (``official/k6/v1`` or ``official--k6--v1``)."""

    name: str
    config: dict[str, IntOrString] | None = None


class Target(SpecModel):
    """Which agents (runners) an execution may go to."""

    scheduler_policy: Literal["OnlyWhenMatches"] | None = None
    match: dict[str, list[str]] | None = None
    not_: dict[str, list[str]] | None = Field(default=None, alias="not")
    replicate: list[str] | None = None


class CronJobConfig(SpecModel):
    cron: str
    timezone: str | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None
    config: dict[str, IntOrString] | None = None
    target: Target | None = None


class Event(SpecModel):
    cronjob: CronJobConfig | None = None


class ExecutionSchema(SpecModel):
    tags: StringMap | None = None
    target: Target | None = None
    silent: bool | None = None


class ConcurrencyPolicy(SpecModel):
    group: str | None = None
    max: int | None = Field(default=None, ge=0)
    cancel_in_progress: bool | None = None


class SystemConfig(SpecModel):
    pure_by_default: bool | None = None
    isolated_containers: bool | None = None


class Timeouts(SpecModel):
    queue: Duration | None = None
    initialization: Duration | None = None


class Notifications(SpecModel):
    disable_webhooks: bool | None = None


class RetryPolicy(SpecModel):
    count: int = Field(ge=1)
    until: str | None = None


class ArtifactCompression(SpecModel):
    name: str


class StepArtifacts(SpecModel):
    working_dir: str | None = None
    compress: ArtifactCompression | None = None
    paths: list[str] | None = None


class Transfer(SpecModel):
    """Files packed in the parent and served to a parallel worker or a service."""

    from_: str = Field(alias="from")
    files: DynamicList | None = None
    to: str | None = None
    mount: bool | None = None


class Fetch(SpecModel):
    """Files copied back from a parallel worker into the parent."""

    from_: str = Field(alias="from")
    files: DynamicList | None = None
    to: str | None = None


class TarballRequest(SpecModel):
    from_: str | None = Field(default=None, alias="from")
    files: DynamicList | None = None


class ExecuteStrategy(SpecModel):
    """How many instances: ``count``/``maxCount`` and the ``matrix``/``shards`` to spread."""

    count: IntOrString | None = None
    max_count: IntOrString | None = None
    matrix: dict[str, DynamicList] | None = None
    shards: dict[str, DynamicList] | None = None


class ExecuteWorkflow(ExecuteStrategy):
    name: str | None = None
    selector: LabelSelector | None = None
    description: str | None = None
    execution_name: str | None = None
    tarball: dict[str, TarballRequest] | None = None
    config: dict[str, IntOrString] | None = None
    target: Target | None = None
    # shoal: run the workflow in another environment of the same organisation ("controller environment").
    environment: str | None = None

    @model_validator(mode="after")
    def _name_or_selector(self) -> ExecuteWorkflow:
        if self.name is None and self.selector is None:
            raise PydanticCustomError("shoal", "a workflow to execute needs a 'name' or a 'selector'")
        return self


class ExecuteTest(ExecuteStrategy):
    """A legacy Test (pre-TestWorkflow) to execute; the request is passed through."""

    name: str | None = None
    description: str | None = None
    tarball: dict[str, TarballRequest] | None = None
    execution_request: KubeObject | None = None


class StepExecute(SpecModel):
    parallelism: IntOrString | None = None
    async_: bool | None = Field(default=None, alias="async")
    tests: list[ExecuteTest] | None = None
    workflows: list[ExecuteWorkflow] | None = None


# --- services ----------------------------------------------------------------------------------


class IndependentServiceSpec(ExecuteStrategy, StepRun):
    """A background service (a template's services cannot ``use`` other templates)."""

    description: str | None = None
    logs: str | None = None
    timeout: Duration | None = None
    transfer: list[Transfer] | None = None
    content: Content | None = None
    pod: PodConfig | None = None
    restart_policy: RestartPolicy | None = None
    readiness_probe: Probe | None = None
    pvcs: dict[str, KubeObject] | None = None


class ServiceSpec(IndependentServiceSpec):
    use: list[TemplateRef] | None = None


# --- steps -------------------------------------------------------------------------------------


class _StepControl(SpecModel):
    negative: bool | None = None
    optional: bool | None = None
    paused: bool | None = None
    retry: RetryPolicy | None = None
    timeout: Duration | None = None


class _StepOperations(SpecModel):
    delay: Delay | None = None
    shell: str | None = None
    run: StepRun | None = None
    execute: StepExecute | None = None
    artifacts: StepArtifacts | None = None


class _StepCommon(_StepControl, _StepOperations):
    id: StepId | None = None
    name: str | None = None
    condition: str | None = None
    pure: bool | None = None
    content: Content | None = None
    container: ContainerConfig | None = None
    working_dir: str | None = None


class _ParallelCommon(ExecuteStrategy, _StepControl, _StepOperations):
    parallelism: IntOrString | None = None
    fail_fast: bool | None = None
    description: str | None = None
    logs: str | None = None
    transfer: list[Transfer] | None = None
    fetch: list[Fetch] | None = None


class _SpecBase(SpecModel):
    """What workflows, templates and parallel workers share."""

    events: list[Event] | None = None
    system: SystemConfig | None = None
    config: dict[str, ParameterSchema] | None = None
    content: Content | None = None
    container: ContainerConfig | None = None
    job: JobConfig | None = None
    pod: PodConfig | None = None
    notifications: Notifications | None = None
    execution: ExecutionSchema | None = None
    timeouts: Timeouts | None = None
    pvcs: dict[str, KubeObject] | None = None


class Step(_StepCommon):
    """A step of a workflow: meta, control, templates, sources, defaults and operations."""

    use: list[TemplateRef] | None = None
    template: TemplateRef | None = None
    services: dict[str, ServiceSpec] | None = None
    setup: list[Step] | None = None
    steps: list[Step] | None = None
    parallel: StepParallel | None = None


class StepParallel(_ParallelCommon, _SpecBase):
    """``parallel``: workers in pods of their own, each almost a full workflow."""

    use: list[TemplateRef] | None = None
    template: TemplateRef | None = None
    services: dict[str, ServiceSpec] | None = None
    setup: list[Step] | None = None
    steps: list[Step] | None = None
    after: list[Step] | None = None


class IndependentStep(_StepCommon):
    """A step inside a template: no ``use`` or ``template`` (templates do not nest)."""

    services: dict[str, IndependentServiceSpec] | None = None
    setup: list[IndependentStep] | None = None
    steps: list[IndependentStep] | None = None
    parallel: IndependentStepParallel | None = None


class TestWorkflowTemplateSpec(_SpecBase):
    concurrency: ConcurrencyPolicy | None = None
    services: dict[str, IndependentServiceSpec] | None = None
    setup: list[IndependentStep] | None = None
    steps: list[IndependentStep] | None = None
    after: list[IndependentStep] | None = None


class IndependentStepParallel(_ParallelCommon, TestWorkflowTemplateSpec):
    """``parallel`` inside a template."""


class TestWorkflowSpec(_SpecBase):
    use: list[TemplateRef] | None = None
    concurrency: ConcurrencyPolicy | None = None
    services: dict[str, ServiceSpec] | None = None
    setup: list[Step] | None = None
    steps: list[Step] | None = None
    after: list[Step] | None = None


# --- documents ---------------------------------------------------------------------------------


class ExecutionHealth(SpecModel):
    pass_rate: float
    flip_rate: float
    overall_health: float


class StatusSummary(SpecModel):
    """Kept by the backend, not written by users; accepted so exported resources load."""

    latest_execution: KubeObject | None = None
    health: ExecutionHealth | None = None


class TestWorkflow(SpecModel):
    __test__ = False  # not a pytest test class

    api_version: str = "testworkflows.testkube.io/v1"
    kind: Literal["TestWorkflow"] = "TestWorkflow"
    metadata: ObjectMeta
    description: str | None = None
    spec: TestWorkflowSpec = Field(default_factory=TestWorkflowSpec)
    status: StatusSummary | None = None

    @field_validator("spec", mode="before")
    @classmethod
    def _empty_spec(cls, value: Any) -> Any:
        return {} if value is None else value  # `spec:` with nothing under it


class TestWorkflowTemplate(SpecModel):
    __test__ = False  # not a pytest test class

    api_version: str = "testworkflows.testkube.io/v1"
    kind: Literal["TestWorkflowTemplate"] = "TestWorkflowTemplate"
    metadata: ObjectMeta
    description: str | None = None
    spec: TestWorkflowTemplateSpec = Field(default_factory=TestWorkflowTemplateSpec)

    @field_validator("spec", mode="before")
    @classmethod
    def _empty_spec(cls, value: Any) -> Any:
        return {} if value is None else value  # `spec:` with nothing under it


# --- the TestWorkflowExecution request (GitOps: creating one runs a workflow) -------------------


class RunningContextInterface(SpecModel):
    name: str | None = None
    type: Literal["cli", "ui", "api", "ci/cd", "internal"]


class RunningContextActor(SpecModel):
    name: str | None = None
    email: str | None = None
    execution_id: str | None = None
    execution_path: str | None = None
    execution_reference: str | None = None
    type: Literal[
        "cron", "testtrigger", "user", "testworkflow", "testworkflowexecution", "program", "gitintegration"
    ]


class RunningContext(SpecModel):
    interface: RunningContextInterface
    actor: RunningContextActor


class ExecutionRequest(SpecModel):
    name: str | None = None
    config: dict[str, IntOrString] | None = None
    test_workflow_execution_name: str | None = None
    disable_webhooks: bool | None = None
    tags: StringMap | None = None
    running_context: RunningContext | None = None
    target: Target | None = None


class TestWorkflowExecutionSpec(SpecModel):
    test_workflow: LocalObjectReference
    execution_request: ExecutionRequest | None = None


class TestWorkflowExecutionStatus(SpecModel):
    """Written by the backend; the latest execution is kept as given."""

    latest_execution: KubeObject | None = None
    generation: int | None = None
    error: str | None = None


class TestWorkflowExecution(SpecModel):
    """A request to run ``spec.testWorkflow.name`` (not a kind that ``validate_document`` accepts)."""

    __test__ = False  # not a pytest test class

    api_version: str = "testworkflows.testkube.io/v1"
    kind: Literal["TestWorkflowExecution"] = "TestWorkflowExecution"
    metadata: ObjectMeta
    spec: TestWorkflowExecutionSpec
    status: TestWorkflowExecutionStatus | None = None
