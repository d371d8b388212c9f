"""The init program of a Plan: the fixed lib.sh, the stage tables (plan.sh) and one program per container.

Program ``c<N>.sh`` runs the actions of container ``N`` (``start``/``exec``/``end`` of refs) as
straight-line sh over the stage tables ``_S<n>``/``_T<n>``/``_I<n>``; ``n`` is the stage's position in
``Plan.leaves_and_groups()``. docs/internal/init-protocol.md describes what the programs print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from shoal.execution._shexpr import (
    RuntimeExpressionError,
    Scope,
    encode_value,
    parse_expression,
    parse_template,
    prepare,
    sh_function,
    sh_quote,
)
from shoal.workflow._expressions._ast import Expression, Literal
from shoal.workflow._expressions._values import is_truthy, to_string
from shoal.workflow._plan import TOOLKIT_KINDS, Plan, Stage

LIB_PATH = Path(__file__).with_name("_init") / "lib.sh"

_SAFE_REF = re.compile(r"[A-Za-z0-9_.:@+/-]*")
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_SH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_UNTIL = frozenset({"passed", "success", "self.passed", "self.success"})


@cache
def library() -> str:
    """The text of lib.sh."""
    return LIB_PATH.read_text()


def init_files(plan: Plan) -> dict[str, str]:
    """Everything the runtime places in ``$SHOAL_DIR``: relative path -> content."""
    tables = _Tables(plan)
    files = {"lib.sh": library(), "plan.sh": tables.plan_script(), "finish.sh": tables.finish_script()}
    for container in plan.containers:
        files[f"c{container.index}.sh"] = _Program(tables, container.index).render()
    return files


def plan_script(plan: Plan) -> str:
    """plan.sh: stage tables, failure flags and crash check shared by every program."""
    return _Tables(plan).plan_script()


def finish_script(plan: Plan) -> str:
    """finish.sh: the abort and timeout handlers (read by lib.sh when one is needed)."""
    return _Tables(plan).finish_script()


def generate_program(plan: Plan, container_index: int) -> str:
    """The program of the container whose ``Container.index`` is ``container_index``."""
    return _Program(_Tables(plan), container_index).render()


def format_duration(ms: int) -> str:
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# ---------------------------------------------------------------------------------------------------


class _Tables:
    """Stage indices and the tree walks the generated code needs."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        order = plan.leaves_and_groups()
        seen = {stage.ref for stage in order}
        order += [stage for ref, stage in plan.stages.items() if ref not in seen]
        self.order = order
        self.index = {stage.ref: n for n, stage in enumerate(order)}
        for stage in order:
            if not _SAFE_REF.fullmatch(stage.ref):
                raise ValueError(f"stage ref {stage.ref!r} cannot be used by the init program")
            if stage.id is not None and (not _SAFE_ID.fullmatch(stage.id) or stage.id in (".", "..")):
                raise ValueError(f"step id {stage.id!r} cannot be used as a directory name")
        self._chains: dict[str, frozenset[str]] = {}
        # Groups whose status chain contribution can fail: _F<g> is set once a non-optional child
        # of g ends failed, timed out or aborted (see Scope.chain_flags).
        self.flagged = {
            stage.ref
            for stage in order
            if any(child in plan.stages and not plan.stages[child].optional for child in stage.children)
        }

    def counted_children(self, stage: Stage) -> list[str]:
        return [c for c in stage.children if c in self.plan.stages and not self.plan.stages[c].optional]

    def chain_refs(self, stage: Stage) -> frozenset[str]:
        """The refs of the status chain as the tree defines it: earlier non-optional siblings of the
        stage and of each of its ancestors."""
        if not self._chains:
            self._chains[self.plan.root] = frozenset()
            for group in self.order:  # depth-first, parents before children
                acc = self._chains.get(group.ref, frozenset())
                for child in group.children:
                    if child not in self.plan.stages:
                        continue
                    self._chains[child] = acc
                    if not self.plan.stages[child].optional:
                        acc = acc | {child}
        return self._chains.get(stage.ref, frozenset())

    def chain_flags(self, stage: Stage) -> str:
        """sh words expanding to non-empty text when the status chain of ``stage`` is false."""
        return "".join(f"$_F{self.index[a.ref]}" for a in self.ancestors(stage) if a.ref in self.flagged)

    def flag_update(self, stage: Stage, status: str | None = None) -> str:
        """sh that records a failure of ``stage`` in its parent's flag ('' when it cannot count)."""
        parent = stage.parent
        if stage.optional or parent is None or parent not in self.flagged:
            return ""
        flag = f"_F{self.index[parent]}=1"
        if status is not None:
            return flag if status in ("failed", "timeout", "aborted") else ""
        return f"case $_S{self.index[stage.ref]} in failed | timeout | aborted) {flag} ;; esac"

    def stage(self, ref: str) -> Stage:
        return self.plan.stages[ref]

    def postorder(self, ref: str) -> list[Stage]:
        out: list[Stage] = []
        stack: list[tuple[str, bool]] = [(ref, False)]
        while stack:
            current, expanded = stack.pop()
            stage = self.stage(current)
            if expanded:
                out.append(stage)
                continue
            stack.append((current, True))
            stack.extend((child, False) for child in reversed(stage.children) if child in self.plan.stages)
        return out

    def ancestors(self, stage: Stage) -> list[Stage]:
        out: list[Stage] = []
        parent = stage.parent
        while parent is not None and parent in self.plan.stages:
            out.append(self.stage(parent))
            parent = self.stage(parent).parent
        return out

    def step_id(self, stage: Stage) -> str | None:
        for candidate in [stage, *self.ancestors(stage)]:
            if candidate.id:
                return candidate.id
        return None

    def ref_word(self, stage: Stage) -> str:
        return sh_quote(stage.ref)

    def finish_line(self, stage: Stage, running: str) -> str:
        """A case over _S<n>: running -> ``running`` status, not started -> skipped."""
        n, ref = self.index[stage.ref], self.ref_word(stage)
        if running == "aborted" and stage.kind != "group":
            on_running = f'_S{n}=aborted; _sh_abort_op {n} {ref} "${{_I{n}:-1}}"'
        else:
            on_running = f"_S{n}={running}; _sh_end {n} {ref} {running}"
            flag = self.flag_update(stage, running)
            if flag:
                on_running += "; " + flag
        return (
            f"\tcase $_S{n} in running) {on_running} ;; '') _S{n}=skipped; _sh_end {n} {ref} skipped ;; esac"
        )

    def plan_script(self) -> str:
        out = [f"# shoal init: stage tables of workflow {_comment(self.plan.workflow)} (generated)"]
        for start in range(0, len(self.order), 8):
            out.append(
                " ".join(f"_S{n}='' _T{n}='' _I{n}=''" for n in range(start, min(start + 8, len(self.order))))
            )
        flagged = [self.index[stage.ref] for stage in self.order if stage.ref in self.flagged]
        for start in range(0, len(flagged), 16):
            out.append(" ".join(f"_F{n}=''" for n in flagged[start : start + 16]))
        out.append("_sh_flags() { # the failure flags of groups, from the statuses in the journal")
        out.append("	:")
        for stage in self.order:
            if stage.ref in self.flagged:
                words = " ".join(f"$_S{self.index[c]}" for c in self.counted_children(stage))
                out.append(
                    f'	case " {words} " in *" failed "* | *" timeout "* | *" aborted "*) '
                    f"_F{self.index[stage.ref]}=1 ;; esac"
                )
        out.append("}")
        # an operation left `running` in the journal: the previous run died during it
        operations = [f"$_S{self.index[stage.ref]}" for stage in self.order if stage.kind != "group"]
        out.append("_sh_crashed() {")
        for start in range(0, len(operations), 32):
            words = " ".join(operations[start : start + 32])
            out.append(f'\tcase " {words} " in *" running "*) return 0 ;; esac')
        out.append("\treturn 1")
        out.append("}")
        return "\n".join(out) + "\n"

    def finish_script(self) -> str:
        """finish.sh: what ends stages early (abort, timeouts); read only when one of them is needed,
        so that every program does not parse handlers for every stage of the Plan."""
        out = [
            f"# shoal init: abort and timeout handlers of workflow {_comment(self.plan.workflow)} (generated)",
            "# shellcheck disable=SC2154 # the stage tables are in plan.sh",
            "_sh_abort_all() {",
        ]
        tree = self.postorder(self.plan.root)
        in_tree = {stage.ref for stage in tree}
        out.extend(self.finish_line(stage, "aborted") for stage in tree)
        out.extend(self.finish_line(stage, "aborted") for stage in self.order if stage.ref not in in_tree)
        out.append("}")
        for stage in self.order:
            if stage.timeout_ms is not None:
                out.append(f"_sh_to_{self.index[stage.ref]}() {{")
                out.extend(self.finish_line(sub, "timeout") for sub in self.postorder(stage.ref))
                out.append("}")
        return "\n".join(out) + "\n"


def _comment(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


@dataclass(slots=True)
class _Compiled:
    """A template or expression as the program uses it: a constant, or a function name."""

    constant: Expression | None = None
    function: str | None = None


class _Program:
    def __init__(self, tables: _Tables, container_index: int) -> None:
        self.tables = tables
        self.plan = tables.plan
        matches = [c for c in self.plan.containers if c.index == container_index]
        if not matches:
            raise ValueError(f"the plan has no container {container_index}")
        self.container = matches[0]
        self.functions: list[str] = []
        self.actions: list[str] = []
        self.chains: dict[str, frozenset[str] | None] = {}
        self.counter = 0

    # ------------------------------------------------------------------ expressions

    def compile(self, source: str, scope: Scope, template: bool) -> _Compiled:
        """Translate an expression (or template) into a function, or keep it as a constant."""
        self.counter += 1
        name = f"_sh_x{self.counter}"
        try:
            node = prepare(parse_template(source) if template else parse_expression(source), scope)
            if isinstance(node, Literal):
                return _Compiled(constant=node)
            self.functions.append(sh_function(name, node, scope))
        except RuntimeExpressionError as exc:
            message = f"{exc.message} in {source!r}"
            self.functions.append(f"{name}() {{\n\t_sh_err={sh_quote(message)}\n\treturn 1\n}}\n")
        return _Compiled(function=name)

    def scope(self, stage: Stage, *, env: bool, until: bool = False) -> Scope:
        n = self.tables.index[stage.ref]
        mapping = self.env_names(stage) if env else {}
        chain = self.chain(stage)
        return Scope(
            refs=self.tables.index,
            env=mapping,
            prelude=f"_sh_ev_{n}" if mapping else "",
            step_id=self.tables.step_id(stage),
            passed=stage.status_chain or "true",
            until=until,
            self_index=n,
            chain_refs=chain or frozenset(),
            chain_flags=self.tables.chain_flags(stage) if chain else "",
        )

    def chain(self, stage: Stage) -> frozenset[str] | None:
        """The refs of ``stage.status_chain`` when it is the chain the tree defines (else None)."""
        if stage.ref not in self.chains:
            text = (stage.status_chain or "true").replace(" ", "")
            refs = frozenset() if text == "true" else frozenset(text.split("&&"))
            self.chains[stage.ref] = refs if refs == self.tables.chain_refs(stage) else None
        return self.chains[stage.ref]

    def env_names(self, stage: Stage, upto: int | None = None) -> dict[str, str]:
        n = self.tables.index[stage.ref]
        names: dict[str, str] = {}
        for k, var in enumerate(stage.env[:upto]):
            if var.value is not None:
                names[var.name] = f"_sh_v{n}_{k}"
        return names

    def string_into(self, target: str, source: str, scope: Scope, what: str, lines: list[str]) -> None:
        """Lines that evaluate template ``source`` into sh variable ``target`` (a string)."""
        compiled = self.compile(source, scope, template=True)
        if compiled.constant is not None:
            value = compiled.constant.value_  # type: ignore[attr-defined]
            lines.append(f"\t{target}={sh_quote(to_string(value))}")
            return
        lines.append(f"\t{compiled.function} || {{ _sh_err={sh_quote(what + ': ')}$_sh_err; return 1; }}")
        lines.append(f'\t_sh_str "$_sh_r"; {target}=$_sh_s')

    # ------------------------------------------------------------------ operations

    def operation(self, stage: Stage) -> None:
        n = self.tables.index[stage.ref]
        ev = [f"_sh_ev_{n}() {{"]
        exports: list[str] = []
        for k, var in enumerate(stage.env):
            if var.value is None:
                continue  # value_from: the runtime resolved it into the environment
            if not _SH_NAME.fullmatch(var.name) or var.name.startswith("_sh_"):
                message = f"env {var.name}: not a variable name the init program can set"
                ev.append(f"\t_sh_err={sh_quote(message)}")
                ev.append("\treturn 1")
                break
            scope = replace(self.scope(stage, env=False), env=self.env_names(stage, k))
            self.string_into(f"_sh_v{n}_{k}", var.value, scope, f"env {var.name}", ev)
            exports.append(f'{var.name}="$_sh_v{n}_{k}"')
        ev.append("}")
        if len(ev) > 2:
            self.functions.append("\n".join(ev) + "\n")
        env_function = f"_sh_env_{n}" if exports else "_sh_noenv"
        if exports:
            self.functions.append(f"_sh_env_{n}() {{\n\texport {' '.join(exports)}\n}}\n")

        scope = self.scope(stage, env=True)
        sensitive = sorted({var.name for var in stage.env if var.sensitive and _SH_NAME.fullmatch(var.name)})
        op = [f"_sh_op_{n}() {{", f"\t_sh_xe={env_function} _sh_xmask={sh_quote(' '.join(sensitive))}"]
        if len(ev) > 2:
            op.append(f"\t_sh_ev_{n} || return 1")
        if stage.working_dir:
            self.string_into("_sh_wd", stage.working_dir, scope, "workingDir", op)
            op.append("\t_sh_setwd || return 1")
        else:
            op.append("\t_sh_wd='' _sh_cwd=$PWD")
        spawn = self.spawn(stage, scope, op)
        if spawn is None:
            op.append("\t_sh_pid=''")
        else:
            # the subshell does as little as it can before its exec: every page it (or this shell,
            # until then) writes is copied after the fork
            if sensitive:
                op.append(f"\t_sh_spawn_pre {env_function} || return 1")
            else:
                op.append(f'\t[ -z "$_sh_masking" ] || _sh_spawn_pre {env_function} || return 1')
            child = [f"export {' '.join(exports)} || exit"] if exports else []
            if stage.working_dir:
                child.append('[ -z "$_sh_wd" ] || cd "$_sh_wd" || exit 126')
            child.append(spawn)
            op.append(f"\t({'; '.join(child)}) >&4 2>&4 4>&- 5>&- &")
            op.append('\t_sh_pid=$!; [ -z "$_sh_fpid" ] || exec 4>&1')
        op.append("}")
        self.functions.append("\n".join(op) + "\n")

        until = ""
        if stage.retry is not None and stage.retry.until.strip() not in _DEFAULT_UNTIL:
            compiled = self.compile(
                stage.retry.until, self.scope(stage, env=True, until=True), template=False
            )
            until = compiled.function or self.constant_function(compiled)
        retries = stage.retry.count if stage.retry is not None else 0

        body = [f'if [ "$_S{n}" = running ]; then', "\t_sh_dl=''"]
        for timed in [stage, *self.tables.ancestors(stage)]:
            if timed.timeout_ms is None:
                continue
            a = self.tables.index[timed.ref]
            who = "''" if timed is stage else sh_quote(timed.ref)
            body.append(
                f"\t_sh_dlc $((${{_T{a}:-0}} + {int(timed.timeout_ms)})) {a} "
                f"{sh_quote(format_duration(int(timed.timeout_ms)))} {who}"
            )
        body.append(
            f"\t_sh_exec {n} {self.tables.ref_word(stage)} {stage.kind} {1 if stage.negative else 0} "
            f"{max(0, int(retries))} {sh_quote(stage.id or '')} {sh_quote(until)}"
        )
        body.append(f'\t[ "$_sh_st" = timeout ] || _S{n}=$_sh_st')
        body.append(f"\t_sh_fin {n} {self.tables.ref_word(stage)}")
        flag = self.tables.flag_update(stage)
        if flag:
            body.append(f"\t{flag}")
        body.append("fi")
        self.action(f"exec {stage.ref}", body)

    def constant_function(self, compiled: _Compiled) -> str:
        self.counter += 1
        name = f"_sh_x{self.counter}"
        assert compiled.constant is not None
        value = compiled.constant.value_  # type: ignore[attr-defined]
        try:
            body = f"\t_sh_r={sh_quote(encode_value(value))}"
        except RuntimeExpressionError as exc:
            body = f"\t_sh_err={sh_quote(exc.message)}\n\treturn 1"
        self.functions.append(f"{name}() {{\n{body}\n}}\n")
        return name

    def spawn(self, stage: Stage, scope: Scope, op: list[str]) -> str | None:
        """The command the operation's subshell execs (None: nothing to run)."""
        kind = stage.kind
        if kind == "shell":
            if stage.shell is None:
                op.append("\t_sh_err='shell: the step has no script'; return 1")
                return "exit 1"
            self.string_into("_sh_a1", stage.shell, scope, "shell", op)
            if not any(timed.timeout_ms is not None for timed in [stage, *self.tables.ancestors(stage)]):
                return 'exec "$_sh_bb" sh -c "set -e$_sh_nl$_sh_a1"'  # no deadline: no setsid
            return '_sh_exec_shell "$_sh_a1"'
        if kind == "run":
            argv = [*(stage.command or []), *(stage.args or [])]
            if not stage.command:
                op.append("\t_sh_err='run: no command to run (the image entrypoint is unknown)'; return 1")
                return "exit 1"
            words = []
            for k, item in enumerate(argv, start=1):
                what = "command" if k <= len(stage.command) else f"args[{k - len(stage.command) - 1}]"
                self.string_into(f"_sh_a{k}", item, scope, what, op)
                words.append(f'"$_sh_a{k}"')
            op.append("\t_sh_argv0=$_sh_a1")
            return "_sh_exec_run " + " ".join(words)
        if kind == "delay":
            ms = max(0, int(stage.spec.get("ms", 0)))
            return f"_sh_exec_sleep {ms // 1000}.{ms % 1000:03d}"
        if kind == "pause":
            return None
        if kind in TOOLKIT_KINDS:
            op.append("\tif [ -z \"$_sh_tk\" ]; then _sh_err='SHOAL_TOOLKIT is not set'; return 1; fi")
            return f"_sh_exec_toolkit {sh_quote(kind)} {self.tables.ref_word(stage)}"
        op.append(f"\t_sh_err={sh_quote(f'the init program cannot run a {kind!r} stage')}; return 1")
        return "exit 1"

    # ------------------------------------------------------------------ actions

    def action(self, title: str, lines: list[str]) -> None:
        self.actions.append(
            f'# {_comment(title)}\n[ -z "$_sh_abort" ] || _sh_abort_exit\n' + "\n".join(lines)
        )

    def chain_condition(self, stage: Stage) -> bool | None:
        """True when the condition is the status chain, False when it is its negation, else None."""
        chain = self.chain(stage)
        if not chain:
            return None
        text = (stage.condition or "").replace(" ", "")
        chain_text = (stage.status_chain or "").replace(" ", "")
        if text in (chain_text, f"({chain_text})", "passed", "success"):
            return True
        if text in (f"!({chain_text})", f"!{chain_text}", "failed", "error"):
            return False
        return None

    def skip_function(self, stage: Stage) -> str:
        n = self.tables.index[stage.ref]
        name = f"_sh_sk_{n}"
        lines = [f"{name}() {{"]
        for sub in self.tables.postorder(stage.ref):
            m, ref = self.tables.index[sub.ref], self.tables.ref_word(sub)
            lines.append(f'\t[ -n "$_S{m}" ] || {{ _S{m}=skipped; _sh_end {m} {ref} skipped; }}')
        lines.append("}")
        self.functions.append("\n".join(lines) + "\n")
        return name

    def start(self, stage: Stage) -> None:
        n, ref = self.tables.index[stage.ref], self.tables.ref_word(stage)
        started = [
            f"_S{n}=running",
            f"_sh_start {n} {ref} {sh_quote(stage.id or '')}",
        ]
        if stage.timeout_ms is not None:
            started.append(f"_T{n}=$_sh_now")
        if stage.paused:
            started.append(f"_sh_setpause {n} {ref}")
        body = [f'if [ -z "$_S{n}" ]; then']
        fast = self.chain_condition(stage)
        if fast is not None:
            # the default `passed` (or `failed`): one test of the ancestors' failure flags
            branches = {
                True: [f"\t\t{self.skip_function(stage)}"],
                False: ["\t\t" + line for line in started],
            }
            body.append(f'\tcase "{self.tables.chain_flags(stage)}" in')
            body.append("\t*1*)")
            body.extend(branches[fast])
            body.append("\t\t;;")
            body.append("\t*)")
            body.extend(branches[not fast])
            body.append("\t\t;;")
            body.append("\tesac")
            body.append("fi")
            self.action(f"start {stage.ref}", body)
            return
        compiled = self.compile(
            stage.condition or "true", self.scope(stage, env=stage.kind != "group"), False
        )
        if compiled.constant is not None:
            if is_truthy(compiled.constant.value_):  # type: ignore[attr-defined]
                body.extend("\t" + line for line in started)
            else:
                body.append(f"\t{self.skip_function(stage)}")
        else:
            skip = self.skip_function(stage)
            body.append(f"\tif {compiled.function}; then")
            body.append('\t\tif _sh_truthy "$_sh_r"; then')
            body.extend("\t\t\t" + line for line in started)
            body.append("\t\telse")
            body.append(f"\t\t\t{skip}")
            body.append("\t\tfi")
            body.append("\telse")
            body.append("\t\t_sh_cerr=$_sh_err")
            body.extend("\t\t" + line for line in started[:2])
            body.append(f'\t\t_sh_execm {ref} -1 "condition: $_sh_cerr" 1')
            body.append(f"\t\t{skip}")
            body.append(f"\t\t_S{n}=failed; _sh_end {n} {ref} failed")
            flag = self.tables.flag_update(stage, "failed")
            if flag:
                body.append(f"\t\t{flag}")
            body.append("\tfi")
        body.append("fi")
        self.action(f"start {stage.ref}", body)

    def end(self, stage: Stage) -> None:
        n, ref = self.tables.index[stage.ref], self.tables.ref_word(stage)
        body = []
        if stage.paused:
            body.append(f'[ "$_sh_pz" != {n} ] || _sh_unpause')
        body.append(f'if [ "$_S{n}" = running ]; then')
        counted = self.tables.counted_children(stage)
        if stage.kind != "group":
            body.append(f"\t_S{n}=passed")
        elif counted and stage.result in ("&&".join(counted), "||".join("!" + r for r in counted)):
            # every counted child passed (negative: one of them failed): the group's failure flag
            test = "-n" if (stage.result or "").startswith("!") else "-z"
            body.append(f'\tif [ {test} "$_F{n}" ]; then _S{n}=passed; else _S{n}=failed; fi')
        else:
            compiled = self.compile(stage.result or "true", self.scope(stage, env=False), False)
            if compiled.constant is not None:
                status = "passed" if is_truthy(compiled.constant.value_) else "failed"  # type: ignore[attr-defined]
                body.append(f"\t_S{n}={status}")
            else:
                body.append(
                    f'\tif {compiled.function} && _sh_truthy "$_sh_r"; then _S{n}=passed; else _S{n}=failed; fi'
                )
        body.append(f'\t_sh_end {n} {ref} "$_S{n}"')
        flag = self.tables.flag_update(stage)
        if flag:
            body.append(f"\t{flag}")
        body.append("fi")
        self.action(f"end {stage.ref}", body)

    def render(self) -> str:
        for act in self.container.actions:
            if act.ref not in self.plan.stages:
                raise ValueError(
                    f"container {self.container.index}: action {act.op} of unknown ref {act.ref!r}"
                )
            stage = self.plan.stages[act.ref]
            if act.op == "start":
                self.start(stage)
            elif act.op == "end":
                self.end(stage)
            elif stage.kind == "group":
                raise ValueError(f"container {self.container.index}: exec of group {act.ref!r}")
            else:
                self.operation(stage)
        # the results dirs of the stages this program starts, made in one go by _sh_init
        ids = list(
            dict.fromkeys(
                self.plan.stages[act.ref].id or ""
                for act in self.container.actions
                if act.op == "start" and self.plan.stages[act.ref].id
            )
        )
        words = [sh_quote(step_id) for step_id in ids]
        init = "\n".join(
            ["_sh_init", *("_sh_mkdirs " + " ".join(words[k : k + 64]) for k in range(0, len(words), 64))]
        )
        head = (
            "#!/bin/sh\n"
            "# shellcheck disable=SC2154,SC2317,SC2016,SC1003,SC2030,SC2031 # state from lib.sh; functions\n"
            "# called by name; env exported in the operation's subshell only\n"
            f"# shoal init program: container {self.container.index} of workflow "
            f"{_comment(self.plan.workflow)} (generated)\n"
            "_sh_sourced=1\n"
            "# shellcheck source=/dev/null\n"
            '. "${SHOAL_DIR:-/.shoal}/lib.sh"\n'
            "# shellcheck source=/dev/null\n"
            '. "$_sh_dir/plan.sh"\n'
        )
        return (
            head
            + "\n"
            + "".join(self.functions)
            + f"\n{init}\n\n"
            + "\n\n".join(self.actions)
            + "\n\nexit 0\n"
        )
