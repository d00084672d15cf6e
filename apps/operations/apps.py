from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "apps.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django.conf import settings

        from workers.periodic import periodic_register

        from .gauges import operations_gauges_register
        from .history import history_sample
        from .overload import admission  # noqa: F401  (registers sluice_queue_wait_estimate_seconds)

        operations_gauges_register()
        # The queue page's rolling history (docs/operations.md, "Charts in the admin").
        periodic_register(name="history-sample", run=history_sample,
                          interval=lambda: settings.SLUICE_HISTORY_INTERVAL)
