from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "apps.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from .gauges import operations_gauges_register
        from .overload import admission  # noqa: F401  (registers sluice_queue_wait_estimate_seconds)

        operations_gauges_register()
