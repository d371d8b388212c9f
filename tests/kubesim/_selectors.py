"""Label and field selectors with the grammar and the error messages of the real API server.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a` (does not
exist), comma-separated and ANDed. Field selectors: `f=v`, `f==v`, `f!=v` on the fields a resource
declares in the registry; any other field is a 400, as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import ApiError

_KEY_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_errors(key: str) -> list[str]:
    """Why `key` is not a valid qualified name (empty list when it is)."""
    errors: list[str] = []
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return ["prefix part must be non-empty"]
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        errors.append("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                      "characters, '-' or '.', and must start and end with an alphanumeric character")
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _KEY_NAME.match(name):
        errors.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                      "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                      "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errors


def label_value_errors(value: str) -> list[str]:
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not _LABEL_VALUE.match(value):
        return ["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                "'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    return []


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def is_empty(self) -> bool:
        return not self.requirements


def _parse_error(selector: str, detail: str) -> ApiError:
    return ApiError.bad_request(f"unable to parse requirement: {detail}")


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _check_key(selector: str, key: str) -> None:
    errors = label_key_errors(key)
    if errors:
        raise _parse_error(selector, f'<nil>: Invalid value: "{key}": {"; ".join(errors)}')


def _check_value(selector: str, value: str) -> None:
    errors = label_value_errors(value)
    if errors:
        raise _parse_error(selector, f'<nil>: Invalid value: "{value}": {"; ".join(errors)}')


_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the `labelSelector` query parameter; raise a 400 ApiError on bad syntax."""
    if text is None or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise _parse_error(text, "found '', expected: identifier")
        m = _SET_RE.match(part)
        if m:
            key = m.group("key")
            _check_key(text, key)
            values = tuple(v.strip() for v in m.group("values").split(",")) if m.group("values").strip() else ()
            if not values:
                raise _parse_error(text, "for 'in', 'notin' operators, values set can't be empty")
            for v in values:
                _check_value(text, v)
            reqs.append(Requirement(key, m.group("op"), tuple(sorted(values))))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(text, key)
            reqs.append(Requirement(key, "!"))
            continue
        for op, norm in (("==", "="), ("!=", "!="), ("=", "=")):
            if op in part:
                key, _, value = part.partition(op)
                key, value = key.strip(), value.strip()
                _check_key(text, key)
                if "=" in value or "!" in value:
                    raise _parse_error(text, f"found '{value}', expected: identifier")
                _check_value(text, value)
                reqs.append(Requirement(key, norm, (value,)))
                break
        else:
            if " " in part or "(" in part or ")" in part:
                raise _parse_error(text, f"found '{part}', expected: in, notin, =, ==, !=, gt, lt")
            _check_key(text, part)
            reqs.append(Requirement(part, "exists"))
    return LabelSelector(tuple(reqs))


def selector_from_object(sel: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (`matchLabels` + `matchExpressions`) as a LabelSelector."""
    if not sel:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, str, str], ...] = ()  # (field, op "="/"!=", value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for fld, op, value in self.terms:
            actual = field_value(obj, fld)
            if (actual == value) != (op == "="):
                return False
        return True

    def names(self) -> set[str]:
        return {v for f, op, v in self.terms if f == "metadata.name" and op == "="}


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field, as the API server's field-label conversion produces it."""
    if path == "source":
        src = obj.get("source") or {}
        return str(src.get("component", ""))
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> FieldSelector:
    if text is None or not text.strip():
        return FieldSelector()
    terms: list[tuple[str, str, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        op = next((o for o in ("==", "!=", "=") if o in part), None)
        if op is None:
            raise ApiError.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        fld, _, value = part.partition(op)
        fld = fld.strip()
        norm = "!=" if op == "!=" else "="
        if fld not in allowed:
            raise ApiError.bad_request(f'field label not supported: {fld}')
        terms.append((fld, norm, value.strip()))
    return FieldSelector(tuple(terms))
