from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from tenants import resolvers


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def home(request):
    """The tenant switcher: straight into the only tenant, else a list."""
    memberships = list(resolvers.memberships_of(request.user))
    if len(memberships) == 1:
        return redirect("console:dashboard", tenant_slug=memberships[0].tenant.slug)
    return render(request, "console/home.html", {"memberships": memberships})


def dashboard(request):
    return render(request, "console/dashboard.html")
