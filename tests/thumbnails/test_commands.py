from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError

from thumbnails import services, tasks
from thumbnails.models import Image

from .images import jpeg_bytes

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_render_runs_the_pipeline_in_process_and_prints_each_step(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg_bytes(3000, 2000))
    output = run("thumbnails", "render", str(source), "--out", str(tmp_path / "out"))
    assert "JPEG 3000×2000" in output
    assert " ms" in output
    assert "total" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in.preview.jpg", "in.thumb.jpg"]


def test_render_says_why_a_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "notes.jpg"
    source.write_text("hello\n" * 100)
    with pytest.raises(CommandError, match=r"notes\.jpg: failed: "):
        run("thumbnails", "render", str(source), "--out", str(tmp_path / "out"))


def test_ingest_prints_one_line_per_path_in_argument_order(tmp_path: Path, media_root) -> None:
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes())
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    lines = run("thumbnails", "ingest", str(good), str(tmp_path / "missing.jpg"), str(empty)).splitlines()
    image = Image.objects.get()
    assert lines == [
        f"{good} {image.pk} pending",
        f"{tmp_path / 'missing.jpg'} - failed No such file or directory",
        f"{empty} - failed the file is empty",
    ]


def test_regenerate_takes_ids_failed_or_all(media_root, monkeypatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr(
        tasks.rendition_generate_task, "apply_async", lambda args, kwargs=None, **kw: sent.append(args[0])
    )
    images = [
        services.image_create(
            upload=ContentFile(jpeg_bytes(color=(n, n, n)), name="x.jpg"), original_name="x.jpg"
        )
        for n in range(3)
    ]
    Image.objects.filter(pk=images[1].pk).update(status=Image.Status.FAILED, error="bad")
    sent.clear()
    assert run("thumbnails", "regenerate", "--failed").startswith("1 image(s)")
    assert sent == [images[1].pk]
    assert run("thumbnails", "regenerate", "--all").startswith("3 image(s)")
    assert run("thumbnails", "regenerate", str(images[0].pk)).startswith("1 image(s)")
    with pytest.raises(CommandError, match="no such image: 9999"):
        run("thumbnails", "regenerate", "9999")
