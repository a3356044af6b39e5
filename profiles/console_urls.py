from django.urls import path

from profiles import console_profiles
from profiles import console_views as views

app_name = "members"

urlpatterns = [
    path("", views.member_index, name="index"),
    path("export.csv", views.member_export, name="export"),
    path("bulk-tag/", views.member_bulk_tag, name="bulk_tag"),
    path("<int:member_id>/", views.member_detail, name="detail"),
    path("<int:member_id>/tags/", views.member_tag_add, name="tag_add"),
    path("<int:member_id>/tags/<int:tag_id>/remove/", views.member_tag_remove, name="tag_remove"),
    path("profiles/", console_profiles.profile_overview, name="profiles"),
    path("profiles/recompute/", console_profiles.profile_recompute, name="profiles_recompute"),
    path("tags/", views.tag_list, name="tags"),
    path("tags/<int:tag_id>/rename/", views.tag_rename, name="tag_rename"),
    path("tags/<int:tag_id>/delete/", views.tag_delete, name="tag_delete"),
]
