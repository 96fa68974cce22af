"""blueprint/checks/nginx.py: upload limits and originals in the shipped nginx file and broken copies."""

from __future__ import annotations

from pathlib import Path

from blueprint.checks import nginx
from tests.blueprint.conftest import edit, findings


def test_it_reports_an_nginx_upload_limit_that_disagrees_with_kiln(deploy: Path, settings) -> None:
    settings.KILN_UPLOAD_MAX_MB = 40
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location = /api/images/ client_max_body_size: 25m for /api/images/, but "
        "KILN_UPLOAD_MAX_MB is 40: set client_max_body_size 40m there",
        "nginx/kiln.conf: location ~ ^/reports/[0-9]+/upload/$ client_max_body_size: 25m for "
        "/reports/1/upload/, but KILN_UPLOAD_MAX_MB is 40: set client_max_body_size 40m there",
    ]


def test_it_reports_an_upload_location_left_at_the_small_default(deploy: Path, settings) -> None:
    edit(
        deploy / "nginx" / "kiln.conf",
        "    location = /api/images/ {\n        client_max_body_size 25m;\n",
        "    location = /api/images/ {\n",
    )
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location = /api/images/ client_max_body_size: 1m for /api/images/, but "
        "KILN_UPLOAD_MAX_MB is 25: set client_max_body_size 25m there"
    ]


def test_it_reports_nginx_serving_originals(deploy: Path, settings) -> None:
    edit(deploy / "nginx" / "kiln.conf", "    location /media/ {\n        return 404;\n    }\n", "")
    edit(deploy / "nginx" / "kiln.conf", "location /media/renditions/ {", "location /media/ {")
    edit(
        deploy / "nginx" / "kiln.conf",
        "alias /var/lib/kiln/media/renditions/;",
        "alias /var/lib/kiln/media/;",
    )
    assert findings(deploy, settings) == [
        "nginx/kiln.conf: location /media/: /media/originals/ is not refused: originals keep their GPS "
        "metadata; serve only /media/renditions/"
    ]


def test_the_tls_variant_uncommented_has_no_findings_either(deploy: Path, settings) -> None:
    conf = deploy / "nginx" / "kiln.conf"
    lines = conf.read_text().splitlines(keepends=True)
    start = lines.index("#server {\n")
    end = lines.index("#}\n", start)
    for index in range(start, end + 1):
        lines[index] = lines[index][1:]
    tls = ("#listen 443", "#listen [::]:443", "#ssl_certificate", "#add_header Strict", "#proxy_hide_header")
    lines = [line.replace("#", "", 1) if line.lstrip().startswith(tls) else line for line in lines]
    conf.write_text("".join(lines))
    servers = [block for block in nginx.parse_nginx(conf.read_text()).children if block.name == "server"]
    assert len(servers) == 2
    assert servers[1].get("ssl_certificate_key") == ["/etc/letsencrypt/live/kiln.example.com/privkey.pem"]
    assert findings(deploy, settings) == []
