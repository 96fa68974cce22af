"""Test images built in memory with Pillow: no binary fixtures to go stale or hide what they contain.

Every builder returns the encoded file as bytes. Sizes are small so the whole suite stays fast.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageCms, ImageDraw, PngImagePlugin, TiffImagePlugin

RED = (220, 30, 30)
BLUE = (30, 60, 200)

# How to store an upright picture so that EXIF orientation N makes it upright again: the inverse of the operation
# the orientation asks for. Rotations invert each other; flips and transposes are their own inverse.
_STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

# Adobe RGB (1998) primaries, adapted to the D50 ICC connection space: a gamut much wider than sRGB's in green
# and somewhat in red, so a saturated colour tagged with it gets more saturated once converted to sRGB.
_WIDE_GAMUT_COLORANTS = {
    b"rXYZ": (0.60974, 0.31111, 0.01947),
    b"gXYZ": (0.20528, 0.62567, 0.06087),
    b"bXYZ": (0.14919, 0.06322, 0.74457),
}


def encoded(image: Image.Image, file_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, file_format, **params)
    return buffer.getvalue()


# -- content ----------------------------------------------------------------------------------------------------


def photo(size: tuple[int, int] = (600, 400)) -> Image.Image:
    """Photographic-ish RGB: smooth gradients in every channel, grain, and a few hard edges."""
    horizontal = Image.linear_gradient("L").rotate(90).resize(size, Image.Resampling.BICUBIC)
    vertical = Image.linear_gradient("L").resize(size, Image.Resampling.BICUBIC)
    radial = Image.radial_gradient("L").resize(size, Image.Resampling.BICUBIC)
    picture = Image.merge("RGB", (horizontal, radial, vertical))
    grain = Image.effect_noise(size, 30).convert("RGB")
    picture = Image.blend(picture, grain, 0.12)
    draw = ImageDraw.Draw(picture)
    width, height = size
    draw.rectangle((width // 5, height // 4, width // 3, height // 2), fill=(240, 230, 200))
    draw.line((0, height - 1, width - 1, 0), fill=(20, 20, 20), width=max(1, width // 150))
    return picture


def marker(size: tuple[int, int] = (600, 400)) -> Image.Image:
    """Blue with a red top-left quadrant: which corner is red, and which side is longer, tell the orientation."""
    picture = Image.new("RGB", size, BLUE)
    width, height = size
    picture.paste(RED, (0, 0, width // 2, height // 2))
    return picture


def flat(colour: tuple[int, ...], size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, colour)


# -- JPEG -------------------------------------------------------------------------------------------------------


def jpeg(picture: Image.Image | None = None, **params: object) -> bytes:
    return encoded(picture if picture is not None else photo(), "JPEG", quality=90, **params)


def jpeg_with_orientation(orientation: int, size: tuple[int, int] = (600, 400)) -> bytes:
    """`marker(size)` stored transformed so that honouring EXIF orientation shows it upright again."""
    upright = marker(size)
    operation = _STORED_AS.get(orientation)
    stored = upright if operation is None else upright.transpose(operation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg(stored, exif=exif)


def large_jpeg(size: tuple[int, int] = (6000, 4000), orientation: int = 1) -> bytes:
    # A smooth gradient: large, yet quick to encode; draft cares about the size, not the content.
    picture = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            flat(90, size, "L"),
        ],
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(picture, "JPEG", quality=80, exif=exif)


def cmyk_jpeg() -> bytes:
    """Left half red (M+Y ink), right half cyan (C ink); Pillow writes CMYK JPEGs with Adobe's inverted values."""
    picture = flat((0, 255, 255, 0), (64, 32), "CMYK")
    picture.paste((255, 0, 0, 0), (32, 0, 64, 32))
    return encoded(picture, "JPEG", quality=95)


def grayscale_jpeg() -> bytes:
    return jpeg(photo().convert("L"))


def progressive_jpeg() -> bytes:
    return jpeg(progressive=True)


def truncated_jpeg() -> bytes:
    whole = jpeg()
    return whole[: len(whole) // 2]


def corrupt_jpeg_header() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 4


def jpeg_with_icc(profile: bytes, colour: tuple[int, int, int] = (200, 60, 60)) -> bytes:
    return jpeg(flat(colour), icc_profile=profile)


def wide_gamut_profile() -> bytes:
    """lcms' own sRGB profile with Adobe RGB's primaries put in place of sRGB's: a valid wide-gamut RGB profile.

    ImageCms can only create sRGB, LAB and XYZ profiles; patching three colorant tags keeps this honest without
    shipping a binary. The tone curves stay sRGB's, so only saturation differs.
    """
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    tag_count = struct.unpack_from(">I", profile, 128)[0]
    for index in range(tag_count):
        signature, offset, _size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
        if signature in _WIDE_GAMUT_COLORANTS:
            # An XYZType tag: "XYZ " + 4 reserved bytes, then three s15Fixed16 numbers.
            xyz = (round(value * 65536) for value in _WIDE_GAMUT_COLORANTS[signature])
            struct.pack_into(">3i", profile, offset + 8, *xyz)
    profile[84:100] = bytes(16)  # the profile ID is an MD5 of the contents; zero means "not computed"
    return bytes(profile)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def corrupt_icc_profile() -> bytes:
    return b"this is not an ICC profile" * 8


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0112] = 1
    camera = exif.get_ifd(0x8769)
    camera[0xA434] = "RF24-70mm F2.8 L IS USM"
    camera[0x8827] = 400
    camera[0x829A] = TiffImagePlugin.IFDRational(1, 250)
    camera[0x920A] = TiffImagePlugin.IFDRational(50, 1)
    camera[0x9003] = "2024:05:01 12:34:56"
    gps = exif.get_ifd(0x8825)
    gps[0x0001] = "N"
    gps[0x0002] = (52.0, 31.0, 12.5)
    gps[0x0003] = "E"
    gps[0x0004] = (13.0, 24.0, 0.0)
    return exif


def jpeg_with_exif_and_gps(utc_offset: str | None = None) -> bytes:
    exif = camera_exif()
    if utc_offset is not None:
        exif.get_ifd(0x8769)[0x9011] = utc_offset  # OffsetTimeOriginal
    return jpeg(flat((120, 140, 160)), exif=exif)


def jpeg_with_garbage_exif() -> bytes:
    """Every fact present but unusable: blank text, wrong types, a zero denominator, an impossible date and
    orientation. (Pillow writes whatever it is given as the tag's declared type, so "wrong type" means text
    where a number belongs and the other way round.)"""
    exif = Image.Exif()
    exif[0x010F] = "\x00\x00\x00"
    exif[0x0110] = "   "
    exif[0x0112] = 42
    camera = exif.get_ifd(0x8769)
    camera[0xA434] = 7
    camera[0x8827] = "fast"
    camera[0x829A] = TiffImagePlugin.IFDRational(1, 0)
    camera[0x920A] = TiffImagePlugin.IFDRational(-35, 1)
    camera[0x9003] = "yesterday, around noon"
    return jpeg(flat((120, 140, 160)), exif=exif)


def jpeg_with_exposure(seconds: TiffImagePlugin.IFDRational) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = seconds
    return jpeg(flat((120, 140, 160)), exif=exif)


def jpeg_with_every_kind_of_metadata() -> bytes:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return jpeg(photo(), exif=camera_exif(), icc_profile=srgb_profile(), comment=b"shot by someone", xmp=xmp)


# -- PNG, GIF, WebP ---------------------------------------------------------------------------------------------


def png(picture: Image.Image, **params: object) -> bytes:
    return encoded(picture, "PNG", **params)


def png16() -> bytes:
    """16-bit grayscale, black to white left to right; most values lie far above 255."""
    ramp = Image.linear_gradient("L").rotate(90).resize((256, 32))
    sixteen_bit = ramp.convert("I").point(lambda value: value * 257).convert("I;16")
    return png(sixteen_bit)


def palette_png_with_transparency() -> bytes:
    """Palette image: index 0 transparent (left half), index 1 opaque red (right half)."""
    picture = Image.new("P", (64, 32), 0)
    picture.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    picture.paste(1, (32, 0, 64, 32))
    return png(picture, transparency=0)


def rgba_png(alpha: int = 128) -> bytes:
    picture = photo((300, 200)).convert("RGBA")
    picture.putalpha(alpha)
    return png(picture)


def png_with_every_kind_of_metadata() -> bytes:
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "shot by someone")
    picture = photo((300, 200)).convert("RGBA")
    picture.putalpha(128)
    return png(picture, exif=camera_exif(), icc_profile=srgb_profile(), pnginfo=text)


def grayscale_png_with_alpha() -> bytes:
    picture = photo((120, 80)).convert("LA")
    picture.putalpha(100)
    return png(picture)


def animated_gif() -> bytes:
    frames = [flat(RED), flat((30, 200, 30)), flat(BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def still_gif() -> bytes:
    return encoded(flat(RED), "GIF")


def animated_webp() -> bytes:
    frames = [flat(RED), flat(BLUE)]
    return encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)


def webp() -> bytes:
    return encoded(photo((300, 200)), "WEBP", quality=90)


# -- hostile ----------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width x height, followed by a token body."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def decompression_bomb_png(side: int = 8000) -> bytes:
    """A complete, valid black PNG of side x side pixels that compresses about 1000:1 (64 MP in ~60 KB)."""
    compressor = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + one byte per pixel
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def truncated_png() -> bytes:
    whole = png(photo((300, 200)))
    return whole[: len(whole) // 2]


def text_named_jpg() -> bytes:
    return b"Dear team,\nthe holiday photos are attached.\n"


def empty() -> bytes:
    return b""


def psd_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    """A minimal but valid Photoshop file: 8-bit RGB, no resources or layers, raw planar pixels."""
    width, height = size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers and masks: all empty
    pixels = struct.pack(">H", 0) + bytes(3 * width * height)  # compression 0 = raw
    return header + sections + pixels


def eps_bytes() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
        b"0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"
    )


def pdf_bytes() -> bytes:
    return encoded(flat(RED), "PDF")


def tiff_bytes() -> bytes:
    return encoded(flat(RED), "TIFF")


def bmp_bytes() -> bytes:
    return encoded(flat(RED), "BMP")
