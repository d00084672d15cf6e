"""The state a question carries between its steps (docs/query.md).

``QueryPlan`` is made once by the web tier (start.py) and travels with the question's
tasks; ``Searched`` is what the retrieve step hands to the answer task. Both are
serialised explicitly for Celery's JSON messages (``to_message`` / ``from_message``): a
message's keys are the fields, nothing more, so a step never infers an outcome from the
presence of a key.
"""
import dataclasses

from apps.operations.overload.admission import Route
from workers.queues import PriorityClass

from .caches import CacheScope


@dataclasses.dataclass(frozen=True)
class QueryPlan:
    """What the workers need to know about a query beyond its search parameters."""

    query_id: int
    stream: bool
    priority_class: PriorityClass
    deadline: float  # epoch seconds
    route: Route
    reason: str  # why admission did not choose the full route ("" when it did)
    scope: CacheScope
    semantic_cache: bool
    answer_task_id: str  # the task id the web tier waits on, whoever answers
    # A generation backend is configured: decided by the web tier, so one process's view
    # of the configuration governs the request.
    generate: bool

    @property
    def degraded_route(self) -> bool:
        return self.route == Route.RETRIEVAL_ONLY

    def to_message(self) -> dict:
        return {**dataclasses.asdict(self), "priority_class": str(self.priority_class), "route": str(self.route),
                "scope": self.scope.as_dict()}

    @classmethod
    def from_message(cls, message: dict) -> "QueryPlan":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in message.items() if k in fields},
                      "priority_class": PriorityClass(message["priority_class"]), "route": Route(message["route"]),
                      "scope": CacheScope(**message["scope"])})


@dataclasses.dataclass
class Searched:
    """The retrieve step's result: the hits, the timings so far, and the query vector (for
    the semantic cache); ``extractive_reason`` asks the answer step for the degraded
    extractive answer (admission routed the request around generation)."""

    hits: list[dict]
    timings: dict
    vector: list[float] | None = None
    extractive_reason: str = ""

    def to_message(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_message(cls, message: dict) -> "Searched":
        return cls(**message)
