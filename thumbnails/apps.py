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
                label="Uploaded originals that no image references (deleted images, interrupted uploads)",
                prefix="originals",
                default_days=1,
            )
        )
        registry.register(
            registry.FileTarget(
                key="stale_renditions",
                label="Rendition files that no image references (deleted images, outdated renditions)",
                prefix="renditions",
                default_days=1,
                former_labels=("Rendition files of deleted images",),
            )
        )

        # Inputs the workers refused, counted by kind and hour for operators: jobs' dashboard, `jobs status`
        # and /metrics show them apart from failed jobs. Read from the records of each rejection, which
        # deleting or retrying the image leaves as they are.
        from datetime import datetime

        from django.db.models import Count
        from django.db.models.functions import TruncHour

        from jobs import rejections
        from thumbnails.imaging import Rejection
        from thumbnails.models import InputRejection

        def rejected_since(since: datetime) -> list[tuple[datetime, str, int]]:
            return list(
                InputRejection.objects.filter(rejected_at__gte=since)
                .annotate(hour=TruncHour("rejected_at"))
                .values_list("hour", "kind")
                .annotate(count=Count("id"))
                .order_by()
            )

        rejections.register(rejections.RejectionSource("images", rejected_since, kinds=tuple(Rejection)))
        registry.register(
            registry.RowTarget(
                key="input_rejections",
                label="Records of rejected inputs (the operators' count by kind and hour)",
                model="thumbnails.InputRejection",
                age_field="rejected_at",
                default_days=30,
            )
        )
