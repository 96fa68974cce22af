from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps, TiffImagePlugin

from tests.thumbnails import corpus
from thumbnails.imaging import (
    DEFAULT_SPECS,
    PIPELINE_VERSION,
    PREVIEW,
    THUMB,
    ImageRejected,
    PipelineResult,
    Rendition,
    RenditionSpec,
    decode,
    fitted_size,
    open_image,
    render_image,
    spec_key,
)

# Generous: a refusal costs milliseconds; a decoded bomb would cost seconds and hundreds of megabytes.
QUICKLY = 1.0


def render(data: bytes, **options: Any) -> PipelineResult:
    return render_image(io.BytesIO(data), **options)


def reopen(rendition: Rendition) -> Image.Image:
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def red_corner(image: Image.Image) -> str:
    """Which quadrant of `image` is red: "top-left", "top-right", "bottom-left" or "bottom-right"."""
    width, height = image.size
    centres = {
        "top-left": (width // 4, height // 4),
        "top-right": (3 * width // 4, height // 4),
        "bottom-left": (width // 4, 3 * height // 4),
        "bottom-right": (3 * width // 4, 3 * height // 4),
    }
    red = [name for name, xy in centres.items() if near(image.convert("RGB").getpixel(xy), corpus.RED)]
    assert len(red) == 1, f"expected exactly one red quadrant, found {red}"
    return red[0]


# -- orientation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_corpus_stores_each_orientation_so_pillows_reference_shows_it_upright(orientation: int) -> None:
    stored = Image.open(io.BytesIO(corpus.jpeg_with_orientation(orientation)))
    upright = ImageOps.exif_transpose(stored)
    assert upright.size == (600, 400)
    assert red_corner(upright) == "top-left"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_produces_an_upright_result(orientation: int) -> None:
    result = render(corpus.jpeg_with_orientation(orientation))

    assert (result.facts.width, result.facts.height) == (600, 400)
    assert result.facts.exif["orientation"] == orientation
    for name, size in {"preview": (600, 400), "thumb": (400, 267)}.items():
        rendition = result.renditions[name]
        image = reopen(rendition)
        assert image.size == (rendition.width, rendition.height) == size
        assert red_corner(image) == "top-left", name


def test_a_large_rotated_jpeg_is_drafted_in_source_orientation_and_still_comes_out_upright() -> None:
    data = corpus.jpeg_with_orientation(6, size=(1600, 3200))  # stored 3200x1600, shown 1600x3200

    with open_image(io.BytesIO(data)) as image:
        decoded = decode(image, THUMB.max_size)
        assert decoded.size == (400, 200)  # 1/8 scale, exactly the fitted size in stored orientation
    result = render(data, specs=(THUMB,))

    thumb = reopen(result.renditions["thumb"])
    assert thumb.size == (200, 400)
    assert red_corner(thumb) == "top-left"


# -- sizes ------------------------------------------------------------------------------------------------------


def test_the_preview_of_a_big_source_has_a_longest_side_of_2048() -> None:
    result = render(corpus.jpeg(corpus.photo((3000, 1500))))

    assert (result.renditions["preview"].width, result.renditions["preview"].height) == (2048, 1024)
    assert (result.renditions["thumb"].width, result.renditions["thumb"].height) == (400, 200)


def test_a_small_source_is_never_upscaled() -> None:
    result = render(corpus.jpeg(corpus.photo((300, 200))))

    for rendition in result.renditions.values():
        assert (rendition.width, rendition.height) == (300, 200)
        assert reopen(rendition).size == (300, 200)


@pytest.mark.parametrize(("size", "thumb"), [((1000, 250), (400, 100)), ((250, 1000), (100, 400))])
def test_the_thumb_fits_in_400_by_400_and_keeps_the_aspect_ratio(
    size: tuple[int, int], thumb: tuple[int, int]
) -> None:
    result = render(corpus.jpeg(corpus.photo(size)))

    assert reopen(result.renditions["thumb"]).size == thumb


def test_fitted_size_keeps_at_least_one_pixel_of_a_sliver() -> None:
    assert fitted_size((10_000, 3), 400) == (400, 1)


def test_decode_drafts_a_large_jpeg_below_full_size_but_not_below_the_preview() -> None:
    with open_image(io.BytesIO(corpus.large_jpeg())) as image:
        decoded = decode(image, PREVIEW.max_size)

    target = fitted_size((6000, 4000), PREVIEW.max_size)
    assert decoded.size == (3000, 2000)  # DCT-scaled to 1/2 while decoding
    assert decoded.width >= target[0]
    assert decoded.height >= target[1]


def test_decode_never_drafts_a_small_jpeg() -> None:
    with open_image(io.BytesIO(corpus.jpeg(corpus.photo((600, 400))))) as image:
        assert decode(image, THUMB.max_size).size == (600, 400)


# -- colour -----------------------------------------------------------------------------------------------------


def test_a_cmyk_jpeg_becomes_rgb_with_roughly_the_right_colours() -> None:
    result = render(corpus.cmyk_jpeg())

    thumb = reopen(result.renditions["thumb"])
    assert thumb.mode == "RGB"
    assert near(thumb.getpixel((8, 16)), (255, 0, 0))
    assert near(thumb.getpixel((56, 16)), (0, 255, 255))


def test_a_16_bit_png_becomes_8_bit_with_its_gradient_preserved() -> None:
    result = render(corpus.png16())

    thumb = reopen(result.renditions["thumb"])
    assert thumb.mode == "L"
    row = [thumb.getpixel((x, 16)) for x in range(0, 256, 32)]
    assert row == sorted(row), f"gradient should rise left to right, got {row}"
    assert row[0] < 20
    assert 110 < thumb.getpixel((128, 16)) < 146  # mid-grey, not clipped to white


def test_a_palette_png_with_transparency_keeps_its_alpha_in_a_png() -> None:
    result = render(corpus.palette_png_with_transparency())

    thumb = result.renditions["thumb"]
    assert (thumb.format, thumb.extension) == ("PNG", "png")
    image = reopen(thumb)
    assert image.mode == "RGBA"
    assert image.getpixel((8, 16))[3] == 0
    assert near(image.getpixel((56, 16)), (*corpus.RED, 255), tolerance=0)


def test_an_image_with_partial_alpha_is_encoded_as_png() -> None:
    result = render(corpus.rgba_png(alpha=128))

    assert {r.format for r in result.renditions.values()} == {"PNG"}
    assert reopen(result.renditions["thumb"]).getpixel((10, 10))[3] == 128


def test_an_image_whose_alpha_is_fully_opaque_is_encoded_as_jpeg() -> None:
    result = render(corpus.rgba_png(alpha=255))

    assert {(r.format, r.extension) for r in result.renditions.values()} == {("JPEG", "jpg")}


def test_a_grayscale_jpeg_stays_grayscale() -> None:
    result = render(corpus.grayscale_jpeg())

    assert reopen(result.renditions["thumb"]).mode == "L"
    assert result.renditions["thumb"].format == "JPEG"


def test_a_grayscale_png_with_alpha_stays_grayscale_with_alpha() -> None:
    result = render(corpus.grayscale_png_with_alpha())

    thumb = reopen(result.renditions["thumb"])
    assert thumb.mode == "LA"
    assert thumb.getpixel((5, 5))[1] == 100


def test_an_animated_gif_renders_its_first_frame_and_says_it_is_animated() -> None:
    result = render(corpus.animated_gif())

    assert result.facts.format == "GIF"
    assert result.facts.animated is True
    assert near(reopen(result.renditions["thumb"]).getpixel((10, 10)), corpus.RED)


def test_an_animated_webp_renders_its_first_frame_and_says_it_is_animated() -> None:
    result = render(corpus.animated_webp())

    assert result.facts.format == "WEBP"
    assert result.facts.animated is True
    assert near(reopen(result.renditions["thumb"]).getpixel((10, 10)), corpus.RED)


@pytest.mark.parametrize("build", [corpus.still_gif, corpus.webp, corpus.progressive_jpeg])
def test_a_still_image_is_not_animated(build: Callable[[], bytes]) -> None:
    result = render(build())

    assert result.facts.animated is False
    assert set(result.renditions) == {"preview", "thumb"}


def test_a_progressive_jpeg_renders_like_a_baseline_one() -> None:
    progressive = reopen(render(corpus.progressive_jpeg()).renditions["thumb"])

    assert progressive.size == (400, 267)
    assert progressive.getbbox() is not None


# -- ICC --------------------------------------------------------------------------------------------------------


def test_a_wide_gamut_profile_is_converted_to_srgb_and_not_embedded() -> None:
    result = render(corpus.jpeg_with_icc(corpus.wide_gamut_profile(), colour=(200, 60, 60)))

    thumb = reopen(result.renditions["thumb"])
    red, green, blue = thumb.getpixel((32, 24))
    # Adobe-RGB red is more saturated than sRGB's: in sRGB the red channel has to rise.
    assert red > 215, (red, green, blue)
    assert abs(green - 60) < 15
    assert "icc_profile" not in thumb.info


def test_an_srgb_profile_leaves_colours_alone() -> None:
    result = render(corpus.jpeg_with_icc(corpus.srgb_profile(), colour=(200, 60, 60)))

    assert near(reopen(result.renditions["thumb"]).getpixel((32, 24)), (200, 60, 60), tolerance=4)


def test_a_corrupt_icc_profile_is_ignored_not_fatal() -> None:
    result = render(corpus.jpeg_with_icc(corpus.corrupt_icc_profile(), colour=(200, 60, 60)))

    thumb = reopen(result.renditions["thumb"])
    assert near(thumb.getpixel((32, 24)), (200, 60, 60), tolerance=4)
    assert "icc_profile" not in thumb.info


# -- metadata ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build", [corpus.jpeg_with_every_kind_of_metadata, corpus.png_with_every_kind_of_metadata]
)
def test_outputs_carry_no_exif_icc_xmp_or_comment(build: Callable[[], bytes]) -> None:
    result = render(build())

    assert result.facts.exif["make"] == "Canon"  # the source really had metadata
    for rendition in result.renditions.values():
        image = reopen(rendition)
        leaked = {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "Comment"} & set(image.info)
        assert not leaked, f"{rendition.name} kept {leaked}"
        assert not image.getexif()


# -- EXIF facts -------------------------------------------------------------------------------------------------


def test_camera_facts_are_read_from_exif() -> None:
    result = render(corpus.jpeg_with_exif_and_gps())

    assert result.facts.exif == {
        "make": "Canon",
        "model": "Canon EOS R5",
        "lens": "RF24-70mm F2.8 L IS USM",
        "iso": 400,
        "exposure": "1/250",
        "focal_length": 50.0,
        "taken_at": "2024-05-01T12:34:56",
        "gps": True,
        "orientation": 1,
    }
    json.dumps(result.facts.exif)  # goes into a JSON column as it is


def test_the_time_taken_carries_its_utc_offset_when_the_camera_recorded_one() -> None:
    facts = render(corpus.jpeg_with_exif_and_gps(utc_offset="+02:00")).facts

    assert facts.exif["taken_at"] == "2024-05-01T12:34:56+02:00"


@pytest.mark.parametrize(
    ("f_number", "stored"),
    [
        (TiffImagePlugin.IFDRational(28, 10), 2.8),
        (TiffImagePlugin.IFDRational(5600, 1000), 5.6),
        (TiffImagePlugin.IFDRational(11, 1), 11.0),
    ],
)
def test_the_aperture_is_read_as_the_f_number_the_lens_is_marked_with(
    f_number: TiffImagePlugin.IFDRational, stored: float
) -> None:
    exif = corpus.camera_exif()
    exif.get_ifd(0x8769)[0x829D] = f_number  # FNumber
    assert render(corpus.jpeg(corpus.flat((1, 2, 3)), exif=exif)).facts.exif["aperture"] == stored


def test_an_aperture_with_a_zero_denominator_is_left_out() -> None:
    exif = corpus.camera_exif()
    exif.get_ifd(0x8769)[0x829D] = TiffImagePlugin.IFDRational(28, 0)
    facts = render(corpus.jpeg(corpus.flat((1, 2, 3)), exif=exif)).facts.exif
    assert "aperture" not in facts
    assert facts["iso"] == 400  # the other facts are still read


def test_only_that_a_gps_position_was_recorded_is_kept_never_the_position() -> None:
    without_position = corpus.camera_exif()
    without_position.get_ifd(0x8825).clear()

    with_gps = render(corpus.jpeg_with_exif_and_gps()).facts.exif
    without_gps = render(corpus.jpeg(corpus.flat((120, 140, 160)), exif=without_position)).facts.exif

    assert "gps" not in without_gps
    assert with_gps == without_gps | {"gps": True}  # nothing else of the position comes along


def test_garbage_exif_values_are_skipped_and_the_image_still_renders() -> None:
    result = render(corpus.jpeg_with_garbage_exif())

    assert result.facts.exif == {}
    assert (result.facts.width, result.facts.height) == (64, 48)  # orientation 42 is treated as upright
    assert reopen(result.renditions["thumb"]).size == (64, 48)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (TiffImagePlugin.IFDRational(1, 4000), "1/4000"),
        (TiffImagePlugin.IFDRational(10, 20), "1/2"),
        (TiffImagePlugin.IFDRational(1, 1), "1"),
        (TiffImagePlugin.IFDRational(5, 2), "2.5"),
    ],
)
def test_exposure_is_written_as_a_fraction_below_a_second_and_in_seconds_above(
    seconds: TiffImagePlugin.IFDRational, written: str
) -> None:
    assert render(corpus.jpeg_with_exposure(seconds)).facts.exif["exposure"] == written


def test_an_image_without_exif_has_no_facts() -> None:
    assert render(corpus.jpeg(corpus.flat((1, 2, 3)))).facts.exif == {}


def test_facts_report_upright_dimensions() -> None:
    facts = render(corpus.jpeg_with_orientation(8, size=(300, 100))).facts

    assert (facts.format, facts.width, facts.height) == ("JPEG", 300, 100)


# -- hostile input ----------------------------------------------------------------------------------------------

HOSTILE = {
    "empty file": (corpus.empty, {}, ["not an image", "empty"]),
    "text": (corpus.text_named_jpg, {}, ["not an image", "JPEG, PNG, WebP, GIF"]),
    "PSD": (corpus.psd_bytes, {}, ["unsupported format PSD", "allowed: JPEG, PNG, WebP, GIF"]),
    "EPS": (corpus.eps_bytes, {}, ["unsupported format EPS"]),
    "PDF": (corpus.pdf_bytes, {}, ["unsupported format PDF"]),
    "TIFF": (corpus.tiff_bytes, {}, ["unsupported format TIFF"]),
    "BMP": (corpus.bmp_bytes, {}, ["unsupported format BMP"]),
    "truncated JPEG": (corpus.truncated_jpeg, {}, ["truncated or corrupt"]),
    "truncated PNG": (corpus.truncated_png, {}, ["truncated or corrupt"]),
    "corrupt JPEG header": (corpus.corrupt_jpeg_header, {}, ["truncated or corrupt", "JPEG header"]),
    "decompression bomb": (corpus.decompression_bomb_png, {}, ["8000×8000 (64 MP)", "limit is 50 MP"]),
    "huge header, tiny body": (
        lambda: corpus.png_header_only(20_000, 20_000),
        {},
        ["400 MP", "limit is 50 MP"],
    ),
    "header over Pillow's warning limit": (
        lambda: corpus.png_header_only(12_000, 10_000),
        {},
        ["120 MP", "limit is 50 MP"],
    ),
    "over a per-call pixel limit": (
        lambda: corpus.jpeg(corpus.photo((300, 200))),
        {"max_pixels": 50_000},
        ["300×200 (0.06 MP)", "limit is 0.05 MP"],
    ),
}


@pytest.mark.parametrize("case", HOSTILE.keys())
def test_hostile_input_is_rejected_quickly_with_a_readable_reason(case: str) -> None:
    build, options, words = HOSTILE[case]
    data = build()

    started = time.perf_counter()
    with pytest.raises(ImageRejected) as rejected:
        render(data, **options)
    elapsed = time.perf_counter() - started

    for word in words:
        assert word in rejected.value.reason
    assert str(rejected.value) == rejected.value.reason
    assert elapsed < QUICKLY


@pytest.mark.parametrize(
    ("build", "name"), [(corpus.psd_bytes, "PSD"), (corpus.tiff_bytes, "TIFF"), (corpus.eps_bytes, "EPS")]
)
def test_the_refused_formats_are_real_ones_pillow_could_open(build: Callable[[], bytes], name: str) -> None:
    # Proves the refusals above come from the allow-list, not from unreadable test bytes.
    assert Image.open(io.BytesIO(build())).format == name


def test_a_file_over_max_bytes_is_rejected_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as fp:
        fp.write(corpus.jpeg())
        fp.truncate(30_200_000)  # sparse: costs no disk

    with pytest.raises(ImageRejected) as rejected:
        render_image(path, max_bytes=25_000_000)

    assert rejected.value.reason == "file is 30.2 MB; the limit is 25 MB"


def test_a_text_file_named_jpg_is_judged_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"
    path.write_bytes(corpus.text_named_jpg())

    with pytest.raises(ImageRejected, match="not an image"):
        render_image(path)


def test_a_png_named_jpg_is_accepted_as_the_png_it_is(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(corpus.png(corpus.photo((120, 80))))

    assert render_image(path).facts.format == "PNG"


def test_a_rejection_leaves_pillows_global_limits_and_warning_filters_alone() -> None:
    limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)

    with pytest.raises(ImageRejected):
        render(corpus.png_header_only(12_000, 10_000))

    assert Image.MAX_IMAGE_PIXELS == limit
    assert warnings.filters == filters


# -- sources, keys, hashes, timings -----------------------------------------------------------------------------


def test_a_path_a_stream_and_a_pipe_render_alike(tmp_path: Path) -> None:
    data = corpus.jpeg(corpus.photo((300, 200)))
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            return self.inner.readinto(buffer)

    results = [render_image(path), render(data), render_image(io.BufferedReader(Pipe()))]

    assert len({result.renditions["thumb"].data for result in results}) == 1


def test_spec_key_differs_between_specs_and_names_the_pipeline_version() -> None:
    keys = {spec_key(spec) for spec in (*DEFAULT_SPECS, RenditionSpec("thumb", 400, quality=90))}

    assert len(keys) == 3
    assert spec_key(THUMB) == f"thumb-400-q82-v{PIPELINE_VERSION}"
    assert spec_key(THUMB) == spec_key(RenditionSpec("thumb", 400, quality=82))


def test_timings_cover_every_step() -> None:
    result = render(corpus.jpeg())

    assert set(result.timings) == {
        "open",
        "decode",
        "exif",
        "color",
        "orient",
        "resize:preview",
        "encode:preview",
        "resize:thumb",
        "encode:thumb",
    }
    assert all(seconds >= 0 for seconds in result.timings.values())


def test_custom_specs_are_rendered_under_their_names() -> None:
    result = render(corpus.jpeg(corpus.photo((600, 400))), specs=(RenditionSpec("tiny", 60, quality=70),))

    assert set(result.renditions) == {"tiny"}
    assert reopen(result.renditions["tiny"]).size == (60, 40)


def test_specs_must_be_given_and_have_unique_names() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render(corpus.jpeg(), specs=())
    with pytest.raises(ValueError, match="unique"):
        render(corpus.jpeg(), specs=(THUMB, RenditionSpec("thumb", 200)))


def test_an_operating_system_read_error_is_left_for_the_caller_to_retry() -> None:
    import errno

    class FailingDisk(io.BytesIO):
        def read(self, *args):
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error") as caught:
        render_image(FailingDisk(b"\xff\xd8\xff\xe0"))
    assert not isinstance(caught.value, ImageRejected)
