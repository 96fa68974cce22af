from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from thumbnails import services
from thumbnails.models import Image, Rendition


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    can_delete = False
    fields = ("preview", "name", "width", "height", "byte_size", "spec_key", "file")
    readonly_fields = fields

    @admin.display(description="")
    def preview(self, rendition: Rendition) -> str:
        return format_html(
            '<a href="{}"><img src="{}" style="max-height:80px"></a>', rendition.url, rendition.url
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "thumbnail",
        "original_name",
        "status",
        "error",
        "format",
        "width",
        "height",
        "created_at",
    )
    list_filter = ("status", "format", "animated")
    search_fields = ("original_name", "content_hash", "error", "error_detail")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Image._meta.fields]
    inlines = [RenditionInline]
    actions = ["regenerate", "retry_failed"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("renditions")

    @admin.display(description="thumbnail")
    def thumbnail(self, image: Image) -> str:
        thumb = image.rendition_map.get("thumb")
        return format_html('<img src="{}" style="max-height:48px">', thumb.url) if thumb else "—"

    def has_add_permission(self, request) -> bool:
        return False  # images come in through uploads, the API or `thumbnails ingest`

    @admin.action(description="Regenerate renditions of the selected images", permissions=["change"])
    def regenerate(self, request, queryset) -> None:
        count = services.images_regenerate(image_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} image(s) queued for regeneration on the high queue.")

    @admin.action(description="Retry the selected failed images", permissions=["change"])
    def retry_failed(self, request, queryset) -> None:
        ids = list(queryset.filter(status=Image.Status.FAILED).values_list("pk", flat=True))
        if not ids:
            self.message_user(request, "None of the selected images has failed.", messages.WARNING)
            return
        services.images_regenerate(image_ids=ids)
        self.message_user(request, f"{len(ids)} failed image(s) queued again.")
