from django.apps import AppConfig


class ReplicasConfig(AppConfig):
    name = "apps.replicas"
    label = "replicas"
    verbose_name = "Read replicas"

    def ready(self) -> None:
        from .gauges import replica_gauges_register

        replica_gauges_register()
