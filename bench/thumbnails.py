"""How fast and how good are Kiln's renditions? thumbnails.imaging against plain Pillow, side by side.

Generates N (default 6) photographic-looking 24 MP JPEGs (6000x4000: smooth gradients, soft blobs, hard-edged
shapes, fine lines and sensor-like grain; every other one tagged EXIF orientation 6) and measures, per image,
the median of --repeats runs, Kiln and the baseline interleaved so drift hits both alike:

  both renditions   render_image() making preview + thumb, against naive Pillow doing, for each rendition:
                    open -> ImageOps.exif_transpose -> resize(LANCZOS) to the same size -> save with the same
                    parameters.                                                        Target: >= 4x faster.
  thumbnail alone   render_image(specs=(THUMB,)) against the decode floor, open + draft("RGB", (400, 400))
                    + load(): the least any JPEG thumbnailer has to do.               Target: <= 1.3x the floor.
  quality           PSNR of Kiln's delivered thumbnail against the naive one.          Target: >= 35 dB.
  worker pool       images/s through the real worker-high (kiln.conf's command, a fixed pool of one process
                    per core, private Redis, SQLite) against the same service function in a
                    multiprocessing.Pool of the same size.                             Target: >= 0.9.

Ratios are the point: both sides share one machine and one minute, so they hold where absolute times drift.
Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat

from thumbnails.imaging import DEFAULT_SPECS, THUMB, RenditionSpec, fitted_size, render_image

FULL_SIZE = (6000, 4000)
# Content is drawn at a quarter of the final size and scaled up, as a lens would blur it, then grain and
# fine lines are added at full size so the file has the high-frequency detail a real photo has.
SKETCH_SIZE = (1500, 1000)

TARGET_SPEEDUP = 4.0
TARGET_FLOOR_RATIO = 1.3
TARGET_PSNR_DB = 35.0
TARGET_POOL_RATIO = 0.9


@dataclass(frozen=True)
class Sample:
    path: Path
    orientation: int


@dataclass(frozen=True)
class Target:
    label: str
    measured: float
    goal: float
    unit: str
    at_least: bool  # met when measured >= goal; otherwise when measured <= goal

    @property
    def met(self) -> bool:
        return self.measured >= self.goal if self.at_least else self.measured <= self.goal

    def __str__(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "met" if self.met else "MISSED"
        return (
            f"target {self.label} {sign} {self.goal:g}{self.unit}: {self.measured:.2f}{self.unit} {verdict}"
        )


Section = Callable[[list[Sample], argparse.Namespace], list[Target]]


# -- corpus -----------------------------------------------------------------------------------------------------


def photographic(seed: int, grain: Image.Image) -> Image.Image:
    """Gradients and soft blobs, hard-edged shapes, fine lines and grain; never flat colour."""
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(SKETCH_SIZE)
    radial = Image.radial_gradient("L").resize(SKETCH_SIZE)
    channels = [
        Image.blend(gradient, blobs(rng, (30, 20)), 0.5),
        Image.blend(radial, blobs(rng, (15, 10)), 0.4),
        Image.blend(gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), blobs(rng, (60, 40)), 0.5),
    ]
    rng.shuffle(channels)
    sketch = Image.merge("RGB", channels)
    draw = ImageDraw.Draw(sketch)
    for _ in range(40):
        x, y = rng.randrange(SKETCH_SIZE[0]), rng.randrange(SKETCH_SIZE[1])
        box = (x, y, x + rng.randrange(20, 300), y + rng.randrange(20, 200))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape(box, fill=random_colour(rng))
    picture = sketch.filter(ImageFilter.GaussianBlur(1.5)).resize(FULL_SIZE, Image.Resampling.BICUBIC)
    picture = Image.blend(picture, grain, 0.10)
    draw = ImageDraw.Draw(picture)
    for _ in range(300):
        x, y = rng.randrange(FULL_SIZE[0]), rng.randrange(FULL_SIZE[1])
        end = (x + rng.randrange(-400, 400), y + rng.randrange(-400, 400))
        draw.line((x, y, *end), fill=random_colour(rng), width=rng.randrange(1, 4))
    return picture


def blobs(rng: random.Random, cells: tuple[int, int]) -> Image.Image:
    # Coarse noise scaled up bicubically: soft, cloud-like shading at a scale set by `cells`.
    noise = Image.effect_noise(cells, 60)
    return noise.rotate(rng.choice((0, 180))).resize(SKETCH_SIZE, Image.Resampling.BICUBIC)


def random_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def build_samples(directory: Path, count: int) -> list[Sample]:
    # One full-size grain layer, shared: making 24 MP of noise costs a second, and grain is grain.
    grain = Image.effect_noise(FULL_SIZE, 40).convert("RGB")
    samples = []
    for index in range(count):
        orientation = 6 if index % 2 else 1
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = directory / f"photo-{index}.jpg"
        photographic(index, grain).save(path, "JPEG", quality=90, exif=exif)
        samples.append(Sample(path, orientation))
    return samples


# -- the baselines ----------------------------------------------------------------------------------------------


def naive_render(path: Path, specs: tuple[RenditionSpec, ...] = DEFAULT_SPECS) -> dict[str, bytes]:
    """What a straightforward implementation does: a full decode and a full-size resize per rendition."""
    renditions = {}
    for spec in specs:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            resized = upright.resize(fitted_size(upright.size, spec.max_size), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            resized.save(buffer, "JPEG", quality=spec.quality, optimize=False, progressive=False)
            renditions[spec.name] = buffer.getvalue()
    return renditions


def decode_floor(path: Path) -> None:
    with Image.open(path) as image:
        image.draft("RGB", (THUMB.max_size, THUMB.max_size))
        image.load()


# -- measuring --------------------------------------------------------------------------------------------------


def interleaved_medians(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """Median seconds of each run, alternating them so that a noisy moment hits all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, collected in zip(runs, times, strict=True):
            started = time.perf_counter()
            run()
            collected.append(time.perf_counter() - started)
    return [statistics.median(collected) for collected in times]


def psnr(ours: bytes, reference: bytes) -> float:
    mine = Image.open(io.BytesIO(ours)).convert("RGB")
    theirs = Image.open(io.BytesIO(reference)).convert("RGB")
    if theirs.size != mine.size:  # rounding can differ by a pixel; compare like with like
        theirs = theirs.resize(mine.size, Image.Resampling.LANCZOS)
    rms = ImageStat.Stat(ImageChops.difference(mine, theirs)).rms
    mse = sum(band * band for band in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def print_table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths, strict=True)))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


# -- sections ---------------------------------------------------------------------------------------------------


def both_renditions(samples: list[Sample], args: argparse.Namespace) -> list[Target]:
    rows, kiln_total, naive_total = [], 0.0, 0.0
    for sample in samples:
        kiln, naive = interleaved_medians(
            args.repeats, lambda s=sample: render_image(s.path), lambda s=sample: naive_render(s.path)
        )
        kiln_total, naive_total = kiln_total + kiln, naive_total + naive
        rows.append((sample.path.name, sample.orientation, ms(kiln), ms(naive), f"{naive / kiln:.2f}x"))
    rows.append(("all", "", ms(kiln_total), ms(naive_total), f"{naive_total / kiln_total:.2f}x"))
    print_table(("image", "orientation", "Kiln ms", "naive ms", "speed-up"), rows)
    return [
        Target("speed-up over naive Pillow", naive_total / kiln_total, TARGET_SPEEDUP, "x", at_least=True)
    ]


def thumbnail_alone(samples: list[Sample], args: argparse.Namespace) -> list[Target]:
    rows, kiln_total, floor_total = [], 0.0, 0.0
    for sample in samples:
        kiln, floor = interleaved_medians(
            args.repeats,
            lambda s=sample: render_image(s.path, specs=(THUMB,)),
            lambda s=sample: decode_floor(s.path),
        )
        kiln_total, floor_total = kiln_total + kiln, floor_total + floor
        rows.append((sample.path.name, ms(kiln), ms(floor), f"{kiln / floor:.2f}x"))
    rows.append(("all", ms(kiln_total), ms(floor_total), f"{kiln_total / floor_total:.2f}x"))
    print_table(("image", "Kiln thumb ms", "decode floor ms", "Kiln / floor"), rows)
    ratio = kiln_total / floor_total
    return [Target("thumbnail time over the decode floor", ratio, TARGET_FLOOR_RATIO, "x", at_least=False)]


def thumbnail_quality(samples: list[Sample], args: argparse.Namespace) -> list[Target]:
    rows, delivered = [], []
    for sample in samples:
        reference = naive_render(sample.path, (THUMB,))["thumb"]
        kiln = render_image(sample.path).renditions["thumb"]
        alone = render_image(sample.path, specs=(THUMB,)).renditions["thumb"]
        delivered.append(psnr(kiln.data, reference))
        size = f"{kiln.width}x{kiln.height}"
        rows.append((sample.path.name, size, f"{delivered[-1]:.1f}", f"{psnr(alone.data, reference):.1f}"))
    print_table(("image", "thumb", "PSNR dB (from preview)", "PSNR dB (thumb alone)"), rows)
    return [
        Target("worst thumbnail PSNR against naive", min(delivered), TARGET_PSNR_DB, " dB", at_least=True)
    ]


def worker_pool_throughput(samples: list[Sample], args: argparse.Namespace) -> list[Target]:
    """Celery's overhead on real work: the same images through worker-high and through a plain Pool."""
    import multiprocessing
    import os

    from tests.support.broker import empty_broker
    from tests.support.processes import running_workers, stack_environment, start_redis

    processes = os.cpu_count() or 2
    var_dir = samples[0].path.parent / "pool-var"
    server = start_redis(var_dir / "redis")
    try:
        environ = stack_environment(
            var_dir,
            server.url,
            KILN_HIGH_MIN_PROCESSES=str(processes),
            KILN_HIGH_MAX_PROCESSES=str(processes),
        )
        # This process becomes a Kiln process on the private var dir and Redis (settings load only now).
        os.environ.update(environ)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        from thumbnails import services
        from thumbnails.models import Image as ImageRow

        call_command("migrate", verbosity=0)
        ids = [ingest_file(services, sample.path) for _round in range(args.pool_rounds) for sample in samples]
        empty_broker(server)  # the uploads' own jobs: each run below queues its own

        connections.close_all()  # forked children open their own connections
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(_render_forced, ids, chunksize=1)
        pool_seconds = time.perf_counter() - started

        with running_workers(("worker-high", environ)):
            begun = time.perf_counter()
            mark = django_now()
            for image_id in ids:
                services.image_dispatch(image_id=image_id, force=True)
            while ImageRow.objects.filter(pk__in=ids, processed_at__gte=mark).count() < len(ids):
                time.sleep(0.02)
            celery_seconds = time.perf_counter() - begun
    finally:
        server.stop()
    pool_rate, celery_rate = len(ids) / pool_seconds, len(ids) / celery_seconds
    print_table(
        ("setup", "processes", "images", "seconds", "images/s"),
        [
            ("multiprocessing.Pool", processes, len(ids), f"{pool_seconds:.2f}", f"{pool_rate:.2f}"),
            ("worker-high (Celery)", processes, len(ids), f"{celery_seconds:.2f}", f"{celery_rate:.2f}"),
        ],
    )
    return [
        Target(
            "worker-high throughput over multiprocessing.Pool",
            celery_rate / pool_rate,
            TARGET_POOL_RATIO,
            "",
            at_least=True,
        )
    ]


def ingest_file(services, path: Path) -> int:
    from django.core.files import File

    with path.open("rb") as fp:
        return services.image_create(upload=File(fp), original_name=path.name).pk


def _render_forced(image_id: int) -> str:
    from thumbnails.services import rendition_generate

    return rendition_generate(image_id=image_id, force=True)


def django_now():
    from django.utils import timezone

    return timezone.now()


# Each section prints its own table and returns the targets it judged. A further comparison (a worker pool
# rendering many images, say) is one more function with the same signature, appended here.
SECTIONS: list[tuple[str, Section]] = [
    ("Both renditions: Kiln's single decode vs naive Pillow per rendition", both_renditions),
    ("Thumbnail alone: Kiln vs the JPEG decode floor", thumbnail_alone),
    ("Thumbnail quality: Kiln vs naive Pillow (full decode + LANCZOS)", thumbnail_quality),
    (
        "Worker pool: worker-high vs multiprocessing.Pool, same processes, same service function",
        worker_pool_throughput,
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=6, help="24 MP JPEGs to generate (default 6)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per image and side; median kept (default 3)"
    )
    parser.add_argument(
        "--pool-rounds",
        type=int,
        default=5,
        help="each image is queued this many times in the pool section (5)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="kiln-bench-thumbnails-") as tmp:
        samples = build_samples(Path(tmp), args.images)
        megabytes = sum(sample.path.stat().st_size for sample in samples) / len(samples) / 1e6
        print(
            f"{len(samples)} JPEGs of {FULL_SIZE[0]}x{FULL_SIZE[1]}, {megabytes:.1f} MB on average, ", end=""
        )
        print(f"median of {args.repeats} runs each; generated in {time.perf_counter() - started:.1f} s")
        render_image(samples[0].path)  # warm-up: plugin imports and first-call costs stay out of the figures
        naive_render(samples[0].path)
        for title, section in SECTIONS:
            print(f"\n{title}")
            targets += section(samples, args)

    print()
    for target in targets:
        print(target)
    print(f"total run time {time.perf_counter() - started:.1f} s")
    return 0 if all(target.met for target in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
