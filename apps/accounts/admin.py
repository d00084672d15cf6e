"""Admin for API keys: create one (shown once, on the page that follows), set a key's
priority class and rate, revoke.

Creating a key for another user needs a superuser or ``accounts.add_key_for_others``: with
``add_apikey`` alone the form has no user field and the key is the staff user's own.
Revoking needs ``change_apikey``."""
from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from .models import ApiKey
from .services import InvalidRate, api_key_create, api_key_revoke, rate_validate

ADD_FOR_OTHERS = "accounts.add_key_for_others"  # declared on ApiKey (apps/accounts/models.py)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["user", "name", "priority", "rate"]

    def clean_rate(self):
        try:
            return rate_validate(self.cleaned_data["rate"])
        except InvalidRate as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["prefix", "name", "user", "priority", "rate", "created_at", "last_used_at", "active"]
    list_filter = ["priority", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["prefix", "name", "user__username"]
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None and not request.user.has_perm(ADD_FOR_OTHERS):
            return [name for name in fields if name != "user"]  # save_model makes it their own key
        return fields

    def get_readonly_fields(self, request, obj=None):
        shown = ["prefix", "created_at", "last_used_at", "revoked_at"]
        return shown + ["user"] if obj is not None else shown

    @admin.display(boolean=True, description="active")
    def active(self, obj: ApiKey) -> bool:
        return obj.revoked_at is None

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        if not request.user.has_perm(ADD_FOR_OTHERS):
            obj.user = request.user  # whatever was posted: the form had no user field
        key, raw_key = api_key_create(user=obj.user, name=obj.name, priority=obj.priority, rate=obj.rate)
        obj.pk, obj.prefix, obj.hashed_key, obj.created_at = key.pk, key.prefix, key.hashed_key, key.created_at
        obj._state.adding = False
        request._sluice_new_api_key = raw_key  # shown by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        raw_key = getattr(request, "_sluice_new_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "title": "API key created", "key": obj,
                   "raw_key": raw_key, "opts": self.opts}
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        active = list(queryset.filter(revoked_at__isnull=True))
        for key in active:
            api_key_revoke(api_key=key)
        self.message_user(request, f"{len(active)} key(s) revoked at {timezone.now():%Y-%m-%d %H:%M:%S} UTC",
                          messages.SUCCESS)
