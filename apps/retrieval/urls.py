from django.urls import path

from .api.views import search_api

urlpatterns = [
    path("search/", search_api, name="search"),
]
