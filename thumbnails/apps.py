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
