"""Request validation and response shapes for collections and documents."""
from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from ..models import Collection, CollectionShare, Document
from ..services.ingestion import MetadataError, metadata_validate
from .exceptions import PayloadTooLarge


class CollectionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=200, trim_whitespace=True)
    document_count = serializers.IntegerField(read_only=True, required=False)
    owner = serializers.CharField(source="owner.username", read_only=True)
    access = serializers.SerializerMethodField(help_text="the caller's access: owner, write or read")

    class Meta:
        model = Collection
        fields = [
            "id", "name", "description", "owner", "access", "embedding_model", "embedding_dim", "content_version",
            "document_count", "created_at", "updated_at",
        ]
        read_only_fields = ["embedding_model", "embedding_dim", "content_version", "created_at", "updated_at"]

    def get_access(self, obj: Collection) -> str:
        # Annotated by collections_with_access; a collection just created is the caller's own.
        return getattr(obj, "access", None) or "owner"

    def validate_name(self, value: str) -> str:
        owner = self.instance.owner if self.instance is not None else self.context["request"].user
        clash = Collection.objects.filter(owner=owner, name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"you already have a collection named {value!r}")
        return value


class CollectionShareSerializer(serializers.ModelSerializer):
    """A share: give ``user`` (a username) or ``group`` (a group name), and ``access``."""

    user = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all(),
                                        required=False, allow_null=True)
    group = serializers.SlugRelatedField(slug_field="name", queryset=Group.objects.all(), required=False, allow_null=True)

    class Meta:
        model = CollectionShare
        fields = ["id", "user", "group", "access", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError({"user": ["give either `user` (a username) or `group` (a group name)"]})
        collection = self.context["collection"]
        if attrs.get("user") is not None and attrs["user"].pk == collection.owner_id:
            raise serializers.ValidationError({"user": ["that user owns the collection already"]})
        return attrs


class DocumentSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    status_url = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id", "collection", "title", "source", "format", "status", "error", "progress",
            "chunks_total", "chunks_embedded", "chunk_count", "version", "metadata", "size_bytes",
            "content_hash", "created_at", "updated_at", "ready_at", "embedded_by", "status_url",
        ]
        read_only_fields = fields

    def get_status_url(self, obj: Document) -> str:
        return reverse("document-detail", kwargs={"pk": obj.pk})


def _metadata_object(value):
    try:
        return metadata_validate(value)
    except MetadataError as exc:
        raise serializers.ValidationError(str(exc)) from None


class DocumentTextSerializer(serializers.Serializer):
    """One document given as JSON text."""

    FORMATS = ["text", "markdown", "html"]

    title = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    text = serializers.CharField(trim_whitespace=False, allow_blank=False)
    format = serializers.ChoiceField(choices=FORMATS, default="text")
    metadata = serializers.JSONField(required=False, default=dict, validators=[_metadata_object], help_text=(
        "a JSON object of at most SLUICE_METADATA_MAX_BYTES bytes and SLUICE_METADATA_MAX_DEPTH levels; its "
        "top-level scalar entries are what search filters match"))

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must contain some text, not only whitespace")
        if len(value.encode()) > settings.SLUICE_UPLOAD_MAX_BYTES:
            raise PayloadTooLarge(
                f"text is larger than the {settings.SLUICE_UPLOAD_MAX_BYTES}-byte limit (SLUICE_UPLOAD_MAX_BYTES); "
                "split it into several documents"
            )
        return value


class DocumentUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=500, required=False)
    text = serializers.CharField(trim_whitespace=False, required=False, allow_blank=False)
    format = serializers.ChoiceField(choices=DocumentTextSerializer.FORMATS, default="text")
    metadata = serializers.JSONField(required=False, validators=[_metadata_object])

    def validate(self, attrs):
        if not attrs.keys() & {"title", "text", "metadata"}:
            raise serializers.ValidationError("give at least one of title, text, metadata")
        if "text" in attrs:
            DocumentTextSerializer().validate_text(attrs["text"])
        return attrs
