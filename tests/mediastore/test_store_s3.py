"""The media store on a real S3 server (SeaweedFS): atomic content-addressed writes, touch, signed URLs,
listing after a cursor, batched deletes inside the prefix only, and the store's faults in words."""

from __future__ import annotations

import time
import urllib.request

import pytest
from django.core.files.storage import default_storage

from mediastore import store
from tests.support.s3 import S3Server, media_settings_use


def put(server: S3Server, name: str, body: bytes = b"x") -> None:
    server.client().put_object(Bucket=server.bucket, Key=f"{server.prefix}/{name}", Body=body)


def test_write_read_exists_and_overwrite(s3_media):
    store.write_atomic("originals/ab/abc", [b"hello ", b"world"])
    assert store.exists("originals/ab/abc")
    assert not store.exists("originals/ab/nothing")
    with store.reading("originals/ab/abc") as opened:
        assert opened.read() == b"hello world"
    # The same name written again keeps the name (content-addressed: never "abc_X7f3").
    store.write_atomic("originals/ab/abc", [b"hello world"])
    assert s3_media.keys(s3_media.prefix) == [f"{s3_media.prefix}/originals/ab/abc"]


def test_a_large_write_is_spooled_and_stored_whole(s3_media):
    chunk = bytes(range(256)) * 4096  # 1 MiB
    store.write_atomic("originals/big", (chunk for _ in range(12)))  # above the 8 MiB multipart threshold
    head = s3_media.client().head_object(Bucket=s3_media.bucket, Key=f"{s3_media.prefix}/originals/big")
    assert head["ContentLength"] == 12 * len(chunk)


def test_signed_url_serves_the_file_and_the_bare_key_is_refused(s3_media):
    store.write_atomic("renditions/ab/abc/thumb.webp", [b"RIFFdata"])
    signed = store.url("renditions/ab/abc/thumb.webp")
    assert "X-Amz-Signature=" in signed
    assert s3_media.secret_key not in signed
    with urllib.request.urlopen(signed, timeout=10) as answer:
        assert answer.read() == b"RIFFdata"
    bare = signed.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 403


def test_touch_makes_an_object_new_again(s3_media):
    store.write_atomic("originals/old", [b"x"])
    first = default_storage.get_modified_time("originals/old")
    time.sleep(1.1)  # LastModified has a resolution of one second
    store.touch("originals/old")
    assert default_storage.get_modified_time("originals/old") > first
    with store.reading("originals/old") as opened:
        assert opened.read() == b"x"


def test_scan_pages_after_a_cursor_and_skips_other_targets_folders(s3_media):
    names = [f"renditions/{i:02d}/r" for i in range(7)] + [f"originals/{i:02d}/o" for i in range(5)]
    names += ["stray/a", "stray/b", "top"]
    for name in names:
        put(s3_media, name)
    # Outside the prefix: never listed, never touched.
    s3_media.client().put_object(Bucket=s3_media.bucket, Key=f"{s3_media.prefix}-other/stray/a", Body=b"x")
    everything_else = []
    cursor = ""
    while True:
        page = store.scan("", cursor, ("originals", "renditions"), 2)
        everything_else += [entry.name for entry in page]
        if len(page) < 2:
            break
        cursor = page[-1].name
    assert everything_else == ["stray/a", "stray/b", "top"]
    renditions = store.scan("renditions", "renditions/03/r", (), 100)
    assert [entry.name for entry in renditions] == [f"renditions/{i:02d}/r" for i in range(4, 7)]
    assert all(entry.size == 1 and entry.modified > time.time() - 120 for entry in renditions)


def test_remove_deletes_in_batches_and_reports_what_existed(s3_media, monkeypatch):
    monkeypatch.setattr(store, "DELETE_BATCH", 3)
    for i in range(7):
        put(s3_media, f"stray/{i}")
    gone = store.remove([f"stray/{i}" for i in range(7)])
    assert gone == {f"stray/{i}" for i in range(7)}
    assert s3_media.keys(s3_media.prefix) == []


def test_wrong_keys_and_a_missing_bucket_are_named_without_secrets(s3_media, settings):
    assert store.problem() == ""
    environ = {**s3_media.environment(s3_media.prefix), "KILN_S3_SECRET_ACCESS_KEY": "not-the-secret-123"}
    media_settings_use(settings, environ)
    problem = store.problem()
    assert "refused: the secret key does not match (KILN_S3_SECRET_ACCESS_KEY)" in problem
    assert "not-the-secret-123" not in problem
    assert s3_media.secret_key not in problem
    with pytest.raises(store.StorageUnavailable, match="refused"):
        store.write_atomic("originals/x", [b"x"])

    missing = s3_media.storage_url(s3_media.prefix).replace(s3_media.bucket, "no-such-bucket")
    media_settings_use(settings, s3_media.environment(s3_media.prefix), url=missing)
    assert "s3://no-such-bucket/" in store.problem()
    assert "the bucket does not exist" in store.problem()


def test_a_store_that_is_down_is_unreachable_in_words(s3_media, settings, tmp_path):
    down = S3Server(directory=tmp_path / "down")
    down.ports = {"s3.port": __import__("tests.support.processes", fromlist=["free_port"]).free_port()}
    media_settings_use(settings, s3_media.environment("x"), url=down.storage_url("x"))
    started = time.monotonic()
    problem = store.problem()
    assert problem.startswith(f"the media store s3://{s3_media.bucket}/x at {down.endpoint} is unreachable: ")
    assert time.monotonic() - started < 30  # a down store answers in seconds, not a hung request
    with pytest.raises(store.StorageUnavailable):
        store.exists("originals/x")
