"""An image's facts in words, for its page: what the camera recorded (imaging.exif_facts keeps them in
Image.exif) and what the file is."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from config.formatting import bytes_words, moment_words
from thumbnails.models import Image

Fact = tuple[str, str]  # (label, value), both in words


def photo_facts(image: Image) -> list[Fact]:
    """What the camera recorded (thumbnails.imaging.exif_facts), in words; unknown facts are left out."""
    exif = image.exif if isinstance(image.exif, dict) else {}
    rows = [
        ("Camera", camera_words(exif.get("make"), exif.get("model"))),
        ("Lens", text_or_none(exif.get("lens"))),
        ("Exposure", f"{exposure} s" if (exposure := text_or_none(exif.get("exposure"))) else None),
        ("Aperture", f"f/{aperture:g}" if (aperture := number_or_none(exif.get("aperture"))) else None),
        ("ISO", f"ISO {iso:g}" if (iso := number_or_none(exif.get("iso"))) else None),
        ("Focal length", f"{focal:g} mm" if (focal := number_or_none(exif.get("focal_length"))) else None),
        ("Taken", taken_at_words(exif.get("taken_at"))),
        # Whether the camera recorded where it was, never where: the facts hold only this flag.
        ("GPS position", "recorded" if exif.get("gps") is True else "none"),
    ]
    return [(label, value) for label, value in rows if value is not None]


def file_facts(image: Image) -> list[Fact]:
    # Upright sizes come from the worker; before it, the header's may still be on their side.
    known = image.status == Image.Status.READY and image.width and image.height
    animated = ", animated: the first frame is shown" if image.animated else ""
    rows = [
        ("Original name", image.original_name),
        ("Dimensions", f"{image.width:,} × {image.height:,}" if known else None),
        ("File size", bytes_words(image.byte_size)),
        ("Format", image.format + animated if image.format else None),
        ("Uploaded by", image.uploaded_by.get_username() if image.uploaded_by else None),
        ("Uploaded", moment_words(timezone.localtime(image.created_at))),
    ]
    return [(label, value) for label, value in rows if value is not None]


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def number_or_none(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def camera_words(make: object, model: object) -> str | None:
    """ "Canon" and "Canon EOS R5" make "Canon EOS R5", "SONY" and "ILCE-7M3" make "SONY ILCE-7M3"."""
    make, model = text_or_none(make), text_or_none(model)
    if make and model and model.split()[0].casefold() == make.split()[0].casefold():
        return model
    return " ".join(part for part in (make, model) if part) or None


def taken_at_words(value: object) -> str | None:
    # The camera's own clock, shown as it was set: with its UTC offset when the camera recorded one, never
    # converted (a holiday photo was taken at 14:00 there, not at whatever hour it was here).
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    offset = moment.strftime("%z")
    return moment_words(moment) + (f" (UTC{offset[:3]}:{offset[3:5]})" if offset else "")
