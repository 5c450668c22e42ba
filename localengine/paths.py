"""Dotted paths with brackets, as used by property references and ``Std:JsonGet``.

``Outputs['train'].S3Output.S3Uri``, ``TrainingJobSummaries[0].TrainingJobName`` and
``regression_metrics.rmse.value`` all parse into segments: a key (``.name``), an index
(``[0]``) or a name (``['train']``). A name on a list picks the element whose
``...Name`` field equals it, which is how the service indexes ``Outputs`` by
``OutputName`` and ``FinalMetricDataList`` by ``MetricName``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"""
    \.?(?P<key>[^.\[\]'"]+)            # .key (the dot is optional at the start)
  | \[\s*(?P<index>-?\d+)\s*\]         # [0]
  | \[\s*'(?P<single>[^']*)'\s*\]      # ['name']
  | \[\s*"(?P<double>[^"]*)"\s*\]      # ["name"]
""", re.VERBOSE)


class PathError(ValueError):
    """A path does not parse, or does not lead anywhere in the given value."""


@dataclass(frozen=True)
class Segment:
    kind: str  # "key", "index" or "name"
    value: str | int

    def __str__(self) -> str:
        if self.kind == "key":
            return f".{self.value}"
        if self.kind == "index":
            return f"[{self.value}]"
        return f"['{self.value}']"


def parse_path(path: str) -> list[Segment]:
    """Split a path into segments; a leading ``$`` (JSONPath root) is ignored."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    segments, position = [], 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if not match or match.end() == position:
            raise PathError(f"cannot parse path {path!r} at position {position}")
        segments.append(_segment_from(match))
        position = match.end()
    if not segments:
        raise PathError(f"empty path {path!r}")
    return segments


def _segment_from(match: re.Match) -> Segment:
    if match["key"] is not None:
        return Segment("key", match["key"])
    if match["index"] is not None:
        return Segment("index", int(match["index"]))
    return Segment("name", match["single"] if match["single"] is not None else match["double"])


def lookup(value: Any, segments: list[Segment]) -> Any:
    """Follow ``segments`` into nested dicts and lists; raises ``PathError`` with the failing prefix."""
    for depth, segment in enumerate(segments):
        try:
            value = _step_into(value, segment)
        except (KeyError, IndexError, TypeError):
            walked = "".join(str(s) for s in segments[:depth + 1]).lstrip(".")
            raise PathError(f"nothing at {walked}") from None
    return value


def _step_into(value: Any, segment: Segment) -> Any:
    if segment.kind == "index":
        if not isinstance(value, list):
            raise TypeError
        return value[segment.value]
    if isinstance(value, dict):
        return value[segment.value]
    if segment.kind == "name" and isinstance(value, list):
        return _element_named(value, segment.value)
    raise TypeError


def _element_named(elements: list[Any], name: str) -> Any:
    for element in elements:
        if isinstance(element, dict) and any(
                key.endswith("Name") and element[key] == name for key in element):
            return element
    raise KeyError(name)
