from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from reports import services
from reports.models import Report
from thumbnails import services as thumbnails
from thumbnails.views import accepts_uploads


@login_required
def report_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            messages.error(request, "Give the report a name.")
            return redirect("reports:list")
        try:
            report = Report.objects.create(name=name[:200], created_by=request.user)
        except IntegrityError:
            messages.error(request, f"A report named {name!r} exists already.")
            return redirect("reports:list")
        return redirect(report)
    return render(request, "reports/report_list.html", {"reports": Report.objects.all()[:200]})


@login_required
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    report = get_object_or_404(Report, pk=pk)
    images = services.report_render(report=report, user=request.user)
    return render(request, "reports/report_detail.html", {"report": report, "images": images})


@accepts_uploads
@login_required
@require_POST
def report_upload(request: HttpRequest, pk: int) -> HttpResponse:
    report = get_object_or_404(Report, pk=pk)
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, "Choose one or more images to upload.")
    created = []
    for upload in files:
        try:
            image = thumbnails.image_create(
                upload=upload,
                original_name=upload.name,
                uploaded_by=request.user,
                owners={"report": str(report.pk)},
                dispatch=False,
            )
        except thumbnails.UploadRejected as exc:
            messages.error(request, f"{upload.name}: {exc.reason}")
        else:
            created.append(image.pk)
    if created:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=created), robust=True)
    return redirect(report)
