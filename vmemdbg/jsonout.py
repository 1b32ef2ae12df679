"""JSON text of the view documents, as every front end prints it (docs/json.md)."""

from __future__ import annotations

import json
from typing import Any, TextIO


def dumps(doc: Any) -> str:
    """``doc`` as JSON text (one-space indent, no final newline)."""
    return json.dumps(doc, indent=1)


def stream(doc: Any, file: TextIO) -> None:
    """Write ``dumps(doc)`` and a newline to ``file`` in batches: the audit of 500k sections never
    exists as one string."""
    batch: list[str] = []
    for chunk in json.JSONEncoder(indent=1).iterencode(doc):
        batch.append(chunk)
        if len(batch) >= 1 << 16:
            file.write("".join(batch))
            batch.clear()
    file.write("".join(batch) + "\n")
