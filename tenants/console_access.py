"""View decorators for console pages that go beyond the middleware's "analysts never POST"."""

from __future__ import annotations

from functools import wraps

from django.shortcuts import render

from tenants import roles


def require_change(view):
    """Pages that only exist to change something (forms) are refused to read-only roles, GET included."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not roles.can_change(request.membership.role):
            return render(request, "console/forbidden.html", {"tenant": request.tenant}, status=403)
        return view(request, *args, **kwargs)

    return wrapped
