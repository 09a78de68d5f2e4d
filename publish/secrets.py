"""Keep the Hub token out of everything this stage prints, logs or writes.

The token is only ever handed to `HfApi`, which puts it in the Authorization header. Anything
else can still carry it by accident: a server that echoes request headers into its error
body, an exception that formats a URL or header, a library log line. So the entry point
(1) wraps stdout/stderr and every logging handler in a redactor for the whole run, (2) passes
every error message through `redact`, and (3) refuses to upload a staged file that contains
the token (`find_secret`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path
from typing import Iterator

MASK = "***"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class _RedactingStream(io.TextIOBase):
    """A text stream that masks the secrets before passing text on."""

    def __init__(self, inner, secrets: list[str]) -> None:
        self._inner = inner
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._inner.write(redact(text, self._secrets))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    @property
    def encoding(self):  # tqdm and logging look at this
        return getattr(self._inner, "encoding", "utf-8")


class _RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self._secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self._secrets)
            record.exc_info = None
        return True


def _all_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    return [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]


@contextlib.contextmanager
def redacted_output(secrets: list[str]) -> Iterator[None]:
    """Mask `secrets` in stdout, stderr and all log handlers while the block runs."""
    secrets = [s for s in secrets if s]
    if not secrets:
        yield
        return
    filt = _RedactingFilter(secrets)
    handlers = _all_handlers()
    for handler in handlers:
        handler.addFilter(filt)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(out, secrets), _RedactingStream(err, secrets)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        for handler in handlers:
            handler.removeFilter(filt)


def find_secret(folder: Path, secrets: list[str]) -> list[Path]:
    """Files under `folder` whose bytes contain any of the secrets."""
    needles = [s.encode("utf-8") for s in secrets if s]
    if not needles:
        return []
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles))
