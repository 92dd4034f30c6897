"""Administration URLs: users and roles, institutions, break-glass, the access review.

Ids in URLs are staff accounts, institutions and requests, never residents.
"""

from django.urls import path

from kenshin.accounts import admin_views as v

urlpatterns = [
    path("admin/users/", v.user_list, name="admin_users"),
    path("admin/users/new/", v.user_create, name="admin_user_create"),
    path("admin/users/<int:pk>/", v.user_detail, name="admin_user"),
    path("admin/users/<int:pk>/assign/", v.user_assign, name="admin_user_assign"),
    path(
        "admin/users/<int:pk>/assignments/<int:assignment_id>/revoke/",
        v.user_revoke,
        name="admin_user_revoke",
    ),
    path(
        "admin/users/<int:pk>/reset/", v.user_action, {"action": "reset"}, name="admin_user_reset"
    ),
    path(
        "admin/users/<int:pk>/force-change/",
        v.user_action,
        {"action": "force_change"},
        name="admin_user_force_change",
    ),
    path(
        "admin/users/<int:pk>/disable/",
        v.user_action,
        {"action": "disable"},
        name="admin_user_disable",
    ),
    path(
        "admin/users/<int:pk>/enable/",
        v.user_action,
        {"action": "enable"},
        name="admin_user_enable",
    ),
    path(
        "admin/users/<int:pk>/reset-mfa/",
        v.user_action,
        {"action": "reset_mfa"},
        name="admin_user_reset_mfa",
    ),
    path("admin/users/<int:pk>/end-sessions/", v.user_end_sessions, name="admin_user_end_sessions"),
    path("admin/roles/", v.role_list, name="admin_roles"),
    path("institutions/", v.institution_list, name="institutions"),
    path("institutions/<int:pk>/", v.institution_detail, name="institution"),
    path("institutions/<int:pk>/edit/", v.institution_edit, name="institution_edit"),
    path("admin/break-glass/", v.breakglass_list, name="breakglass"),
    path("admin/break-glass/request/", v.breakglass_request, name="breakglass_request"),
    path("admin/break-glass/<int:pk>/approve/", v.breakglass_approve, name="breakglass_approve"),
    path("admin/break-glass/<int:pk>/reject/", v.breakglass_reject, name="breakglass_reject"),
    path("admin/break-glass/<int:pk>/end/", v.breakglass_end, name="breakglass_end"),
    path("admin/access-review/", v.access_review_page, name="access_review"),
    path("admin/access-review/csv/", v.access_review_csv, name="access_review_csv"),
]
