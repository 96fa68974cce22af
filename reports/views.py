from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.api import integer_parse
from reports import selectors, services
from reports.models import Report
from reports.selectors import reports_visible
from thumbnails import services as thumbnails
from thumbnails.storage import url as thumbnail_url
from thumbnails.views import accepts_uploads

REPORTS_PER_PAGE = 25


@login_required
def report_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name:
            messages.error(request, "Give the report a name.")
            return redirect("reports:list")
        if not name.isprintable():
            # PostgreSQL refuses a NUL outright; no control character belongs in a name.
            messages.error(request, "A report name cannot contain control characters.")
            return redirect("reports:list")
        try:
            with transaction.atomic():
                report = Report.objects.create(name=name[:200], owner=request.user)
        except IntegrityError:
            messages.error(request, f"You have a report named {name!r} already.")
            return redirect("reports:list")
        return redirect(report)
    page = Paginator(selectors.reports_listed(request.user), REPORTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    for report in page:
        report.counts = status_counts_of(ready=report.ready, failed=report.failed, pending=report.pending)
        report.cover_url = thumbnail_url(report.cover) if report.cover else None
    return render(request, "reports/report_list.html", {"page": page})


@login_required
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    # Another user's report is "not found", never "forbidden": its existence is not theirs to learn.
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    images = services.report_render(report=report, user=request.user)
    context = {
        "report": report,
        "images": images,
        "counts": status_counts(images),
        "shared_with": list(report.shared_with.order_by("name")),
        "can_share": report_can_share(report, request.user),
        "can_retry": request.user.has_perm(RETRY_PERMISSION),
        "groups": sharing_choices(report, request.user),
    }
    return render(request, "reports/report_detail.html", context)


def status_counts(images) -> str:
    """The report's images by status: "8 ready · 3 failed · 2 waiting", or "no images yet"."""
    statuses = [image.status for image in images]
    return status_counts_of(
        ready=statuses.count("ready"), failed=statuses.count("failed"), pending=statuses.count("pending")
    )


def status_counts_of(*, ready: int, failed: int, pending: int) -> str:
    """The parts that are not zero, with thousands separators."""
    parts = [(ready, "ready"), (failed, "failed"), (pending, "waiting")]
    return " · ".join(f"{count:,} {word}" for count, word in parts if count) or "no images yet"


def report_can_share(report: Report, user) -> bool:
    return user.is_staff or (report.owner_id is not None and report.owner_id == user.pk)


def sharing_choices(report: Report, user):
    """The groups the sharing form offers: the user's own (staff: every group) and those the report is
    shared with already (an owner can always stop sharing, even with a group they left)."""
    if user.is_staff:
        return Group.objects.order_by("name")
    return Group.objects.filter(
        Q(pk__in=user.groups.values("pk")) | Q(pk__in=report.shared_with.values("pk"))
    ).order_by("name")


RETRY_PERMISSION = "thumbnails.change_image"  # the admin's "Regenerate" needs the same


@login_required
@require_POST
def report_image_retry(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """Staff send a failed image of the report to be processed again, from its tile."""
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    image = get_object_or_404(report.images, pk=image_pk)
    if not request.user.has_perm(RETRY_PERMISSION):
        raise PermissionDenied
    thumbnails.images_regenerate(image_ids=[image.pk])
    messages.success(request, f"{image.original_name} is being processed again.")
    return redirect(report)


@login_required
@require_POST
def report_sharing(request: HttpRequest, pk: int) -> HttpResponse:
    """The owner (or staff) chooses the groups whose members see the report and upload to it."""
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    if not report_can_share(report, request.user):
        raise PermissionDenied
    chosen = [pk for value in request.POST.getlist("groups") if (pk := integer_parse(value)) is not None]
    report.shared_with.set(sharing_choices(report, request.user).filter(pk__in=chosen))
    names = ", ".join(group.name for group in report.shared_with.order_by("name")) or "nobody"
    messages.success(request, f"Shared with {names}.")
    return redirect(report)


@accepts_uploads
@login_required
@require_POST
def report_upload(request: HttpRequest, pk: int) -> HttpResponse:
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, "Choose one or more images to upload.")
    created = []
    for position, upload in enumerate(files):
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
            if exc.retry_after is not None:
                left = len(files) - position - 1
                if left:
                    messages.error(request, f"{left} more file(s) not uploaded: the same limit applies.")
                break
        else:
            created.append(image.pk)
    if created:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=created), robust=True)
    return redirect(report)
