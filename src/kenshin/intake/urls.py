"""Intake screens. URLs carry batch and row numbers only, never a person."""

from django.urls import path

from kenshin.intake import views

app_name = "intake"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:batch_id>/", views.batch, name="batch"),
    path("<int:batch_id>/commit/", views.commit, name="commit"),
    path("<int:batch_id>/approve/", views.approve, name="approve"),
    path("<int:batch_id>/discard/", views.discard, name="discard"),
    path("<int:batch_id>/errors.csv", views.errors, name="errors"),
    path("rows/<int:row_id>/", views.resolve, name="resolve"),
    path("profiles/", views.profiles, name="profiles"),
]
