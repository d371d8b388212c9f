"""The names an expression may still use after compilation: the contract with the init program.

The compiler resolves everything it can; whatever survives in a Plan (conditions, ``retry.until``,
``{{ }}`` islands in commands, scripts, env values) may only use the variables and functions listed
here, because those are the only ones the init program knows how to evaluate inside the container.
"""

from __future__ import annotations

from collections.abc import Collection

# Functions the init program evaluates at run time. Every other function must be resolved at compile
# time (its arguments must be static), otherwise compilation fails with a positioned problem.
RUNTIME_FUNCTIONS: frozenset[str] = frozenset(
    {"string", "len", "trim", "shellquote", "file", "glob", "bool", "int", "join", "at"}
)

# Variable roots only known inside the running container. `env` alone is the whole environment map.
RUNTIME_ROOTS: frozenset[str] = frozenset({"env", "step", "self", "output", "services"})

# Names that stand for the status of the steps run so far; the compiler expands them into
# expressions over refs (`passed` -> chain, `failed` -> !chain, `status` -> chain ? "passed" : "failed").
STATUS_NAMES: frozenset[str] = frozenset({"passed", "success", "failed", "error", "status"})

# Variables of one instance of a parallel worker, a service or an `execute` entry. They stay symbolic
# in the parent Plan (inside ``Stage.spec``) and are bound by ``expand_instances``.
INSTANCE_ROOTS: frozenset[str] = frozenset(
    {"index", "count", "matrix", "matrixIndex", "matrixCount", "shard", "shardIndex", "shardCount"}
)

# Only in `execute.workflows[]`: the URLs of the tarballs the parent serves to the child run.
EXECUTE_ROOTS: frozenset[str] = frozenset({"tarball"})

# `secret(name, key)` and `credential(name)` become env vars with these prefixes (see SecretRefs).
SECRET_REF_ENV_PREFIX = "SHOAL_SECRET_REF_"
CREDENTIAL_ENV_PREFIX = "SHOAL_CREDENTIAL_"

# Prefix of the env vars that carry sensitive config values (`config.token` -> env.SHOAL_SECRET_TOKEN).
SENSITIVE_ENV_PREFIX = "SHOAL_SECRET_"


def root_of(name: str) -> str:
    """`step.build.outputs.x` -> `step`."""
    dot = name.find(".")
    return name if dot < 0 else name[:dot]


def is_runtime_name(name: str, refs: Collection[str] = (), extra_roots: Collection[str] = ()) -> bool:
    """Whether a variable may stay symbolic in a Plan (the init program or a worker resolves it)."""
    root = root_of(name)
    return root in RUNTIME_ROOTS or root in extra_roots or name in refs


def sensitive_env_name(config_name: str) -> str:
    """The env var that carries a sensitive config value: upper-case, non-alphanumerics -> `_`."""
    mangled = "".join(ch.upper() if ch.isascii() and ch.isalnum() else "_" for ch in config_name)
    return SENSITIVE_ENV_PREFIX + mangled


def _mangle(*parts: str) -> str:
    import hashlib

    text = "_".join(parts)
    mangled = "".join(ch.upper() if ch.isascii() and ch.isalnum() else "_" for ch in text)
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=2).hexdigest().upper()
    return f"{mangled}_{digest}"


def secret_env_name(secret: str, key: str) -> str:
    """The env var backed by `secretKeyRef {name: secret, key: key}` that `secret(secret, key)` reads."""
    return SECRET_REF_ENV_PREFIX + _mangle(secret, key)


def credential_env_name(name: str) -> str:
    """The env var the runtime fills with control-plane credential `name` (`credential(name)`)."""
    return CREDENTIAL_ENV_PREFIX + _mangle(name)
