"""The publishing tests' inputs: a local fake Hub server, a tiny pretraining run folder, and the
fixtures built from it (`pristine`, `trained_pristine`: built once per module; `out`,
`trained_out`: fresh copies for each test).

`FakeHub` implements just the part of the Hub HTTP API that `HfApi.create_repo` and
`HfApi.upload_folder` (huggingface_hub 2.x) call: repo creation, `preupload` (every file is
answered "regular", so no LFS or Xet storage is needed), the NDJSON `commit`, branch creation,
`revision` info and README YAML validation. Like the Hub, a new repo starts with one commit
(`.gitattributes`) and a commit naming a `parentCommit` that is no longer the branch head is
refused with HTTP 412. It records every request and every client commit, and can be told to
fail requests, to stall them, or to apply them and then lose the answer, to provoke the
publishing faults (a leaked token, a failing or timing-out Hub) for real.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO_ROUTE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit|revision|branch)/(?P<rev>[^?]+)$")


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file, as the Hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Recorded:
    """One request as the server saw it; the Authorization header is kept apart."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    authorization: str | None


@dataclass
class _Fault:
    kind: str  # "fail", "stall" (answer late, do nothing) or "lose" (do it, answer late)
    remaining: int
    status: int = 500
    seconds: float = 0.0
    path_contains: str = ""


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    oid: str
    paths: list[str]


@dataclass
class FakeHubState:
    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)  # repo -> rev -> files
    commits: list[Commit] = field(default_factory=list)  # client commits, not the initial ones
    heads: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, branch) -> commit oid
    requests: list[Recorded] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    echo_authorization: bool = False  # put the caller's Authorization value into error bodies


class FakeHub:
    """`with FakeHub() as hub:` serves on 127.0.0.1:<free port> until the block ends."""

    def __init__(self) -> None:
        self.state = FakeHubState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()  # releases stalled handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- fault injection ------------------------------------------------------------
    def fail(self, times: int, status: int = 500, path_contains: str = "") -> None:
        """Answer the next `times` matching requests with HTTP `status`."""
        with self._lock:
            self.state.faults.append(_Fault("fail", times, status=status, path_contains=path_contains))

    def stall(self, times: int, seconds: float, path_contains: str = "") -> None:
        """Hold the next `times` matching requests for `seconds` before answering 503."""
        with self._lock:
            self.state.faults.append(_Fault("stall", times, seconds=seconds, path_contains=path_contains))

    def lose_answer(self, times: int, seconds: float, path_contains: str = "") -> None:
        """Carry out the next `times` matching requests but answer only after `seconds`
        (a commit that succeeded on the server while the client timed out)."""
        with self._lock:
            self.state.faults.append(_Fault("lose", times, seconds=seconds, path_contains=path_contains))

    def heal(self) -> None:
        with self._lock:
            self.state.faults.clear()

    # ---- what the server holds ------------------------------------------------------
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Files on the branch, without the `.gitattributes` every new repo starts with."""
        with self._lock:
            files = self.state.repos.get(repo_id, {}).get(revision, {})
            return {path: data for path, data in files.items() if path != ".gitattributes"}

    def commits(self, repo_id: str | None = None) -> list[Commit]:
        with self._lock:
            return [c for c in self.state.commits if repo_id in (None, c.repo_id)]

    def requests(self, op: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.state.requests if op in r.path]

    def received_bytes(self) -> bytes:
        """Everything the clients sent except the Authorization header values."""
        with self._lock:
            parts = []
            for r in self.state.requests:
                parts.append(f"{r.method} {r.path}\n".encode())
                parts.extend(f"{k}: {v}\n".encode() for k, v in r.headers.items())
                parts.append(r.body)
            return b"\n".join(parts)

    # ---- request handling (called from handler threads) ------------------------------
    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self.state.faults:
                if fault.remaining > 0 and fault.path_contains in path:
                    fault.remaining -= 1
                    return fault
        return None

    def _handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        route = path.split("?", 1)[0]
        if method == "POST" and route == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"))
        if method == "POST" and route == "/api/validate-yaml":
            return 200, {}
        match = REPO_ROUTE.match(route)
        if not match:
            return 404, {"error": f"fake hub: no route for {method} {route}"}
        repo_id, op, rev = match["repo"], match["op"], unquote(match["rev"])
        with self._lock:
            repo = self.state.repos.get(repo_id)
            if repo is None:
                return 404, {"error": f"Repository Not Found for url: {route}."}
            if op == "branch":
                if rev not in repo:
                    repo[rev] = dict(repo["main"])
                    self.state.heads[(repo_id, rev)] = self.state.heads[(repo_id, "main")]
                return 200, {}
            if rev not in repo:
                return 404, {"error": f"Invalid rev id: {rev}"}
            files = repo[rev]
            if op == "revision":
                return 200, {
                    "id": repo_id,
                    "sha": self.state.heads[(repo_id, rev)],
                    "siblings": [{"rfilename": p} for p in sorted(files)],
                }
            if op == "preupload":
                return 200, {
                    "files": [
                        {
                            "path": f["path"],
                            "uploadMode": "regular",
                            "shouldIgnore": False,
                            "oid": git_blob_oid(files[f["path"]]) if f["path"] in files else None,
                        }
                        for f in json.loads(body)["files"]
                    ]
                }
            return self._commit(repo_id, rev, files, body)

    def _create_repo(self, payload: dict) -> tuple[int, dict]:
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        with self._lock:
            if repo_id in self.state.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
            self.state.repos[repo_id] = {
                "main": {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
            }
            self.state.heads[(repo_id, "main")] = hashlib.sha1(f"initial {repo_id}".encode()).hexdigest()
        return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id}

    def _commit(self, repo_id: str, rev: str, files: dict[str, bytes], body: bytes) -> tuple[int, dict]:
        items = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        header = items[0]["value"] if items and items[0]["key"] == "header" else {}
        head = self.state.heads[(repo_id, rev)]
        parent = header.get("parentCommit")
        if parent and not head.startswith(parent):  # the Hub's compare-and-swap
            return 412, {"error": "A commit has happened since. Please refresh and try again."}
        changes: dict[str, bytes | None] = {}
        for item in items[1:]:
            value = item["value"]
            if item["key"] == "file":
                changes[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "deletedFile":
                changes[value["path"]] = None
            else:
                return 400, {"error": f"fake hub: unsupported commit item {item['key']}"}
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = data
        oid = hashlib.sha1(f"{head}:{len(self.state.commits)}:{header.get('summary')}".encode()).hexdigest()
        self.state.heads[(repo_id, rev)] = oid
        self.state.commits.append(Commit(repo_id, rev, header.get("summary", ""), oid, sorted(changes)))
        return 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization")
            headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
            with hub._lock:
                hub.state.requests.append(Recorded(self.command, self.path, headers, body, auth))
            fault = hub._take_fault(urlsplit(self.path).path)
            if fault is not None and fault.kind == "stall":
                hub._stop.wait(fault.seconds)
                status, payload = 503, {"error": "fake hub: stalled"}
            elif fault is not None and fault.kind == "lose":
                status, payload = hub._handle(self.command, self.path, body)
                hub._stop.wait(fault.seconds)
            elif fault is not None:
                status, payload = fault.status, {"error": f"fake hub: injected HTTP {fault.status}"}
            else:
                status, payload = hub._handle(self.command, self.path, body)
            if status >= 400 and hub.state.echo_authorization:
                payload["error"] = f"{payload.get('error', '')} (request had Authorization: {auth})"
            self._reply(status, payload)

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) before we answered

        do_GET = do_POST = do_PUT = _serve

    return Handler


# ---- a tiny pretraining run ------------------------------------------------------------
TINY_LANGS = ("amh", "hau", "ibo", "pcm", "swa", "yor")  # tests.support.tokenizer.TINY_TEXTS

# As finetune/results.py writes it: one row per task, language, model and seed; scores in %.
RESULTS_CSV = """task,lang,model,seed,setting,metric,test_score,dev_score
masakhaner2,yor,out/pretrain/tiny-loss/final,1,,f1,41.20,40.00
masakhaner2,yor,out/pretrain/tiny-loss/final,2,,f1,43.40,41.00
masakhaner2,hau,out/pretrain/tiny-loss/final,1,,f1,55.61,50.00
masakhanews,swa,out/pretrain/tiny-loss/final,1,,f1,61.20,60.00
yosm,yor,out/pretrain/tiny-loss/final,1,,accuracy,70.00,69.00
afrisenti_yosm,yor,out/pretrain/tiny-loss/final,1,out-of-domain,accuracy,60.50,58.00
"""


def build_tiny_tokenizer(out_dir: Path, vocab_size: int = 600):
    """The tokenizer stage's tiny real tokenizer (SentencePiece, XLM-R special ids), saved into
    `out_dir` the way pretraining saves it into final/: `save_pretrained` plus sentencepiece.model."""
    import tempfile

    from transformers import AutoTokenizer

    from tokenizer.artifacts import make_portable
    from tests.support.tokenizer import TINY_TEXTS as STAGE_TEXTS
    from tests.support.tokenizer import build_tiny_tokenizer as stage_helper

    with tempfile.TemporaryDirectory(prefix="tiny-tokenizer-") as tmp:
        tok_dir = Path(stage_helper(Path(tmp) / "tokenizer", texts_by_lang=STAGE_TEXTS, vocab_size=vocab_size))
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        tokenizer.save_pretrained(out_dir)
        make_portable(out_dir)
        if (tok_dir / "sentencepiece.model").is_file():
            shutil.copy2(tok_dir / "sentencepiece.model", Path(out_dir) / "sentencepiece.model")
    return tokenizer


def train_tiny_model(model, tokenizer, texts: list[str], steps: int = 150, lr: float = 1e-2, seed: int = 0) -> None:
    """Masked-LM training of `model` on `texts` (15 % of pieces masked afresh each step, all
    texts in every batch): enough for a tiny model to guess whole words of them. One CPU
    thread: on a busy 2-core machine more threads made each step many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        ids, attention = batch["input_ids"], batch["attention_mask"]
        fixed = torch.tensor([[tok in tokenizer.all_special_ids for tok in row] for row in ids.tolist()])
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            masked = (torch.rand(ids.shape, generator=generator) < 0.15) & ~fixed
            loss = model(
                input_ids=ids.masked_fill(masked, tokenizer.mask_token_id),
                attention_mask=attention,
                labels=ids.masked_fill(~masked, -100),
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def build_tiny_run(
    out_root: Path,
    name: str = "tiny-loss",
    vocab_delta: int = 0,
    results: str | None = RESULTS_CSV,
    report: bool = True,
    trained: bool = False,
) -> Path:
    """Write `<out_root>/pretrain/<name>/` as pretraining leaves it, plus finetune results
    and a report; returns the run folder. `vocab_delta` makes the model's vocabulary that
    many rows larger (or smaller) than the tokenizer, for the consistency checks. `trained`: the model is
    trained on the tiny texts (`train_tiny_model`, seconds) instead of left random, and the
    run's corpus_dir holds them as its corpus, validation split included."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from tests.support.tokenizer import TINY_TEXTS as STAGE_TEXTS
    from tests.support.tokenizer import write_corpus

    run = Path(out_root) / "pretrain" / name
    final = run / "final"
    final.mkdir(parents=True)
    tokenizer = build_tiny_tokenizer(final)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer) + vocab_delta,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(config)
    if trained:
        train_tiny_model(model, tokenizer, [t for lines in STAGE_TEXTS.values() for t in lines])
        write_corpus(Path(out_root) / "corpus", STAGE_TEXTS, STAGE_TEXTS)
    model.save_pretrained(final)
    _write_run_files(run, strategy=name.split("-", 1)[1])
    if results is not None:
        res = Path(out_root) / "finetune" / name / "results.csv"
        res.parent.mkdir(parents=True)
        res.write_text(results, encoding="utf-8")
    if report:
        rep = Path(out_root) / "report"
        rep.mkdir(parents=True)
        (rep / "index.html").write_text("<html><body><h1>Run report</h1></body></html>", encoding="utf-8")
        (rep / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    return run


def _write_run_files(run: Path, strategy: str) -> None:
    """config.yaml, metrics.jsonl and manifest.json shaped like pretrain/train.py writes them."""
    import yaml

    from common.io import write_json

    root = run.parents[1]  # the fake run's own out/, never the repository's
    config = {
        "corpus_dir": str(root / "corpus"),
        "tokenizer_dir": str(root / "tokenizer" / "tiny"),
        "out_dir": str(run),
        "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "ffn_size": 64},
        "data": {"block_len": 64, "langs": []},  # [] = every corpus language
        "train": {"max_steps": 30, "seed": 0},
        "selection": {"strategy": strategy},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    events = [{"event": "eval", "step": 0, "langs": {lang: {"loss": 6.6, "ppl": 735.1} for lang in TINY_LANGS}}]
    events += [{"event": "train", "step": step, "loss": 6.0 - step / 100, "lr": 1e-3} for step in (10, 20, 30)]
    events += [{"event": "eval", "step": 30, "langs": {lang: {"loss": 5.9, "ppl": 365.0} for lang in TINY_LANGS}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    write_json(
        run / "manifest.json",
        {
            "stage": "pretrain",
            "summary": {
                "parameters": 51_234,
                "steps": 30,
                "tokens": 61_440,
                "valid_loss": {lang: {"first": 6.6, "last": 5.9} for lang in TINY_LANGS},
            },
        },
    )


# ---- fixtures: tiny runs, built once per module and copied fresh into each test ---------
RUN = "tiny-loss"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One tiny run (model, tokenizer, results, report)."""
    root = tmp_path_factory.mktemp("pristine")
    build_tiny_run(root, RUN)
    return root


@pytest.fixture
def out(pristine, tmp_path) -> Path:
    root = tmp_path / "out"
    shutil.copytree(pristine, root)
    return root


@pytest.fixture(scope="module")
def trained_pristine(tmp_path_factory) -> Path:
    """One tiny run whose model was trained on the tiny texts, which are also its corpus
    (validation split included): a model that guesses words."""
    root = tmp_path_factory.mktemp("trained")
    build_tiny_run(root, RUN, trained=True)
    return root


@pytest.fixture
def trained_out(trained_pristine, tmp_path) -> Path:
    root = tmp_path / "out"
    shutil.copytree(trained_pristine, root)
    return root
