from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.api import integer_parse
from config.formatting import count_of
from reports import selectors, services
from reports.models import Report
from reports.selectors import reports_visible
from thumbnails import services as thumbnails
from thumbnails import waiting
from thumbnails.facts import file_facts, photo_facts
from thumbnails.models import Image
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
    waits = waiting.images_wait(images)
    for image in images:
        image.wait = waits.get(image.pk)
        image.page_url = reverse("reports:image", args=[report.pk, image.pk])
    context = {
        "report": report,
        "images": images,
        "counts": status_counts(images),
        "shared_with": list(report.shared_with.order_by("name")),
        "can_manage": selectors.report_can_manage(report, request.user),
        "can_retry": request.user.has_perm(RETRY_PERMISSION),
        "groups": sharing_choices(report, request.user),
        "upload_max_mb": settings.KILN_UPLOAD_MAX_MB,
        "upload_max_bytes": settings.KILN_UPLOAD_MAX_BYTES,
        # Each tile's links, for the script that draws tiles: the URL of image 0, the script puts the id in.
        "image_url_pattern": reverse("reports:image", args=[report.pk, 0]),
        "retry_url_pattern": reverse("reports:image-retry", args=[report.pk, 0]),
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
    if not selectors.report_can_manage(report, request.user):
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
                    why = "the same limit applies" if exc.status == 429 else "try them again in a minute"
                    messages.error(request, f"{left} more file(s) not uploaded: {why}.")
                break
        else:
            created.append(image.pk)
    if created:
        transaction.on_commit(lambda: thumbnails.images_dispatch(image_ids=created), robust=True)
    return redirect(report)


# -- one image: its page, and deleting it or its whole report ---------------------------------------------------


@login_required
def report_image(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """An image of a report: its preview, its facts in words, the images either side, the way back."""
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    image = get_object_or_404(
        report.images.select_related("uploaded_by").prefetch_related("renditions"), pk=image_pk
    )
    ready = image.status == Image.Status.READY
    context = {
        "report": report,
        "image": image,
        "preview": image.rendition_map.get("preview") if ready else None,
        "place": selectors.image_neighbours(report=report, image_id=image.pk),
        "photo_facts": photo_facts(image) if ready else [],  # read by the worker: none before, none if failed
        "file_facts": file_facts(image),
        "can_delete": selectors.image_can_delete(report=report, image=image, user=request.user),
    }
    return render(request, "reports/image_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def report_image_delete(request: HttpRequest, pk: int, image_pk: int) -> HttpResponse:
    """GET asks, the confirmation's POST deletes. The rows go now, the files with the purge (services)."""
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    image = get_object_or_404(report.images.prefetch_related("renditions"), pk=image_pk)
    if not selectors.image_can_delete(report=report, image=image, user=request.user):
        raise PermissionDenied
    if request.method == "POST":
        if services.image_delete(report=report, image=image):
            messages.success(request, f"Deleted {image.original_name}.")
        else:
            messages.success(request, f"Took {image.original_name} out; another report still holds it.")
        return redirect(report)
    context = {
        "report": report,
        "image": image,
        "thumb": image.rendition_map.get("thumb") if image.status == Image.Status.READY else None,
        "kept_elsewhere": image.reports.exclude(pk=report.pk).exists(),
    }
    return render(request, "reports/image_confirm_delete.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def report_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks, the confirmation's POST deletes the report and the images only it holds."""
    report = get_object_or_404(reports_visible(request.user), pk=pk)
    if not selectors.report_can_manage(report, request.user):
        raise PermissionDenied
    if request.method == "POST":
        name = report.name
        deleted = services.report_delete(report=report)
        images = f" and {count_of(deleted, 'image')}" if deleted else " (it held no images)"
        messages.success(request, f"Deleted the report {name}{images}.")
        return redirect("reports:list")
    images = report.images.count()
    kept = images - selectors.images_only_in(report).count()
    context = {"report": report, "image_count": images, "images": count_of(images, "image"), "kept": kept}
    return render(request, "reports/report_confirm_delete.html", context)
