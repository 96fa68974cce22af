from django.apps import AppConfig
from django.db.models import Q


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        from purge import registry
        from reports.selectors import images_in_report, images_visible_through_reports
        from reports.services import report_attach_image
        from thumbnails.services import image_filter_register, image_owner_register, image_visibility_register

        # Uploads (API `report` field, `thumbnails ingest --report`) can put an image into a report, and
        # whoever sees a report sees its images.
        image_owner_register("report", report_attach_image)
        image_visibility_register(images_visible_through_reports)
        image_filter_register("report", images_in_report)

        registry.register(
            registry.RowTarget(
                key="report_history",
                label="Report history records",
                model="reports.ReportHistoryRecord",
                age_field="rendered_at",
                default_days=90,
            )
        )
        registry.register(
            registry.RowTarget(
                key="print_tasks",
                label="Completed and failed print tasks",
                model="reports.PrintTask",
                age_field="completed_at",
                default_days=30,
                only=Q(status__in=["completed", "failed"]),
            )
        )
