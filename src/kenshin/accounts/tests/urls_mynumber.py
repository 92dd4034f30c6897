"""The project's URLs plus one page that shows 個人番号, for the 15-minute idle test."""

from django.http import HttpResponse
from django.urls import path

from kenshin.core.permissions import requires
from kenshin.urls import urlpatterns as project_urlpatterns


@requires("residents.view", shows_mynumber=True)
def mynumber_page(request):
    return HttpResponse("個人番号を表示する画面（試験用）")


urlpatterns = [*project_urlpatterns, path("test-mynumber/", mynumber_page, name="test_mynumber")]
