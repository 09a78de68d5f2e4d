"""`python -m publish.hub --folder out/pretrain/<run> repo_id=org/name [--dry-run] [key=value ...]`

Checks the run, builds and verifies the exact upload folder (publish/folder.py), then creates
the Hub repository and uploads the folder with `huggingface_hub` (`create_repo(exist_ok=True)`,
`upload_folder`). Rerunning is safe: the Hub answers which files it already holds and only
changed files are committed, so an interrupted publish resumes without duplicates.

Each Hub step is retried on timeouts, connection errors and HTTP 408/412/429/5xx with exponential
backoff (`backoff_s`, doubling up to `max_backoff_s`, at most `max_attempts`), on top of
huggingface_hub's own per-request retries; then it stops with an error naming the endpoint and
the step. The token comes from `HF_TOKEN` or `hf auth login` and is masked in all output.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from common.cli import Command
from common.config import ConfigError
from publish.config import PublishConfig, resolve_paths
from publish.folder import stage
from publish.secrets import find_secret, redact, redacted_output

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://huggingface.co"


class PublishError(RuntimeError):
    """A Hub step failed for good; the message names the endpoint and the step, never the token."""


# ---- token and endpoint ----------------------------------------------------------------
def hub_token() -> str | None:
    """`HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), else the token saved by `hf auth login`."""
    from huggingface_hub import get_token

    return get_token()


def hub_endpoint(cfg: PublishConfig) -> str:
    return (cfg.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


# ---- retries ---------------------------------------------------------------------------
def _http_lib():
    """The HTTP library huggingface_hub uses (httpx2 in 2.x, httpx before), for its exceptions."""
    try:
        import httpx2 as lib
    except ImportError:  # older huggingface_hub
        import httpx as lib
    return lib


def _is_transient(err: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    http = _http_lib()
    if isinstance(err, (http.TimeoutException, http.NetworkError, http.RemoteProtocolError)):
        return True
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        # 412: the branch head moved since we read it (the Hub's compare-and-swap on
        # parent_commit), e.g. our own commit whose answer was lost: re-read it and try again.
        return status in (408, 412, 429) or status >= 500
    return False


def _describe(err: BaseException, timeout_s: float) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(err, _http_lib().TimeoutException):
        return f"no answer within {timeout_s:g}s ({type(err).__name__})"
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        try:
            where = f" from {err.response.request.method} {err.response.request.url}"
        except RuntimeError:  # a response built without its request
            where = ""
        said = (err.server_message or "").strip().replace("\n", " ")
        return f"HTTP {err.response.status_code}{where}" + (f": {said}" if said else "")
    return f"{type(err).__name__}: {err}"


def with_retries(
    step: str,
    call: Callable[[], T],
    cfg: PublishConfig,
    endpoint: str,
    secrets: list[str],
    sleep: Callable[[float], None] = time.sleep,
    log=print,
) -> T:
    """Run `call`, retrying transient failures with exponential backoff; clear error at the end."""
    wait = cfg.backoff_s
    for attempt in range(1, cfg.max_attempts + 1):
        try:
            return call()
        except Exception as err:
            reason = redact(_describe(err, cfg.timeout_s), secrets)
            if not _is_transient(err):
                raise PublishError(f"{step} at {endpoint} failed: {reason}{_hint(err)}") from None
            if attempt == cfg.max_attempts:
                raise PublishError(
                    f"{step} at {endpoint} failed after {attempt} attempt(s); last error: {reason}. "
                    "Rerun the same command to resume: files already on the Hub are not sent again."
                ) from None
            log(
                f"publish: {step} failed (attempt {attempt}/{cfg.max_attempts}: {reason}); retrying in {wait:g}s",
                file=sys.stderr,
            )
            sleep(wait)
            wait = min(cfg.max_backoff_s, wait * 2)
    raise AssertionError("unreachable")


def _hint(err: BaseException) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 401:
        return " (the token was refused: set HF_TOKEN to a valid write token or run `hf auth login`)"
    if status == 403:
        return " (the token may not write to this namespace)"
    return ""


@contextmanager
def request_timeout(timeout_s: float) -> Iterator[None]:
    """huggingface_hub's shared HTTP client has no timeout by default: a stalled endpoint
    would hang the upload forever. Give every request `timeout_s` while publishing."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def factory():
        client = default_client_factory()
        client.timeout = _http_lib().Timeout(timeout_s)
        return client

    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(default_client_factory)


# ---- the upload ------------------------------------------------------------------------
def check_can_upload(token: str | None) -> None:
    """Fail fast, before staging, when an upload cannot happen."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE is set: unset it to upload (or use --dry-run)")
    if not token:
        raise PublishError("no Hub token: set HF_TOKEN or run `hf auth login` (the token is never printed)")


def upload(cfg: PublishConfig, folder: Path, token: str | None, sleep=time.sleep, log=print) -> str:
    """Create the repo (if needed) and upload `folder`; returns the commit URL."""
    from huggingface_hub import HfApi

    check_can_upload(token)
    endpoint = hub_endpoint(cfg)
    secrets = [token]
    leaked = find_secret(folder, secrets)
    if leaked:
        raise PublishError(f"refusing to upload: the token appears in {[str(p) for p in leaked]}")
    api = HfApi(endpoint=endpoint, token=token)
    retry = lambda step, call: with_retries(step, call, cfg, endpoint, secrets, sleep=sleep, log=log)  # noqa: E731
    with request_timeout(cfg.timeout_s):
        url = retry(
            f"create repo {cfg.repo_id}",
            lambda: api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True, repo_type="model"),
        )
        log(f"publish: repository {url} ready")
        if cfg.revision != "main":
            retry(
                f"create branch {cfg.revision}",
                lambda: api.create_branch(cfg.repo_id, branch=cfg.revision, exist_ok=True),
            )
        message = cfg.commit_message or f"Publish {cfg.folder.name}"
        info = retry(
            f"upload {folder} to {cfg.repo_id}@{cfg.revision}", lambda: _upload_on_head(api, cfg, folder, message)
        )
    return str(info.commit_url)


def _upload_on_head(api, cfg: PublishConfig, folder: Path, message: str):
    """`upload_folder` pinned to the branch head as it is now (`parent_commit`).

    huggingface_hub retries a commit whose answer was lost; without a parent the retry would
    commit everything a second time. With it, the Hub refuses the repeat (412), our retry
    re-reads the head, and the Hub reports every file as unchanged: nothing is committed twice.
    """
    head = api.repo_info(cfg.repo_id, revision=cfg.revision, repo_type="model").sha
    return api.upload_folder(
        repo_id=cfg.repo_id,
        folder_path=folder,
        repo_type="model",
        revision=cfg.revision,
        commit_message=message,
        parent_commit=head,
    )


def publish(cfg: PublishConfig, log=print) -> Path:
    """Stage (always) and upload (unless dry run). Returns the upload folder."""
    paths = resolve_paths(cfg)
    if not cfg.dry_run and not cfg.repo_id:
        raise ConfigError("repo_id: required to upload (repo_id=namespace/name), or use --dry-run")
    token = None if cfg.dry_run else hub_token()
    if not cfg.dry_run:
        check_can_upload(token)
    folder = stage(cfg, paths, log=log)
    if cfg.dry_run:
        log(f"publish: dry run: {folder} is exactly what would be uploaded; it loads offline. Not uploaded.")
        return folder
    commit = upload(cfg, folder, token, log=log)
    log(f"publish: uploaded {folder} -> {commit}")
    return folder


# ---- command line ----------------------------------------------------------------------
COMMAND = Command(
    PublishConfig, "python -m publish.hub", __doc__, setting_flags={"--folder": "folder", "--dry-run": "dry_run"}
)


def main(argv: list[str] | None = None) -> int:
    secrets = [hub_token() or ""]
    with redacted_output(secrets):
        try:
            return COMMAND.run(argv, lambda cfg, args: publish(cfg), failures=(PublishError,))
        except Exception:  # unexpected: keep the traceback, never the token
            print(redact(traceback.format_exc(), secrets), file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
