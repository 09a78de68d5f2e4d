"""What the readers of the files stages hand each other share (docs/interfaces.md).

Each such file has one writer and one reader, in the stage that owns it. A reader is strict by
default: the first line not in the file's format raises `FormatError`, naming file and line.
Given `on_problem(path, line, message)` it is tolerant instead: the bad line is reported there
(the message ends in "skipped") and left out, so one torn line (a killed run) never hides the
rest of a file. The report reads this way and lists what it was told.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator

from common.config import ConfigError

OnProblem = Callable[[Path, int, str], None]


class FormatError(ConfigError):
    """A stage's output file exists but is not in the expected format."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path, self.line = Path(path), line
        super().__init__(f"{path}{f':{line}' if line else ''}: {message}")


def problem(on_problem: OnProblem | None, path: Path, line: int, message: str) -> None:
    """A bad line: raised without `on_problem`, else reported there; the caller skips it."""
    if on_problem is None:
        raise FormatError(path, message, line)
    on_problem(Path(path), line, f"{message}; skipped")


def read_json(path: str | Path) -> Any:
    """One JSON document; FileNotFoundError when there is no file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise FormatError(path, f"not UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise FormatError(path, f"not valid JSON: {err.msg} (column {err.colno})", err.lineno) from None


def jsonl_objects(path: str | Path, on_problem: OnProblem | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every JSON-object line of `path`; blank lines are passed over."""
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                if on_problem is None:
                    raise FormatError(path, f"not a JSON line ({err})", number) from None
                on_problem(path, number, f"not a JSON line, skipped ({err})")
                continue
            if not isinstance(obj, dict):
                problem(on_problem, path, number, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield number, obj


def need(path: Path, where: str, obj: Any, keys: tuple[str, ...], kind=(int, float)) -> None:
    """`obj` is a mapping with every key of `keys`, each value of type `kind` (None: any)."""
    if not isinstance(obj, dict):
        raise FormatError(path, f"{where}: expected a mapping, got {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise FormatError(path, f"{where}: missing {key!r}")
        if kind is not None and not isinstance(obj[key], kind):
            raise FormatError(path, f"{where}.{key}: expected a number, got {obj[key]!r}")


def finite(value: Any) -> bool:
    """A real number (not a bool), neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
