"""Which string of a spec is a template, which is an expression, which is left alone.

Testkube decides this per Go struct field (``expr:`` tags); on plain dicts the key decides:
``condition``, ``retry.until`` and ``logs`` are expressions, ``count``/``maxCount`` are expressions
when they are strings, ``matrix``/``shards`` values are expressions when strings and lists of
templates otherwise, a few keys are never evaluated, and every other string is a template.
``FieldWalker`` visits every evaluated string of a tree in place and tracks where it came from.
"""

from __future__ import annotations

from typing import Any

from shoal.workflow._origins import Origins, PathItem

EXPRESSION_KEYS = frozenset({"condition", "until", "logs"})
COUNT_KEYS = frozenset({"count", "maxCount"})
DYNAMIC_LIST_KEYS = frozenset({"matrix", "shards"})
# Never evaluated: identifiers, switches, and things handled elsewhere (template refs, config schemas).
IGNORED_KEYS = frozenset(
    {
        "id",
        "paused",
        "optional",
        "negative",
        "pure",
        "cone",
        "mount",
        "use",
        "template",
        "events",
        "apiVersion",
        "kind",
        "metadata",
        "system",
        "failFast",
        "async",
        "parallelism",
        "sensitive",
    }
)


def is_config_schema(value: Any) -> bool:
    """`config:` of a spec (name -> ParameterSchema) as opposed to `config:` values of a ref/execute."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


class Where:
    """Position of the node being visited: nearest object with an origin + path below it.

    ``rel`` is built only when asked for (to locate a problem): most visited values never need it.
    """

    __slots__ = ("_rel", "_up", "anchor", "key", "state")

    def __init__(
        self,
        anchor: Any,
        rel: tuple[PathItem, ...] | None,
        key: PathItem | None = None,
        state: Any = None,
        up: Where | None = None,
    ) -> None:
        self.anchor = anchor
        self._rel = rel  # None: the parent's ``rel`` plus ``key``
        self._up = up
        self.key = key  # the key of the visited value in its parent
        self.state = state  # walker-specific context (e.g. which scope applies)

    @property
    def rel(self) -> tuple[PathItem, ...]:
        rel = self._rel
        if rel is None:
            up = self._up
            rel = self._rel = (*(up.rel if up is not None else ()), self.key)  # type: ignore[arg-type]
        return rel

    def down(self, key: PathItem, origins: Origins, child: Any, state: Any = None) -> Where:
        new_state = self.state if state is None else state
        if (type(child) is dict or type(child) is list) and origins.has(child):
            return Where(child, (), key, new_state)
        return Where(self.anchor, None, key, new_state, self)


class FieldWalker:
    """Visits evaluated strings in place. Subclasses implement ``template``/``expression``/``enter``."""

    # keys whose list value is handed whole to ``template_list`` (argv: `command`, `args`)
    list_keys: frozenset[str] = frozenset()

    def __init__(self, origins: Origins) -> None:
        self.origins = origins

    # -- hooks ---------------------------------------------------------------------------------
    def template(self, text: str, where: Where) -> Any:
        return text

    def expression(self, value: Any, where: Where) -> Any:
        return value

    def template_list(self, items: list[Any], where: Where) -> list[Any]:
        return items

    def enter(self, key: str, value: Any, where: Where) -> Any:
        """New walker state for the value under ``key`` (None keeps the current one)."""
        return None

    # -- traversal -----------------------------------------------------------------------------
    def walk(self, node: Any, where: Where) -> Any:
        if isinstance(node, dict):
            self._walk_dict(node, where)
            return node
        if isinstance(node, list):
            known = self.origins.ids
            for i, item in enumerate(node):
                kind = type(item)
                if kind is str:
                    if "{{" in item:
                        node[i] = self.template(item, Where(where.anchor, None, i, where.state, where))
                elif kind is dict or kind is list:
                    if id(item) in known:
                        self.walk(item, Where(item, (), i, where.state))
                    else:
                        self.walk(item, Where(where.anchor, None, i, where.state, where))
                elif isinstance(item, (dict, list)):
                    self.walk(item, where.down(i, self.origins, item))
            return node
        if isinstance(node, str):
            return self.template(node, where)
        return node

    def _walk_dict(self, node: dict[str, Any], where: Where) -> None:
        known = self.origins.ids
        enter = self.enter
        list_keys = self.list_keys
        for key, value in node.items():
            kind = type(value)
            if kind is str:
                if "{{" not in value and key not in EXPRESSION_KEYS and key not in COUNT_KEYS:
                    continue
                if key in IGNORED_KEYS:
                    continue
            elif kind is int or kind is float or kind is bool or value is None or key in IGNORED_KEYS:
                continue
            if key == "config" and is_config_schema(value):
                continue
            state = enter(key, value, where)
            if state is None:
                state = where.state
            if (kind is dict or kind is list) and id(value) in known:
                sub = Where(value, (), key, state)
            else:
                sub = Where(where.anchor, None, key, state, where)
            if kind is str:
                if key in EXPRESSION_KEYS or key in COUNT_KEYS:
                    node[key] = self.expression(value, sub)
                else:
                    node[key] = self.template(value, sub)
            elif key in list_keys and isinstance(value, list):
                node[key] = self.template_list(value, sub)
            elif key in EXPRESSION_KEYS:
                node[key] = self.expression(value, sub)
            elif key in COUNT_KEYS:
                if isinstance(value, str):
                    node[key] = self.expression(value, sub)
            elif key in DYNAMIC_LIST_KEYS and isinstance(value, dict):
                for name, items in value.items():
                    item_where = sub.down(name, self.origins, items)
                    if isinstance(items, str):
                        value[name] = self.expression(items, item_where)
                    elif isinstance(items, list):
                        self.walk(items, item_where)
            elif isinstance(value, str):
                node[key] = self.template(value, sub)
            elif isinstance(value, (dict, list)):
                self.walk(value, sub)
