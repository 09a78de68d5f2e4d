"""publish.hub against a local fake Hub: token never leaks, retries and resumable,
duplicate-free uploads."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import huggingface_hub.utils._http as hf_http
import pytest
from huggingface_hub import constants

from publish.config import PublishConfig
from publish.hub import PublishError, main, with_retries

from tests.support.publish import RUN, FakeHub, out, pristine  # noqa: F401  (fixtures)

REPO = "masakhane-lab/tiny-loss"


@pytest.fixture
def token(monkeypatch) -> str:
    """A fake token in HF_TOKEN, with the Hub client allowed online (conftest sets offline)."""
    value = "hf_FAKE" + secrets.token_hex(16)
    monkeypatch.setenv("HF_TOKEN", value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return value


class RecordingSleep:
    """Stands in for `time` inside huggingface_hub's HTTP backoff: records the waits, waits 0 s."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


def publish_cli(out: Path, hub: FakeHub, *extra: str) -> int:
    return main(
        [
            "--folder",
            str(out / "pretrain" / RUN),
            f"repo_id={REPO}",
            f"endpoint={hub.url}",
            "backoff_s=0.01",
            "timeout_s=2",
            *extra,
        ]
    )


def local_files(out: Path) -> dict[str, bytes]:
    upload = out / "publish" / RUN / "upload"
    return {p.relative_to(upload).as_posix(): p.read_bytes() for p in upload.rglob("*") if p.is_file()}


def test_upload_retries_failures_and_stalls_then_succeeds_row17(out, token, capfd):
    with FakeHub() as hub:
        hub.fail(2, status=500, path_contains="/api/repos/create")  # our retry loop
        hub.stall(1, seconds=10, path_contains="/preupload/")  # client timeout, then the library's retry
        rc = publish_cli(out, hub, "timeout_s=0.5")
        assert rc == 0, capfd.readouterr().err
        assert len(hub.requests("/api/repos/create")) == 3
        assert len(hub.requests("/preupload/")) == 2
        assert hub.files(REPO) == local_files(out)
        assert len(hub.commits(REPO)) == 1
    err = capfd.readouterr().err
    assert "create repo masakhane-lab/tiny-loss failed (attempt 1/5: HTTP 500" in err
    assert "attempt 2/5" in err and "attempt 3/5" not in err


def test_upload_gives_up_with_clear_error_row17(out, token, capfd):
    with FakeHub() as hub:
        hub.fail(1000, status=503)
        rc = publish_cli(out, hub, "max_attempts=3")
        assert len(hub.requests()) == 3  # bounded: one request per attempt, then stop
    assert rc == 2
    err = capfd.readouterr().err
    assert f"create repo {REPO} at {hub.url} failed after 3 attempt(s); last error: HTTP 503" in err
    assert "Rerun the same command to resume" in err and "Traceback" not in err
    with FakeHub() as hub:  # an endpoint that never answers: the timeout makes it an attempt
        hub.stall(1000, seconds=30)
        rc = publish_cli(out, hub, "max_attempts=2", "timeout_s=0.3")
    assert rc == 2
    assert "failed after 2 attempt(s); last error: no answer within 0.3s" in capfd.readouterr().err


def test_rerun_after_failed_upload_completes_without_duplicates_row17(out, token, capfd, monkeypatch):
    library_sleep = RecordingSleep()
    monkeypatch.setattr(hf_http, "time", library_sleep)
    with FakeHub() as hub:
        hub.fail(1000, status=502, path_contains="/commit/")
        assert publish_cli(out, hub, "max_attempts=2") == 2
        err = capfd.readouterr().err
        assert f"upload {out / 'publish' / RUN / 'upload'} to {REPO}@main at {hub.url} failed after 2" in err
        assert hub.files(REPO) == {} and hub.commits(REPO) == []
        # huggingface_hub itself retried each commit with exponential backoff before giving up.
        assert library_sleep.waits[:5] == [1, 2, 4, 8, 8]

        hub.heal()  # the same command again: completes
        assert publish_cli(out, hub, "max_attempts=2") == 0
        assert hub.files(REPO) == local_files(out)
        (first,) = hub.commits(REPO)
        assert sorted(first.paths) == sorted(local_files(out))

        assert publish_cli(out, hub) == 0  # and again: nothing is sent twice
        assert len(hub.commits(REPO)) == 1
        assert len(hub.requests("/api/repos/create")) == 3  # exist_ok: the repo is not recreated

        # New results: only the files that changed are committed, not the weights again.
        results = out / "finetune" / RUN / "results.csv"
        results.write_text(results.read_text() + "afrisenti,hau,out/pretrain/tiny-loss/final,1,,f1,60.0,58.0\n")
        assert publish_cli(out, hub) == 0
        second = hub.commits(REPO)[-1]
        assert sorted(second.paths) == ["README.md", "eval_results.csv"]
        assert hub.files(REPO) == local_files(out)


def test_commit_whose_answer_is_lost_is_not_made_twice_row17(out, token, capfd, monkeypatch):
    monkeypatch.setattr(hf_http, "time", RecordingSleep())
    with FakeHub() as hub:
        hub.lose_answer(1, seconds=10, path_contains="/commit/")  # committed, but the client times out
        assert publish_cli(out, hub, "timeout_s=0.5") == 0
        (only,) = hub.commits(REPO)
        assert only.paths == sorted(local_files(out))
        assert hub.files(REPO) == local_files(out)
        # huggingface_hub re-sent the commit; the Hub refused it (412: the head had moved).
        assert len(hub.requests("/commit/")) == 2
    assert "HTTP 412" in capfd.readouterr().err


def test_token_never_appears_in_output_files_or_uploads_row16(out, token, capfd, caplog, tmp_path):
    with FakeHub() as hub:
        hub.state.echo_authorization = True  # error bodies quote the request's Authorization header
        assert publish_cli(out, hub, "--dry-run") == 0
        hub.fail(1, status=500)
        assert publish_cli(out, hub) == 0  # one echoed error on the way, then success
        hub.fail(1000, status=500)
        assert (
            main(
                [
                    "--folder",
                    str(out / "pretrain" / RUN),
                    "repo_id=org/other",
                    f"endpoint={hub.url}",
                    "backoff_s=0",
                    "max_attempts=2",
                ]
            )
            == 2
        )
        # The fake token really went to the server, in the Authorization header only.
        assert {r.authorization for r in hub.requests()} == {f"Bearer {token}"}
        sent = hub.received_bytes()
    assert sent and token.encode() not in sent
    printed = capfd.readouterr()
    assert "***" in printed.err  # the echoed header was there, masked
    assert token not in printed.out + printed.err + caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    assert [p for p in written if token.encode() in p.read_bytes()] == []


def test_token_in_a_staged_file_blocks_the_upload_row16(out, token, capfd):
    config = out / "pretrain" / RUN / "config.yaml"
    config.write_text(config.read_text() + f"# pasted by mistake: {token}\n")
    with FakeHub() as hub:
        assert publish_cli(out, hub) == 2
        assert hub.requests() == []
    err = capfd.readouterr().err
    assert "refusing to upload: the token appears in" in err and "training_config.yaml" in err
    assert token not in err


def test_private_repo_on_a_branch(out, token):
    with FakeHub() as hub:
        assert publish_cli(out, hub, "private=true", "revision=v0.1", "commit_message=First tiny model") == 0
        (create,) = hub.requests("/api/repos/create")
        assert json.loads(create.body) == {
            "name": "tiny-loss",
            "organization": "masakhane-lab",
            "visibility": "private",
            "type": "model",
        }
        assert hub.files(REPO, "v0.1") == local_files(out) and hub.files(REPO, "main") == {}
        (commit,) = hub.commits(REPO)
        assert (commit.revision, commit.summary) == ("v0.1", "First tiny model")


def test_missing_token_is_refused_before_anything(out, monkeypatch, tmp_path, capfd):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub() as hub:
        assert publish_cli(out, hub) == 2
        assert hub.requests() == []
    assert "no Hub token: set HF_TOKEN or run `hf auth login`" in capfd.readouterr().err
    assert not (out / "publish").exists()


def test_retry_waits_double_up_to_the_cap():
    import httpx2

    waits: list[float] = []
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 5:
            raise httpx2.ConnectError("connection refused")
        return "ok"

    cfg = PublishConfig(max_attempts=5, backoff_s=0.5, max_backoff_s=2.0)
    logged: list[str] = []
    result = with_retries(
        "create repo x/y",
        flaky,
        cfg,
        "http://127.0.0.1:9",
        ["tok"],
        sleep=waits.append,
        log=lambda *a, **k: logged.append(a[0]),
    )
    assert result == "ok" and waits == [0.5, 1.0, 2.0, 2.0] and len(logged) == 4
    with pytest.raises(PublishError, match=r"create repo x/y at http://127.0.0.1:9 failed: ValueError"):
        with_retries(
            "create repo x/y",
            lambda: (_ for _ in ()).throw(ValueError("bad")),
            cfg,
            "http://127.0.0.1:9",
            ["tok"],
            sleep=waits.append,
        )
