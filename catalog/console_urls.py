from django.urls import path

from catalog import console_views as views

app_name = "catalog"

urlpatterns = [
    path("", views.item_list, name="index"),
    path("items/new/", views.item_create, name="item_create"),
    path("items/<int:item_id>/", views.item_edit, name="item_edit"),
    path("categories/", views.category_list, name="categories"),
    path("categories/<int:category_id>/rename/", views.category_rename, name="category_rename"),
    path("import/", views.import_upload, name="import"),
    path("import/<str:token>/", views.import_preview, name="import_preview"),
]
