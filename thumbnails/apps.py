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
        registry.register(
            registry.FileTarget(
                key="stale_renditions",
                label="Rendition files of deleted images",
                prefix="renditions",
                default_days=1,  # a job's files are written a moment before its rows: leave them a day
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
