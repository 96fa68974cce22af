"""Loaded by pytest before Django reads its settings (`-p tests.environment` in pyproject.toml).

Kiln's settings keep DEBUG off unless it is set; `make test` sets it, and this does the same for a bare
`python -m pytest`. Tests of production behaviour set DEBUG=false for the processes they start.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "true")
