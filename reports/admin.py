from __future__ import annotations

from django.contrib import admin

from reports.models import PrintTask, Report, ReportHistoryRecord, ReportImage


class ReportImageInline(admin.TabularInline):
    model = ReportImage
    extra = 0
    raw_id_fields = ("image",)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created_at")
    list_filter = ("shared_with",)
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)
    filter_horizontal = ("shared_with",)
    inlines = [ReportImageInline]


@admin.register(ReportHistoryRecord)
class ReportHistoryRecordAdmin(admin.ModelAdmin):
    list_display = ("report", "rendered_by", "rendered_at")
    list_filter = ("rendered_at",)
    date_hierarchy = "rendered_at"
    raw_id_fields = ("report",)


@admin.register(PrintTask)
class PrintTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "report", "requested_by", "status", "created_at", "completed_at")
    list_filter = ("status",)
    date_hierarchy = "created_at"
    raw_id_fields = ("report",)
