from django.apps import AppConfig


class ThumbnailsConfig(AppConfig):
    name = "thumbnails"
    verbose_name = "Thumbnails"

    def ready(self) -> None:
        from purge import registry
        from thumbnails.models import Image, Rendition

        def referenced(names: list[str]) -> set[str]:
            originals = Image.objects.filter(original__in=names).values_list("original", flat=True)
            renditions = Rendition.objects.filter(file__in=names).values_list("file", flat=True)
            return set(originals) | set(renditions)

        registry.register_file_references(referenced)
        # Every file this app writes lies under one of these two folders, and only these policies remove them:
        # a deleted image's original and renditions once no other image (a twin with the same content, so the
        # same names) references them. A file is written a moment before its row: leave it a day.
        registry.register(
            registry.FileTarget(
                key="unused_originals",
                label="Uploaded originals no image references (deleted images, interrupted uploads)",
                prefix="originals",
                default_days=1,
            )
        )
        registry.register(
            registry.FileTarget(
                key="stale_renditions",
                label="Rendition files no image references (deleted images, outdated renditions)",
                prefix="renditions",
                default_days=1,
                former_labels=("Rendition files of deleted images",),
            )
        )

        # Inputs the workers refused (a failed image with a kind), counted by kind and hour for operators:
        # jobs' dashboard, `jobs status` and /metrics show them apart from failed jobs.
        from datetime import datetime

        from django.db.models import Count
        from django.db.models.functions import TruncHour

        from jobs import rejections
        from thumbnails.imaging import Rejection

        def rejected_since(since: datetime) -> list[tuple[datetime, str, int]]:
            return list(
                Image.objects.filter(status=Image.Status.FAILED, processed_at__gte=since)
                .exclude(error_kind="")
                .annotate(hour=TruncHour("processed_at"))
                .values_list("hour", "error_kind")
                .annotate(count=Count("id"))
                .order_by()
            )

        rejections.register(rejections.RejectionSource("images", rejected_since, kinds=tuple(Rejection)))
