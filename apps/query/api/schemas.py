"""OpenAPI documentation of the async views (search, query, task results): their request
and response bodies in one place. The views themselves are plain async functions
(views.py, query.py); ``documented_by`` attaches these documentation-only classes.

To document a new request field, add it to the request serializer (serializers.py), or
for ``query`` to ``QUERY_REQUEST_FIELDS``; a new response field goes into the response
serializers below.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from apps.operations.api.schema import ErrorSerializer
from workers.queues import PriorityClass

from .serializers import QueryRequestSerializer, SearchRequestSerializer


class TimingsSerializer(serializers.Serializer):
    """Milliseconds per stage (see apps/query/timing.py); other stages may appear."""

    embed_ms = serializers.FloatField(required=False)
    retrieve_ms = serializers.FloatField(required=False)
    generate_ms = serializers.FloatField(required=False)
    cache_ms = serializers.FloatField(required=False)
    log_ms = serializers.FloatField(required=False)
    web_ms = serializers.FloatField(required=False)
    queue_ms = serializers.FloatField(required=False)
    total_ms = serializers.FloatField(required=False)


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField()
    heading_path = serializers.ListField(child=serializers.CharField())
    vector_rank = serializers.IntegerField(allow_null=True, required=False)
    text_rank = serializers.IntegerField(allow_null=True, required=False)


class SearchResponseSerializer(serializers.Serializer):
    collection = serializers.IntegerField()
    query = serializers.CharField()
    mode = serializers.ChoiceField(choices=["hybrid", "vector", "text"])
    priority = serializers.ChoiceField(choices=PriorityClass.values, help_text="the request's class (docs/overload.md)")
    results = SearchHitSerializer(many=True)
    timings = TimingsSerializer()


class CitationSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="the [n] marker in the answer")
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    snippet = serializers.CharField()
    score = serializers.FloatField()


class CacheDetailSerializer(serializers.Serializer):
    stale = serializers.BooleanField(help_text="made for an earlier version of the collection")
    question = serializers.CharField(required=False, help_text="semantic cache: the earlier question")
    similarity = serializers.FloatField(required=False, help_text="semantic cache: cosine similarity")
    cached_for_version = serializers.IntegerField(required=False)


class AnswerSerializer(serializers.Serializer):
    query_id = serializers.IntegerField()
    answer = serializers.CharField(allow_blank=True)
    citations = CitationSerializer(many=True)
    generator = serializers.CharField(help_text="tgi, openai or extractive")
    served_by = serializers.ChoiceField(
        choices=["generation", "extractive", "exact_cache", "semantic_cache", "stale_cache"],
        help_text="the rung of the overload ladder that answered (docs/overload.md)")
    degraded = serializers.BooleanField(help_text="true when a fallback produced the answer")
    degraded_reason = serializers.CharField(allow_blank=True, required=False)
    priority = serializers.ChoiceField(choices=PriorityClass.values, help_text="the request's class")
    cache = CacheDetailSerializer(required=False, help_text="for cache hits: where the answer came from")
    timings = TimingsSerializer()


class TaskAcceptedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    query_id = serializers.IntegerField()
    priority = serializers.ChoiceField(choices=PriorityClass.values)
    served_by = serializers.CharField(required=False, help_text="set when a cache answered at once")
    status_url = serializers.CharField()


class TaskStateSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    state = serializers.CharField(help_text="PENDING, STARTED, SUCCESS or FAILURE")
    query_id = serializers.IntegerField(required=False)
    result = AnswerSerializer(required=False, help_text="the answer, once state is SUCCESS")
    error = serializers.DictField(required=False, help_text="code and message, when state is FAILURE")


# `async` is a Python keyword: the real serializer calls it `run_async`; the documented
# request is built from the real serializer's fields, so new fields show up by themselves.
QUERY_REQUEST_FIELDS = {
    ("async" if name == "run_async" else name): field for name, field in QueryRequestSerializer().get_fields().items()
}
QueryRequestDoc = inline_serializer(name="QueryRequest", fields=QUERY_REQUEST_FIELDS)

SSE_DESCRIPTION = (
    "With `stream: true`: server-sent events `start` ({query_id, task_id}), `token` ({text}) "
    "for each piece of the answer, then `done` (the answer body, as without streaming) or `error` "
    "({code, message})."
)
_UNAVAILABLE = {
    404: OpenApiResponse(ErrorSerializer, description="No such collection, or not one the caller may read."),
    409: OpenApiResponse(ErrorSerializer, description=(
        "`code: embedding_model_mismatch`: the collection's vectors are of another model than the configured "
        "encoder's (`collection_model`, `configured_model`); the message says how to fix it.")),
    503: OpenApiResponse(ErrorSerializer, description=(
        "Shed by admission control before anything ran (`code: overloaded`, with `reason`, `priority`, "
        "`retry_after`, `estimated_wait_s` and a `Retry-After` header; docs/overload.md), or the task "
        "failed on a worker (`code: query_failed`, logged); retry after the given seconds.")),
    504: OpenApiResponse(ErrorSerializer, description="No result within the deadline; retry later."),
}


class SearchApiSchema(APIView):
    @extend_schema(
        operation_id="search", tags=["search"], request=SearchRequestSerializer,
        responses={200: SearchResponseSerializer, **_UNAVAILABLE},
        summary="Ranked chunks of a collection for a query (retrieval only)",
        examples=[OpenApiExample("hybrid", request_only=True,
                                 value={"collection": 1, "query": "what erupts from volcanoes?", "top_k": 5})],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class QueryApiSchema(APIView):
    @extend_schema(
        operation_id="query", tags=["query"], request=QueryRequestDoc,
        responses={
            (200, "application/json"): AnswerSerializer,
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description=SSE_DESCRIPTION),
            202: TaskAcceptedSerializer,
            **_UNAVAILABLE,
        },
        summary="A grounded answer with citations: synchronous, async (202 + task) or streamed (SSE)",
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class TaskApiSchema(APIView):
    @extend_schema(operation_id="task_retrieve", tags=["query"], responses={200: TaskStateSerializer},
                   summary="The state of an async query, and its answer when done (the asker only)")
    def get(self, request, task_id: str):  # pragma: no cover - documentation only
        raise NotImplementedError

