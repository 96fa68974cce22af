from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from reports.services import report_attach_image
        from thumbnails.services import image_owner_register

        # Uploads (API `report` field, `thumbnails ingest --report`) can put an image into a report.
        image_owner_register("report", report_attach_image)
