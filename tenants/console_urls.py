from django.urls import path

from tenants import console_views as views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("<slug:tenant_slug>/", views.dashboard, name="dashboard"),
]
