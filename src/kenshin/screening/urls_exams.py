"""URLs of exam records (mounted at /exams/): codes, batch ids and residents' random
references only — never a 宛名番号, a name or a case id (those travel in POST bodies)."""

from django.urls import path

from kenshin.screening import exam_views as views

app_name = "exams"
urlpatterns = [
    path("", views.home, name="home"),
    path("worklists/<str:code>/", views.worklist, name="worklist"),
    path("entry/", views.batches, name="batches"),
    path("entry/<int:batch_id>/", views.batch, name="batch"),
    path("entry/<int:batch_id>/key/", views.key, name="key"),
    path("person/<str:ref>/", views.person_ledger, name="ledger"),
    path("person/<str:ref>/pdf/", views.ledger_pdf, name="ledger_pdf"),
    path("person/<str:ref>/case/", views.case_update, name="case_update"),
    path("person/<str:ref>/report/", views.case_report, name="case_report"),
]
