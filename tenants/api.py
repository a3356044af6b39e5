"""The API edge: error shape of the contract, and views that run inside the caller's tenant."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.context import tenant_context


class APIError(exceptions.APIException):
    """An error with a stable snake_case code, as CONTRACT.md shapes it."""

    def __init__(self, code: str, message: str, status_code: int = 400, details: dict | None = None, *,
                 retry_after: int | None = None):
        self.status_code = status_code
        self.error_code = code
        self.details = details or {}
        if retry_after is not None:
            self.wait = retry_after  # the exception handler turns it into Retry-After
        super().__init__(detail=message, code=code)


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "invalid",
}


def error_body(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let it be a 500 and be seen
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, APIError):
        body = error_body(exc.error_code, str(exc.detail), exc.details)
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "The request is not valid.", {"fields": exc.detail})
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
        code = code or (exc.get_codes() if isinstance(exc.get_codes(), str) else "error")
        body = error_body(code, str(exc.detail))
    view = context.get("view")
    if getattr(view, "tenant_unit_open", False):
        # DRF turns the error into a response, so the context would exit cleanly and commit.
        transaction.set_rollback(True)
    return Response(body, status=exc.status_code, headers=headers)


class TenantAPIView(APIView):
    """Runs the handler inside the tenant of the authenticated caller (``request.auth.tenant``).

    The context opens after authentication and closes when the response is final, so a handled
    error (which DRF turns into a response) still rolls the unit of work back via ``set_rollback``.
    """

    #: ``"request"``: the whole handler is one unit of work in the tenant. ``"action"``: the handler
    #: opens none; each action it calls enters the tenant itself and commits on return. For a hot
    #: write (a flash-sale claim) whose row lock must not be held while the response is built.
    tenant_unit = "request"

    def dispatch(self, request, *args, **kwargs):
        with ExitStack() as stack:
            self._tenant_stack = stack
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        tenant = getattr(request.auth, "tenant", None)
        if tenant is None:
            raise exceptions.NotAuthenticated()
        if not tenant.is_active:
            raise APIError("tenant_suspended", "This merchant's service is suspended.", status.HTTP_403_FORBIDDEN)
        if self.tenant_unit == "request":
            self._tenant_stack.enter_context(tenant_context(tenant))
            self.tenant_unit_open = True
        request.tenant = tenant
