"""Reports, people and images for the reports tests: real uploads through thumbnails' services."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from reports.models import Report, ReportImage
from tests.thumbnails.images import jpeg_bytes
from thumbnails import services
from thumbnails.models import Image


def person(username: str, *, staff: bool = False, groups: tuple[Group, ...] = ()):
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only", is_staff=staff)
    user.groups.set(groups)
    return user


def upload(
    report: Report,
    *,
    data: bytes | None = None,
    name: str = "photo.jpg",
    uploaded_by=None,
    process: bool = True,
) -> Image:
    """An image uploaded into `report` (nothing is sent to a broker), and processed unless `process` is False."""
    image = services.image_create(
        upload=ContentFile(data if data is not None else jpeg_bytes(), name=name),
        original_name=name,
        uploaded_by=uploaded_by,
        owners={"report": str(report.pk)},
        dispatch=False,
    )
    if process:
        services.rendition_generate(image_id=image.pk)
    return Image.objects.get(pk=image.pk)


def also_in(report: Report, image: Image) -> None:
    ReportImage.objects.create(report=report, image=image)
