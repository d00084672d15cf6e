from django.urls import path

from .api.query import query_api
from .api.results import task_api
from .api.search import search_api

urlpatterns = [
    path("search/", search_api, name="search"),
    path("query/", query_api, name="query"),
    path("tasks/<str:task_id>/", task_api, name="task"),
]
