"""KILN_MEDIA_STORAGE read into STORAGES: every bad value fails at start-up naming the variable, no key ever in a URL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from mediastore.location import MediaLocation, media_location, storage_setting


def test_unset_is_files_under_media_root():
    location = media_location("")
    assert location.kind == "filesystem"
    assert storage_setting(location, {}) == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert location.url_origins() == []


def test_a_bucket_with_prefix_endpoint_and_keys():
    location = media_location("s3://kiln-media/site/media?endpoint=http://10.0.0.5:8333/&region=eu-west-1")
    assert location == MediaLocation(
        kind="s3",
        bucket="kiln-media",
        prefix="site/media",
        endpoint="http://10.0.0.5:8333",
        region="eu-west-1",
        addressing="path",
    )
    setting = storage_setting(location, {"KILN_S3_ACCESS_KEY_ID": "AK", "KILN_S3_SECRET_ACCESS_KEY": "SK"})
    options = setting["OPTIONS"]
    assert setting["BACKEND"] == "mediastore.store.KilnS3Storage"
    assert options["bucket_name"] == "kiln-media"
    assert options["location"] == "site/media"
    assert options["endpoint_url"] == "http://10.0.0.5:8333"
    assert options["access_key"] == "AK"
    assert options["secret_key"] == "SK"
    # Private objects, served by signed URLs only, written over in place (content-addressed names).
    assert options["default_acl"] is None
    assert options["querystring_auth"] is True
    assert options["file_overwrite"] is True
    assert location.url_origins() == ["http://10.0.0.5:8333"]
    assert "SK" not in location.describe()
    assert location.describe() == "s3://kiln-media/site/media at http://10.0.0.5:8333"


def test_aws_without_endpoint_uses_boto3_credentials_and_virtual_hosts():
    location = media_location("s3://kiln-media?region=eu-central-1&url_expiry=600")
    options = storage_setting(location, {})["OPTIONS"]
    assert "access_key" not in options
    assert "endpoint_url" not in options
    assert options["querystring_expire"] == 600
    assert location.url_origins() == [
        "https://kiln-media.s3.amazonaws.com",
        "https://kiln-media.s3.eu-central-1.amazonaws.com",
    ]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("/var/lib/kiln/media", "must be empty"),
        ("file:///srv/media", "must be empty"),
        ("s3://AK:SK@kiln-media/x", "keys do not belong in the URL"),
        ("s3://Kiln_Media/x", "is not an S3 bucket name"),
        ("s3://kiln-media/a/../b", "plain folder path"),
        ("s3://kiln-media/x?endpoint=ftp://host", "must be an http:// or https:// address"),
        ("s3://kiln-media/x?endpoint=http://AK:SK@host", "keys do not belong in the endpoint"),
        ("s3://kiln-media/x?colour=blue", "unknown option 'colour'"),
        ("s3://kiln-media/x?url_expiry=soon", "not a number of seconds"),
        ("s3://kiln-media/x?url_expiry=10", "outside 60 s to 7 days"),
        ("s3://kiln-media/x?addressing=sideways", "must be path or virtual"),
        ("s3://kiln-media/x?region=", "needs exactly one value"),
    ],
)
def test_bad_values_name_the_variable(value, complaint):
    with pytest.raises(ImproperlyConfigured) as raised:
        media_location(value)
    message = str(raised.value)
    assert message.startswith("KILN_MEDIA_STORAGE: ")
    assert complaint in message
    assert "SK" not in message.replace("KILN_S3_SECRET_ACCESS_KEY", "")


def test_one_key_without_the_other_names_the_missing_one():
    location = media_location("s3://kiln-media")
    with pytest.raises(ImproperlyConfigured, match=r"^KILN_S3_SECRET_ACCESS_KEY: set it too"):
        storage_setting(location, {"KILN_S3_ACCESS_KEY_ID": "AK"})
    with pytest.raises(ImproperlyConfigured, match=r"^KILN_S3_ACCESS_KEY_ID: set it too"):
        storage_setting(location, {"KILN_S3_SECRET_ACCESS_KEY": "SK"})
