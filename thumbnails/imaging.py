"""Kiln's image pipeline: one decode per upload, every rendition from it. Pure Python + Pillow; no Django, no broker.

`render_image(source)` runs these steps, each timed into `PipelineResult.timings`:

  open     identify by content with only the JPEG/PNG/WebP/GIF plugins; refuse on byte size and on header
           pixels before any pixel is decoded
  decode   once; a JPEG is DCT-scaled while decoding (`draft`) to the smallest size still >= the largest rendition
  exif     camera facts and orientation, read from the source; a garbage value skips that fact, never the image
  color    modes normalised to L / LA / RGB / RGBA, an embedded ICC profile converted to sRGB
  resize   the largest rendition from the decode, each smaller one from the previous rendition: cheaper, and
           the same quality because the previous one is still several times the smaller target
  orient   EXIF orientation applied to the shrunk largest rendition, so the smaller ones come out upright too
  encode   opaque -> JPEG, alpha -> PNG, explicit parameters only: no EXIF, ICC, XMP or comment survives

Decisions worth knowing:
- Animated GIF, WebP and APNG: the first frame only; `ImageFacts.animated` says the source had more.
- Grayscale stays grayscale (a grayscale JPEG, or a PNG when it has real alpha): three equal channels add
  nothing. A grayscale ICC profile is ignored; only RGB and CMYK profiles are converted.
- Alpha that is fully opaque is dropped, so such an image is encoded as JPEG.
- Outputs are sRGB by definition and carry no profile; a broken or mismatched profile is ignored, not fatal.
- `ImageRejected` is permanent (the bytes can never become an image); anything else that escapes, such as a
  missing file, is the caller's to retry.
- `max_pixels` is checked per call and Pillow's process-wide `Image.MAX_IMAGE_PIXELS` is left alone; Pillow's own
  limit still applies on top, so a `max_pixels` above it cannot let more through.
- The bomb check turns Pillow's warning into an error with `warnings.catch_warnings`, which is not thread-safe:
  run one image at a time per process (Celery prefork does).
"""

from __future__ import annotations

import io
import math
import numbers
import os
import re
import struct
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import BinaryIO

from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

# Bump whenever a change alters rendition pixels or bytes: spec_key() changes with it, marking old renditions stale.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class RenditionSpec:
    name: str
    max_size: int
    quality: int = 85


THUMB = RenditionSpec("thumb", 400, quality=82)
PREVIEW = RenditionSpec("preview", 2048, quality=85)
DEFAULT_SPECS = (PREVIEW, THUMB)
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
DEFAULT_MAX_PIXELS = 50_000_000


class Rejection(StrEnum):
    """What was wrong with a rejected input, as a short code operators count failed images by
    (Image.error_kind): once shipped a code never changes, or its history splits in two."""

    FORMAT = "format"  # a known format outside the allow-list: PSD, EPS, PDF, TIFF, HEIC...
    NOT_IMAGE = "not_image"  # no image at all: a text file, an empty file
    TRUNCATED = "truncated"  # the data ends early: an upload or a copy cut short
    CORRUPT = "corrupt"  # damaged bytes where the decoder reads them
    TOO_MANY_PIXELS = "too_many_pixels"  # over the pixel limit: a decompression bomb, a huge scan
    TOO_LARGE = "too_large"  # over the byte limit
    # Never raised here: the service sets these when an input costs a worker more than it may spend.
    TOO_MUCH_MEMORY = "too_much_memory"  # its decode passed the worker's memory cap
    CRASHED_WORKER = "crashed_worker"  # every attempt on it ended with its pool process dead or timed out
    TOO_SLOW = "too_slow"  # its processing passed the queue's time limit


# Rejections that only another file can undo: retrying the same bytes fails the same way. The others
# (a limit, the memory cap, the time limit, a crash) may pass once an operator changed something.
CONTENT_REJECTIONS = frozenset(
    {Rejection.FORMAT, Rejection.NOT_IMAGE, Rejection.TRUNCATED, Rejection.CORRUPT}
)


class ImageRejected(Exception):
    """Permanent failure: the file can never become an image. `reason` is plain words for a person, `kind`
    the code operators count it by."""

    def __init__(self, reason: str, *, kind: Rejection) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Rendition:
    name: str
    width: int
    height: int
    format: str  # "JPEG" when opaque, "PNG" when the result keeps alpha
    extension: str  # "jpg" / "png"
    data: bytes


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int  # upright, after EXIF orientation
    height: int
    exif: dict[str, object]
    animated: bool


@dataclass(frozen=True)
class PipelineResult:
    facts: ImageFacts
    renditions: dict[str, Rendition]
    timings: dict[str, float]


# Pillow's thumbnail() defaults. A shrink of more than 2x starts with a cheap box reduce, then BICUBIC (which
# Pillow widens with the scale, so it antialiases) resamples the rest. LANCZOS costs a third more on the
# preview, the dearest step after the decode, and buys about 1 dB: bench/thumbnails.py measures thumbnails at
# about 43 dB PSNR against a full-decode LANCZOS resize (LANCZOS here: about 45 dB).
RESAMPLE = Image.Resampling.BICUBIC
REDUCING_GAP = 2.0
# Level 3 is about 3x faster than the default 6 on a 2048 px RGBA preview, for a file about 8% larger.
PNG_COMPRESS_LEVEL = 3
# Hostile EXIF can carry 64 KB "makes"; facts end up in a JSON column and on screen.
MAX_EXIF_TEXT = 200

_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
_ALLOWED_WORDS = "JPEG, PNG, WebP, GIF"
# Pillow calls a JPEG that carries extra pictures (camera depth maps, previews) MPO. Its first picture is an
# ordinary JPEG, and its extra "frames" are not animation.
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})

# Signatures only word the refusal of files Pillow was not allowed to identify; the allow-list is Pillow's own.
_ALLOWED_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"))
_OTHER_SIGNATURES = (
    (b"8BPS", "PSD"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}

# EXIF orientation -> the operation that makes the stored pixels upright (EXIF 2.32, tag 0x0112).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_LENS_MODEL, _ISO, _EXPOSURE_TIME, _FOCAL_LENGTH = 0xA434, 0x8827, 0x829A, 0x920A
_F_NUMBER = 0x829D
_DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_GPS_LATITUDE, _GPS_LONGITUDE = 0x0002, 0x0004

_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


# -- public entry points ----------------------------------------------------------------------------------------


def render_image(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    specs: Sequence[RenditionSpec] = DEFAULT_SPECS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> PipelineResult:
    """Decode `source` once and encode every rendition in `specs`; raise ImageRejected for hostile input."""
    ordered = _largest_first(specs)
    timer = _StepTimer()
    with ExitStack() as opened:
        with timer.step("open"):
            image = opened.enter_context(open_image(source, max_pixels=max_pixels, max_bytes=max_bytes))
        source_format, source_size = _format_name(image), image.size
        with timer.step("decode"):
            animated = is_animated(image)
            decoded = decode(image, ordered[0].max_size)
        with timer.step("exif"):
            exif = exif_facts(decoded)
        with timer.step("color"):
            pixels = to_srgb(decoded)
            # From here on pixels are sRGB and carry nothing of the source: encoders fall back to `info` for
            # some metadata (PNG iCCP, JPEG comment), and resize/transpose copy it along.
            pixels.info = {}
    orientation = _orientation(exif.get("orientation")) or 1
    renditions = _render_all(pixels, ordered, orientation, timer)
    width, height = _upright_size(source_size, orientation)
    facts = ImageFacts(format=source_format, width=width, height=height, exif=exif, animated=animated)
    return PipelineResult(facts=facts, renditions=renditions, timings=timer.timings)


def spec_key(spec: RenditionSpec) -> str:
    """Short, stable name of what a rendition was made with, e.g. "thumb-400-q82-v1"."""
    return f"{spec.name}-{spec.max_size}-q{spec.quality}-v{PIPELINE_VERSION}"


def fitted_size(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """`size` shrunk to fit inside max_size x max_size with its aspect kept; never enlarged."""
    width, height = size
    scale = max_size / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


# -- open: refuse before decoding -------------------------------------------------------------------------------


@contextmanager
def open_image(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int | None = None,
) -> Iterator[ImageFile.ImageFile]:
    """Identify `source` by content and check its limits; nothing is decoded yet."""
    with _binary(source) as fp:
        size = _byte_size(fp)
        if max_bytes is not None and size > max_bytes:
            raise ImageRejected(
                f"file is {_millions(size)} MB; the limit is {_millions(max_bytes)} MB",
                kind=Rejection.TOO_LARGE,
            )
        if size == 0:
            raise ImageRejected("not an image: the file is empty", kind=Rejection.NOT_IMAGE)
        image = _identify(fp, max_pixels)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected(
                # A real multiplication sign: this sentence is for people.
                f"image is {width}×{height} ({_millions(width * height)} MP); "
                f"the limit is {_millions(max_pixels)} MP",
                kind=Rejection.TOO_MANY_PIXELS,
            )
        yield image


def probe_size(fp: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header alone, for the upload's checks; None when it cannot be read (the
    worker then fails the image with its reason). Never decodes, never raises, leaves `fp` at 0."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp, formats=_PILLOW_FORMATS) as image:
                return image.size
    except Exception:
        return None
    finally:
        fp.seek(0)


@contextmanager
def _binary(source: str | os.PathLike[str] | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    elif source.seekable():
        yield source
    else:
        # Pillow needs to seek; uploads are seekable, so buffering a pipe is the rare case.
        yield io.BytesIO(source.read())


def _byte_size(fp: BinaryIO) -> int:
    size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    return size


def _identify(fp: BinaryIO, max_pixels: int) -> ImageFile.ImageFile:
    head = fp.read(16)
    fp.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Only the allowed plugins see the bytes: an EPS never reaches Ghostscript, a PSD no parser.
            image = Image.open(fp, formats=_PILLOW_FORMATS)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageRejected(_bomb_reason(error, max_pixels), kind=Rejection.TOO_MANY_PIXELS) from error
    except UnidentifiedImageError as error:
        raise _unidentified(head) from error
    except _CORRUPT as error:
        _raise_if_io_error(error)
        raise _damaged(error) from error
    # Defence in depth, should one of the allowed plugins ever report another format name.
    if _format_name(image) not in ALLOWED_FORMATS:
        raise ImageRejected(
            f"unsupported format {image.format}; allowed: {_ALLOWED_WORDS}", kind=Rejection.FORMAT
        )
    return image


def _bomb_reason(error: Exception, max_pixels: int) -> str:
    # Pillow's own safety net fired while reading the header, before our check could see the size; its
    # message carries the pixel count. Its limit can be below max_pixels, so name the one that applied.
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    found = re.search(r"\((\d+) pixels\)", str(error))
    if found is None:
        return f"image is larger than {_millions(limit)} MP, the limit"
    return f"image is {_millions(int(found.group(1)))} MP; the limit is {_millions(limit)} MP"


def _unidentified(head: bytes) -> ImageRejected:
    for signature, name in _ALLOWED_SIGNATURES:
        if head.startswith(signature):
            return ImageRejected(
                f"file is truncated or corrupt: its {name} header cannot be read", kind=Rejection.CORRUPT
            )
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageRejected(
            "file is truncated or corrupt: its WebP header cannot be read", kind=Rejection.CORRUPT
        )
    name = _other_format(head)
    if name is not None:
        return ImageRejected(f"unsupported format {name}; allowed: {_ALLOWED_WORDS}", kind=Rejection.FORMAT)
    return ImageRejected(f"not an image in a supported format ({_ALLOWED_WORDS})", kind=Rejection.NOT_IMAGE)


def _damaged(error: BaseException) -> ImageRejected:
    # Pillow has no exception of its own for data that ends early, only the words "image file is
    # truncated" (LOAD_TRUNCATED_IMAGES stays off). Operators tell a cut-short upload, which points at the
    # network or a proxy, from damaged bytes by them.
    kind = Rejection.TRUNCATED if "truncated" in str(error).lower() else Rejection.CORRUPT
    return ImageRejected(f"file is truncated or corrupt: {error}", kind=kind)


def _other_format(head: bytes) -> str | None:
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12])
    return None


def _format_name(image: Image.Image) -> str:
    return "JPEG" if image.format in _JPEG_FORMATS else str(image.format)


# -- decode -----------------------------------------------------------------------------------------------------


def is_animated(image: ImageFile.ImageFile) -> bool:
    if image.format in _JPEG_FORMATS:
        return False
    with _refusing_corrupt():
        # GIF answers by skipping to the second frame's header; nothing is decoded.
        return bool(getattr(image, "is_animated", False))


def decode(image: ImageFile.ImageFile, max_size: int) -> Image.Image:
    """Load the pixels, once. A JPEG is decoded DCT-scaled to 1/2, 1/4 or 1/8 while staying >= the fitted
    target, which skips most of the decode work for large photos. Other formats decode at full size."""
    with _refusing_corrupt():
        if image.format in _JPEG_FORMATS:
            # Draft works on the stored pixels, before orientation, so the target is fitted in source
            # orientation. (Into a square box a rotated image fits the same; a non-square box would need
            # width and height swapped for orientations 5-8.)
            image.draft("RGB", fitted_size(image.size, max_size))
        image.load()
    return image


@contextmanager
def _refusing_corrupt() -> Iterator[None]:
    # ImageFile.LOAD_TRUNCATED_IMAGES stays False, so a short file raises here instead of decoding grey.
    try:
        yield
    except _CORRUPT as error:
        _raise_if_io_error(error)
        raise _damaged(error) from error


def _raise_if_io_error(error: BaseException) -> None:
    """A read that failed in the operating system (EIO, ESTALE on shared storage, a timeout) carries an errno
    and is the storage's trouble, for the caller to retry; Pillow's own decoder errors carry none."""
    if isinstance(error, OSError) and error.errno is not None:
        raise error


# -- colour -----------------------------------------------------------------------------------------------------


def to_srgb(image: Image.Image) -> Image.Image:
    """`image` as L, LA, RGB or RGBA in sRGB."""
    icc_profile = image.info.get("icc_profile")
    image = _normalise_mode(image)
    if icc_profile and image.mode in ("RGB", "RGBA", "CMYK"):
        image = _apply_profile(image, icc_profile)
    if image.mode == "CMYK":
        # Pillow already undid Adobe's inverted CMYK while reading; this is the plain device conversion.
        image = image.convert("RGB")
    return _drop_opaque_alpha(image)


def _normalise_mode(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK") and not _has_colour_key(image):
        return image
    if mode.startswith("I"):
        # 16-bit grayscale PNG. A plain convert("L") clips everything above 255 to white, so scale
        # 0..65535 down to 0..255 first.
        return image.convert("I").point(lambda value: value / 257).convert("L")
    if mode in ("1", "L", "La"):
        return image.convert("LA" if image.has_transparency_data else "L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _has_colour_key(image: Image.Image) -> bool:
    # PNG's tRNS on an L or RGB image: one colour means transparent, so it needs a real alpha channel.
    return image.mode in ("L", "RGB") and "transparency" in image.info


def _apply_profile(image: Image.Image, icc_profile: bytes) -> Image.Image:
    try:
        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source_profile, _srgb_profile(), outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken profile, or one for another colour space, costs colour accuracy, not the upload.
        return image
    return converted if converted is not None else image


@cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    if image.mode not in ("LA", "RGBA"):
        return image
    if image.getchannel("A").getextrema()[0] < 255:
        return image
    return image.convert("L" if image.mode == "LA" else "RGB")


# -- resize, orient, encode -------------------------------------------------------------------------------------


def _render_all(
    pixels: Image.Image, ordered: Sequence[RenditionSpec], orientation: int, timer: _StepTimer
) -> dict[str, Rendition]:
    renditions: dict[str, Rendition] = {}
    previous = pixels
    for index, spec in enumerate(ordered):
        with timer.step(f"resize:{spec.name}"):
            shrunk = shrink(previous, spec.max_size)
        if index == 0:
            with timer.step("orient"):
                shrunk = orient(shrunk, orientation)
        with timer.step(f"encode:{spec.name}"):
            renditions[spec.name] = encode(shrunk, spec)
        previous = shrunk
    return renditions


def shrink(image: Image.Image, max_size: int) -> Image.Image:
    target = fitted_size(image.size, max_size)
    if target == image.size:
        return image
    # Pillow resamples LA/RGBA premultiplied, so transparent pixels' colours do not bleed into the edges.
    return image.resize(target, RESAMPLE, reducing_gap=REDUCING_GAP)


def orient(image: Image.Image, orientation: int) -> Image.Image:
    """Apply EXIF orientation 1-8; anything else is treated as upright."""
    operation = _UPRIGHT.get(orientation)
    return image if operation is None else image.transpose(operation)


def encode(image: Image.Image, spec: RenditionSpec) -> Rendition:
    buffer = io.BytesIO()
    if image.mode in ("LA", "RGBA"):
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        file_format, extension = "PNG", "png"
    else:
        # optimize=True would shave a few percent off the bytes at the cost of a second Huffman pass.
        image.save(buffer, "JPEG", quality=spec.quality, optimize=False, progressive=False)
        file_format, extension = "JPEG", "jpg"
    width, height = image.size
    return Rendition(spec.name, width, height, file_format, extension, buffer.getvalue())


def _largest_first(specs: Sequence[RenditionSpec]) -> list[RenditionSpec]:
    if not specs:
        raise ValueError("render_image needs at least one RenditionSpec")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"rendition names must be unique, got {names}")
    return sorted(specs, key=lambda spec: spec.max_size, reverse=True)


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# -- EXIF facts -------------------------------------------------------------------------------------------------


def exif_facts(image: Image.Image) -> dict[str, object]:
    """JSON-ready camera facts; a fact whose value is missing or garbage is left out."""
    try:
        exif = image.getexif()
        camera = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:
        # Pillow's EXIF parser raises many kinds of errors on hostile offsets; no facts beats no image.
        return {}
    readers: dict[str, Callable[[], object | None]] = {
        "make": lambda: _text(exif.get(_MAKE)),
        "model": lambda: _text(exif.get(_MODEL)),
        "lens": lambda: _text(camera.get(_LENS_MODEL)),
        "iso": lambda: _iso(camera.get(_ISO)),
        "exposure": lambda: _exposure(camera.get(_EXPOSURE_TIME)),
        "aperture": lambda: _aperture(camera.get(_F_NUMBER)),
        "focal_length": lambda: _focal_length(camera.get(_FOCAL_LENGTH)),
        "taken_at": lambda: _taken_at(camera.get(_DATE_TIME_ORIGINAL), camera.get(_OFFSET_TIME_ORIGINAL)),
        # Only whether a position was recorded, never the position: the site must not publish where
        # someone lives. Absent (not False) without one, so the facts of a photo without EXIF stay empty.
        "gps": lambda: True if _GPS_LATITUDE in gps and _GPS_LONGITUDE in gps else None,
        "orientation": lambda: _orientation(exif.get(_ORIENTATION)),
    }
    facts: dict[str, object] = {}
    for key, read in readers.items():
        try:
            value = read()
        except Exception:  # same reason as above: skip the fact, keep the image
            value = None
        if value is not None:
            facts[key] = value
    return facts


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    # NUL anywhere is dropped, not only at the ends: PostgreSQL's jsonb refuses \u0000 outright.
    return value.replace("\x00", "").strip(" \t\r\n")[:MAX_EXIF_TEXT] or None


def _iso(value: object) -> int | None:
    if isinstance(value, tuple | list) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10_000_000:
        return None
    return value


def _exposure(value: object) -> str | None:
    seconds = _positive(value)
    if seconds is None:
        return None
    if seconds >= 1:
        return f"{seconds:g}"
    return f"1/{round(1 / seconds)}"


def _aperture(value: object) -> float | None:
    # One decimal is how lenses are marked (f/2.8, f/5.6, f/11); cameras store 28/10 or 2800/1000 alike.
    f_number = _positive(value)
    return None if f_number is None else round(f_number, 1)


def _focal_length(value: object) -> float | None:
    millimetres = _positive(value)
    return None if millimetres is None else round(millimetres, 2)


def _positive(value: object) -> float | None:
    # Pillow's IFDRational is a numbers.Rational; a zero denominator makes it NaN rather than raising.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def _taken_at(value: object, offset: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    taken_at = datetime.strptime(text, "%Y:%m:%d %H:%M:%S").isoformat()
    offset_text = _text(offset)
    if offset_text is not None and re.fullmatch(r"[+-]\d\d:\d\d", offset_text):
        taken_at += offset_text
    return taken_at


def _orientation(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8 else None


# -- helpers ----------------------------------------------------------------------------------------------------


def _millions(count: int) -> str:
    """Megapixels and (decimal) megabytes for people: 400_000_000 -> "400", 30_200_000 -> "30.2", 60_000 -> "0.06"."""
    value = count / 1_000_000
    return (f"{value:.1f}" if value >= 0.1 else f"{value:.2g}").removesuffix(".0")


class _StepTimer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
