"""API errors as `metav1.Status` objects, with the reasons and messages a real API server uses."""

from __future__ import annotations

from typing import Any

from ._registry import ResourceType


class ApiError(Exception):
    """An error the API answers with: HTTP code + a `Status` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    # -- constructors, one per reason ---------------------------------------------------------------

    @staticmethod
    def _details(rt: ResourceType | None, name: str | None, **extra: Any) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if name is not None:
            d["name"] = name
        if rt is not None:
            if rt.group:
                d["group"] = rt.group
            d["kind"] = rt.plural
        d.update(extra)
        return d

    @classmethod
    def not_found(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(404, "NotFound", f'{rt.group_resource} "{name}" not found', cls._details(rt, name))

    @classmethod
    def no_route(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource",
                   {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})

    @classmethod
    def already_exists(cls, rt: ResourceType, name: str) -> ApiError:
        return cls(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', cls._details(rt, name))

    @classmethod
    def conflict(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        return cls(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
                   cls._details(rt, name))

    @classmethod
    def invalid(cls, rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
        """causes: (reason e.g. FieldValueRequired, field path, message)."""
        parts = [f"{f}: {m}" for _, f, m in causes]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        msg = f'{rt.kind} "{name}" is invalid: {joined}'
        return cls(422, "Invalid", msg, cls._details(
            rt, name, kind=rt.kind,
            causes=[{"reason": r, "message": m, "field": f} for r, f, m in causes]))

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, rt: ResourceType, name: str, why: str) -> ApiError:
        return cls(403, "Forbidden", f'{rt.group_resource} "{name}" is forbidden: {why}', cls._details(rt, name))

    @classmethod
    def gone(cls, message: str) -> ApiError:
        return cls(410, "Expired", message)

    @classmethod
    def method_not_allowed(cls) -> ApiError:
        return cls(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @classmethod
    def unauthorized(cls) -> ApiError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def unsupported_media(cls, content_type: str) -> ApiError:
        return cls(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted '
                   f'media types include: application/json-patch+json, application/merge-patch+json, '
                   f'application/apply-patch+yaml, application/strategic-merge-patch+json (got "{content_type}")')
