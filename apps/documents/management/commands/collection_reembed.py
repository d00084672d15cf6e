"""``python manage.py collection_reembed ID``: move a collection to the configured encoder's
model by re-embedding every chunk (services/reembed.py; docs/ingestion.md, "Encoders")."""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ...models import Collection
from ...services.embedding import embedding_model
from ...services.reembed import collection_reembed


class Command(BaseCommand):
    help = "Re-embed every chunk of a collection with the configured encoder and record its model."

    def add_arguments(self, parser):
        parser.add_argument("collection", type=int, help="the collection's id")

    def handle(self, *args, collection, **options):
        target = Collection.objects.filter(pk=collection).first()
        if target is None:
            raise CommandError(f"no collection with id {collection}; `GET /api/v1/collections/` lists them")
        if target.embedding_model == embedding_model():
            self.stdout.write(f"collection {collection} already holds vectors of {target.embedding_model!r}; nothing to do")
            return
        with tqdm(unit="chunk", desc=f"collection {collection}") as bar:
            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            count = collection_reembed(collection=target, progress=progress)
        self.stdout.write(self.style.SUCCESS(
            f"collection {collection}: {count} chunks re-embedded; it now holds vectors of {embedding_model()!r}"))
