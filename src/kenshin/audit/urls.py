from django.urls import path

from kenshin.audit import views

app_name = "audit"
urlpatterns = [
    path("review/", views.index, name="index"),
    path("review/history/", views.history, name="history"),
    path("review/anomalies/", views.anomalies, name="anomalies"),
    path("review/tasks/", views.tasks, name="tasks"),
    path("review/tasks/<int:task_id>/close/", views.close_task, name="close_task"),
]
