"""`manage.py thumbnails ingest|regenerate|render`: images from the shell."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from thumbnails import imaging, services
from thumbnails.models import Image


class Command(BaseCommand):
    help = "Ingest image files, regenerate renditions, or run the pipeline on one file in-process."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ingest = sub.add_parser(
            "ingest", help="Upload files as images; one line per file: PATH ID STATUS [REASON]."
        )
        ingest.add_argument("paths", nargs="+", metavar="PATH")
        ingest.add_argument(
            "--report", metavar="NAME", help="put the images into this report (created if new)"
        )
        ingest.add_argument("--wait", action="store_true", help="wait until every image is ready or failed")
        ingest.add_argument("--timeout", type=float, default=600, help="seconds --wait waits at most (600)")

        regenerate = sub.add_parser("regenerate", help="Queue renditions again.")
        which = regenerate.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every image")
        which.add_argument("--failed", action="store_true", help="every failed image")
        which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID")

        render = sub.add_parser("render", help="Run the pipeline in this process on one file, with timings.")
        render.add_argument("path", metavar="PATH")
        render.add_argument("--out", required=True, metavar="DIR", help="where to write the renditions")

    def handle(self, *args, action: str, **options) -> None:
        {"ingest": self.ingest, "regenerate": self.regenerate, "render": self.render}[action](**options)

    def ingest(self, paths: list[str], report: str | None, wait: bool, timeout: float, **options) -> None:
        results: list[tuple[str, Image | None, str]] = []
        for path in paths:
            try:
                with open(path, "rb") as fp:
                    image = services.image_create(
                        upload=File(fp),
                        original_name=Path(path).name,
                        owners={"report": report} if report else None,
                    )
                results.append((path, image, ""))
            except OSError as exc:
                results.append((path, None, exc.strerror or str(exc)))
            except services.UploadRejected as exc:
                results.append((path, None, exc.reason))
        images = {image.pk: image for _, image, _ in results if image is not None}
        if wait:
            self.wait_until_final(images, timeout)
        for path, image, refusal in results:
            if image is None:
                self.stdout.write(f"{path} - failed {refusal}")
                continue
            image = images[image.pk]
            line = f"{path} {image.pk} {image.status}"
            self.stdout.write(f"{line} {image.error}" if image.status == Image.Status.FAILED else line)

    def wait_until_final(self, images: dict[int, Image], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for image in Image.objects.filter(pk__in=list(images)):
                images[image.pk] = image
            if all(image.status != Image.Status.PENDING for image in images.values()):
                return
            if time.monotonic() > deadline:
                pending = sorted(pk for pk, image in images.items() if image.status == Image.Status.PENDING)
                raise CommandError(
                    f"still pending after {timeout:.0f} s: images {pending}. Is worker-high running (`make status`)?"
                )
            time.sleep(0.5)

    def regenerate(self, all: bool, failed: bool, ids: list[int], **options) -> None:
        images = Image.objects.all()
        if failed:
            images = images.filter(status=Image.Status.FAILED)
        elif not all:
            images = images.filter(pk__in=ids)
            missing = set(ids) - set(images.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no such image: {', '.join(map(str, sorted(missing)))}")
        count = services.images_regenerate(image_ids=list(images.values_list("pk", flat=True)))
        self.stdout.write(f"{count} image(s) queued for regeneration on the high queue.")

    def render(self, path: str, out: str, **options) -> None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            result = imaging.render_image(path)
        except imaging.ImageRejected as exc:
            raise CommandError(f"{path}: failed: {exc.reason}") from None
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
        total = time.perf_counter() - started
        facts = result.facts
        self.stdout.write(
            f"{path}: {facts.format} {facts.width}×{facts.height}{' animated' if facts.animated else ''}"
        )
        for key, value in sorted(facts.exif.items()):
            self.stdout.write(f"  exif {key}: {value}")
        for step, seconds in result.timings.items():
            self.stdout.write(f"  {step:<18}{seconds * 1000:9.1f} ms")
        self.stdout.write(f"  {'total':<18}{total * 1000:9.1f} ms")
        for name, rendition in result.renditions.items():
            target = out_dir / f"{Path(path).stem}.{name}.{rendition.extension}"
            target.write_bytes(rendition.data)
            self.stdout.write(
                f"wrote {target} ({rendition.format} {rendition.width}×{rendition.height}, {len(rendition.data)} bytes)"
            )
