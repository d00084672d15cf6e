"""``python manage.py embedding_build``: build (or reuse) the configured OpenVINO encoder
from the packaged model, ahead of the workers: run by ``stack up`` and the Docker image."""
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from ...services.embedding import backend_checked


class Command(BaseCommand):
    help = "Build or reuse the OpenVINO encoder of SLUICE_EMBEDDING_BACKEND in SLUICE_MODEL_CACHE_DIR (offline)."

    def handle(self, *args, **options):
        backend = backend_checked()
        if not backend.startswith("openvino"):
            self.stdout.write(f"SLUICE_EMBEDDING_BACKEND={backend}: nothing to build")
            return
        from ...services.openvino_encoder import encoder_build

        started = time.perf_counter()
        build = encoder_build(quantisation="int8" if backend == "openvino-int8" else "none")
        verb = "reused" if build.reused else f"built in {time.perf_counter() - started:.1f}s"
        self.stdout.write(f"encoder {backend} {verb}: {build.path.parent} (cache {settings.SLUICE_MODEL_CACHE_DIR})")
