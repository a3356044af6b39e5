from tenants import resolvers, roles


def console(request):
    membership = getattr(request, "membership", None)
    if membership is None:
        return {}
    return {
        "tenant": membership.tenant,
        "membership": membership,
        "my_tenants": resolvers.memberships_of(request.user),
        "can_change": roles.can_change(membership.role),
        "can_manage_credentials": roles.can_manage_credentials(membership.role),
        "can_manage_staff": roles.can_manage_staff(membership.role),
    }
