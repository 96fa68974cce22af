"""Content-addressed names: the same bytes always land at the same name, written atomically (mediastore.store), so a
redelivered or repeated job rewrites identical content at an identical name and a reader never sees half a file."""

from __future__ import annotations

from mediastore.store import exists, open_file, touch, url, write_atomic

__all__ = ["exists", "open_file", "original_name", "rendition_name", "touch", "url", "write_atomic"]


def original_name(content_hash: str) -> str:
    return f"originals/{content_hash[:2]}/{content_hash}"


def rendition_name(content_hash: str, spec_key: str, extension: str) -> str:
    return f"renditions/{content_hash[:2]}/{content_hash}/{spec_key}.{extension}"
