"""The recorded log format: JSON Lines of (logical topic, key, value), the value as text or base64.

Imports nothing from ``pipeline`` (the oracle reads logs through it and stays independent of the pipeline).
"""

from __future__ import annotations

import base64
import json
from typing import Any


def to_log_line(topic: str, key: str, value: bytes) -> str:
    """One line of a recorded log: logical topic, key and value (base64 when the value is not UTF-8)."""
    line: dict[str, Any] = {"topic": topic, "key": key}
    try:
        line["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        line["value_b64"] = base64.b64encode(value).decode("ascii")
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)


def from_log_line(line: str) -> tuple[str, str, bytes]:
    """(logical topic, key, value bytes) of a recorded log line."""
    obj = json.loads(line)
    value = base64.b64decode(obj["value_b64"]) if "value_b64" in obj else obj["value"].encode("utf-8")
    return obj["topic"], obj["key"], value
