from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from accounts.api import MAX_ID, api_view, ids_parse, integer_parse
from thumbnails import services, waiting
from thumbnails.models import Image
from thumbnails.storage import url as storage_url


def accepts_uploads(view: Callable) -> Callable:
    """Mark a view that takes uploads: `manage.py kiln check` finds the upload URLs by this mark and checks
    that nginx lets KILN_UPLOAD_MAX_MB through on each (blueprint/checks/nginx.py)."""
    view.accepts_uploads = True  # type: ignore[attr-defined]
    return view


def image_status(image: Image, request: HttpRequest, wait: waiting.Wait | None = None) -> dict:
    """`waiting` says why a pending image has no thumbnail yet (thumbnails/waiting.py)."""
    renditions = {
        r.name: {
            "url": request.build_absolute_uri(storage_url(r.file)),
            "width": r.width,
            "height": r.height,
            "bytes": r.byte_size,
        }
        for r in image.renditions.all()
    }
    return {
        "id": image.pk,
        "name": image.original_name,
        "status": image.status,
        "error": image.error or None,
        "retry_may_help": image.retry_may_help,
        "waiting": {"reason": wait.reason, "text": wait.text} if wait else None,
        "width": image.width,
        "height": image.height,
        "format": image.format or None,
        "animated": image.animated,
        "exif": image.exif,
        "renditions": renditions if image.status == Image.Status.READY else {},
    }


@api_view("POST")
def image_upload_api(request: HttpRequest) -> JsonResponse:
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"error": "send the image as a multipart field named 'file'"}, status=400)
    owners = {field: request.POST[field] for field in services.IMAGE_OWNERS if request.POST.get(field)}
    try:
        image = services.image_create(
            upload=upload, original_name=upload.name, uploaded_by=request.user, owners=owners
        )
    except services.UploadRejected as exc:
        response = JsonResponse({"error": exc.reason}, status=exc.status)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    status_url = request.build_absolute_uri(reverse("thumbnails:image-detail", args=[image.pk]))
    return JsonResponse({"id": image.pk, "status": image.status, "status_url": status_url}, status=202)


@api_view("GET", "HEAD")
def image_detail_api(request: HttpRequest, pk: int) -> JsonResponse:
    # An image the caller may not see answers exactly like one that does not exist.
    image = services.images_visible(request.user).prefetch_related("renditions").filter(pk=pk).first()
    if image is None:
        return JsonResponse({"error": f"no image {pk}"}, status=404)
    return JsonResponse(statuses([image], request)[0])


PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


@api_view("GET", "HEAD")
def image_list_api(request: HttpRequest) -> JsonResponse:
    """`?ids=1,2,3`: the statuses of those images (what the report page polls). Otherwise the images the
    caller sees, oldest first, a page at a time (`limit`, 50; `after`, the last id of the page before;
    `next` is the following page's URL), narrowed by the filters apps offer (`report=<id>`)."""
    visible = services.images_visible(request.user).prefetch_related("renditions")
    if "ids" in request.GET:
        try:
            ids = ids_parse(request.GET["ids"])
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse({"images": statuses(list(visible.filter(pk__in=ids)), request)})
    try:
        limit = _bounded(request.GET.get("limit", str(PAGE_SIZE)), "limit", 1, MAX_PAGE_SIZE)
        after = _bounded(request.GET.get("after", "0"), "after", 0, MAX_ID)
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    for field, condition in services.IMAGE_FILTERS.items():
        if field in request.GET:
            try:
                visible = visible.filter(condition(request.user, request.GET[field]))
            except LookupError as exc:
                return JsonResponse({"error": str(exc)}, status=404)
    page = list(visible.filter(pk__gt=after).order_by("pk")[: limit + 1])
    following = None
    if len(page) > limit:
        page = page[:limit]
        query = request.GET.copy()
        query["after"] = str(page[-1].pk)
        following = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return JsonResponse({"images": statuses(page, request), "next": following})


def statuses(images: list[Image], request: HttpRequest) -> list[dict]:
    waits = waiting.images_wait(images)
    return [image_status(image, request, waits.get(image.pk)) for image in images]


def _bounded(text: str, name: str, lowest: int, highest: int) -> int:
    value = integer_parse(text, lowest=lowest, highest=highest)
    if value is None:
        raise ValueError(f"{name} must be an integer from {lowest} to {highest}")
    return value


@accepts_uploads
@csrf_exempt  # api_view enforces CSRF itself, for session callers only
def images_api(request: HttpRequest) -> JsonResponse:
    """/api/images/: POST uploads one image; GET lists images, or the statuses of `?ids=`."""
    return (image_upload_api if request.method == "POST" else image_list_api)(request)
