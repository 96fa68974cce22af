"""nginx (deploy/nginx/*.conf) against Kiln's contracts: the upload URLs take what Django takes, originals are
never served. A small parser of nginx's syntax and of how it picks a location, enough for Kiln's file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blueprint.checks import Finding

# nginx's default client_max_body_size.
NGINX_DEFAULT_BODY_SIZE = 1024 * 1024
# The attribute a view that takes uploads carries.
UPLOAD_MARK = "accepts_uploads"


# --- nginx ----------------------------------------------------------------------------------------------


@dataclass
class Block:
    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def get(self, name: str) -> list[str] | None:
        found = [args for directive, args in self.directives if directive == name]
        return found[-1] if found else None


def nginx_tokens(text: str) -> Iterator[str]:
    for match in re.finditer(r'#[^\n]*|"(?:\\.|[^"])*"|\'(?:\\.|[^\'])*\'|[{};]|[^\s{};"\']+', text):
        token = match.group(0)
        if token.startswith("#"):
            continue
        yield token[1:-1] if token[0] in "\"'" else token


def parse_nginx(text: str) -> Block:
    root = Block("root", [])
    stack, words = [root], []
    for token in nginx_tokens(text):
        if token == ";":
            if words:
                stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif token == "{":
            block = Block(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    return root


def nginx_location(server: Block, uri: str) -> Block | None:
    """The location nginx picks for `uri`: exact, then the longest prefix (^~ stops there), then the
    first matching regex, else that longest prefix."""
    locations = [b for b in server.children if b.name == "location"]
    prefix: Block | None = None
    for location in locations:
        modifier, pattern = location.args if len(location.args) == 2 else ("", location.args[0])
        if modifier == "=" and uri == pattern:
            return location
        longer = prefix is None or len(pattern) > len(prefix.args[-1])
        if modifier in ("", "^~") and uri.startswith(pattern) and longer:
            prefix = location
    if prefix is not None and prefix.args[0] == "^~":
        return prefix
    for location in locations:
        if len(location.args) == 2 and location.args[0] in ("~", "~*"):
            flags = re.IGNORECASE if location.args[0] == "~*" else 0
            if re.search(location.args[1], uri, flags):
                return location
    return prefix


def nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    if match is None:
        raise ValueError(f"not an nginx size: {value!r}")
    number, unit = match.groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def upload_paths() -> list[str]:
    """Example paths of every URL whose view takes uploads, found in Kiln's URLconf: a view marks itself
    with the attribute `accepts_uploads = True` (thumbnails.views.accepts_uploads), so this check knows no
    app's URLs."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + _example(pattern.pattern))
            elif isinstance(pattern, URLPattern) and getattr(pattern.callback, UPLOAD_MARK, False):
                yield prefix + _example(pattern.pattern)

    return sorted(set(walk(get_resolver().url_patterns, "/")))


def _example(pattern: Any) -> str:
    """A path a route matches: each converter replaced by a value it accepts."""
    from django.urls.resolvers import RoutePattern

    if not isinstance(pattern, RoutePattern):
        raise ValueError(f"an upload view needs a path() route, not {pattern}")
    samples = {
        "int": "1",
        "str": "x",
        "slug": "x",
        "path": "x",
        "uuid": "00000000-0000-0000-0000-000000000000",
    }
    return re.sub(r"<(?:(\w+):)?\w+>", lambda match: samples.get(match.group(1) or "str", "1"), str(pattern))


def check_nginx(path: Path, relative: str, settings: Any) -> Iterator[Finding]:
    root = parse_nginx(path.read_text())
    # Kiln's server proxies to gunicorn; a TLS variant's http-to-https server only redirects.
    kiln = [
        server
        for server in root.children
        if server.name == "server"
        and any(c.name == "location" and c.get("proxy_pass") for c in server.children)
    ]
    if not kiln:
        yield Finding(relative, "server", "no server block proxies to gunicorn: is this Kiln's nginx file?")
        return
    for server in kiln:
        yield from check_nginx_upload_limits(server, relative, settings)
        yield from check_nginx_originals(server, relative)


def body_size(server: Block, location: Block | None) -> tuple[str, int]:
    for block in (location, server):
        value = block.get("client_max_body_size") if block else None
        if value:
            return value[0], nginx_size(value[0])
    return "unset (1m)", NGINX_DEFAULT_BODY_SIZE


def check_nginx_upload_limits(server: Block, relative: str, settings: Any) -> Iterator[Finding]:
    wanted = settings.KILN_UPLOAD_MAX_MB * 1024 * 1024
    for uri in upload_paths():
        location = nginx_location(server, uri)
        raw, size = body_size(server, location)
        if size != wanted:
            yield Finding(
                relative,
                f"location {' '.join(location.args) if location else '(none)'} client_max_body_size",
                f"{raw} for {uri}, but KILN_UPLOAD_MAX_MB is {settings.KILN_UPLOAD_MAX_MB}: "
                f"set client_max_body_size {settings.KILN_UPLOAD_MAX_MB}m there",
            )


def check_nginx_originals(server: Block, relative: str) -> Iterator[Finding]:
    location = nginx_location(server, "/media/originals/x")
    refused = location is not None and (
        (location.get("return") or ["200"])[0] in {"403", "404", "444"} or location.get("deny") == ["all"]
    )
    if not refused:
        yield Finding(
            relative,
            f"location {' '.join(location.args) if location else '(none)'}",
            "/media/originals/ is not refused: originals keep their GPS metadata; serve only /media/renditions/",
        )
