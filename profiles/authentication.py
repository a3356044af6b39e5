"""How the Mini Program API knows its caller: a member token, then the member inside its tenant.

``MemberTokenAuthentication`` verifies the signature without touching tenant data and puts a
``MemberAuth`` on ``request.auth``; ``MemberAPIView`` (a ``TenantAPIView``) then enters that tenant
and loads the member, so an erased member's still-unexpired token stops working at once.
Every member endpoint of every app derives from ``MemberAPIView``.
"""

from __future__ import annotations

from functools import cached_property

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from profiles import queries, tokens
from profiles.models import Member
from tenants import resolvers
from tenants.api import APIError, TenantAPIView
from tenants.models import Tenant


class TokenRejected(APIError, exceptions.AuthenticationFailed):
    """401 with a contract error code (``token_expired`` tells the client to refresh)."""

    def __init__(self, code: str = "invalid_token", message: str = "The token is not valid."):
        super().__init__(code, message, status.HTTP_401_UNAUTHORIZED)


def rejected(error: tokens.TokenError) -> TokenRejected:
    if error.expired:
        return TokenRejected("token_expired", "The token has expired; refresh it or sign in again.")
    return TokenRejected()


class MemberAuth:
    """``request.auth`` of a member request: the verified claims and the tenant they name."""

    def __init__(self, tenant: Tenant, claims: tokens.TokenClaims):
        self.tenant = tenant
        self.claims = claims

    @property
    def member_id(self) -> int:
        return self.claims.member_id

    def member_reference(self) -> Member:
        """The member by id alone, its other fields loaded on first use: for a view whose own statement
        proves the member is still there, which saves the query ``member`` makes."""
        return Member.from_db("default", ["id", "tenant_id"], [self.claims.member_id, self.tenant.pk])

    @cached_property
    def member(self) -> Member:
        """Needs the tenant context (fails closed without it); a gone member is a 401."""
        try:
            return queries.get_member(self.claims.member_id)
        except queries.MemberNotFound:
            raise TokenRejected() from None


class MemberUser:
    """``request.user`` of a member request. Throttles and permissions may ask ``is_authenticated``
    or ``pk`` before the tenant context opens, so those need no database; any other attribute is the
    member's own, loaded inside the context."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, auth: MemberAuth):
        self._auth = auth

    @property
    def pk(self) -> int:
        return self._auth.member_id

    id = pk

    def __getattr__(self, name: str):
        return getattr(self._auth.member, name)


def tenant_of(claims: tokens.TokenClaims) -> Tenant:
    tenant = resolvers.recent_tenant_by_id(claims.tenant_id)
    if tenant is None:
        raise TokenRejected()
    return tenant


class MemberTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise TokenRejected("invalid_token", "Authorization must be 'Bearer <token>'.")
        try:
            claims = tokens.verify(parts[1].decode("ascii"), tokens.ACCESS)
        except UnicodeDecodeError:
            raise TokenRejected() from None
        except tokens.TokenError as exc:
            raise rejected(exc) from None
        auth = MemberAuth(tenant_of(claims), claims)
        return MemberUser(auth), auth

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class MemberTokenScheme(OpenApiAuthenticationExtension):
    target_class = MemberTokenAuthentication
    name = "memberToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # noqa: S106 - a scheme name


class IsMember(BasePermission):
    """Only a member token gets in (DRF then answers 401, as the authenticator names a scheme)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, MemberAuth)


class MemberAPIView(TenantAPIView):
    """A Mini Program endpoint for a signed-in member: ``request.member`` inside ``request.tenant``."""

    authentication_classes = [MemberTokenAuthentication]
    permission_classes = [IsMember]
    #: False only where the handler's own statement checks that the member is still there (and
    #: answers ``TokenRejected`` when not): ``request.member`` is then a reference by id.
    load_member = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        request.member = request.auth.member if self.load_member else request.auth.member_reference()
