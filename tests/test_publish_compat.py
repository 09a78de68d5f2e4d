"""publish/: the dry-run upload folder loads in the transformers 4.x line (slow).

Most users of a Hub model still run transformers 4.x, while we build with 5.x. This test
builds the upload folder of a tiny trained run with `--dry-run`, then loads it with
transformers 4.57.6 in a second virtual environment (created once and reused: `COMPAT_VENV`,
default `<repo>/.venv-compat`, no system site-packages) and checks the 4.x tokenizer gives the
same token ids as ours on a few real sentences and that `pipeline("fill-mask")` runs.

The first run installs torch and transformers 4.57.6 into that venv (about half a minute; torch
is the same build as ours, so `2.13.0+cpu` comes from the CPU index when it is not on disk);
without network it is skipped. Run it with `make test-all` or
`python -m pytest -q -m slow tests/test_publish_compat.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.support import MULTILINGUAL_LINES, REPO_ROOT
from publish.config import PublishConfig
from publish.hub import main

from tests.support.publish import RUN, trained_out, trained_pristine  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

TRANSFORMERS_4 = "4.57.6"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAMP = "afrolm-compat.json"  # written into the venv once everything is installed
# pip's words for "could not reach the index" (then the test is skipped, not failed).
NO_NETWORK = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ProxyError",
    "Max retries exceeded",
    "connection broken",
    "Connection refused",
    "No route to host",
)

# Real sentences (conftest's five languages: tone marks, Ge'ez, an emoji), the same Yoruba
# sentence decomposed (NFD, as some keyboards type it), a number, and the mask token itself.
SENTENCES = [line for lines in MULTILINGUAL_LINES.values() for line in lines] + [
    unicodedata.normalize("NFD", MULTILINGUAL_LINES["yor"][0]),
    "Àwọn ọmọ ilé-ìwé mẹ́wàá ló wá sí ìpàdé ní ọdún 2023.",
    PublishConfig.sample_text,
]

# Runs in the compat venv: argv[1] = JSON {"folder", "sentences", "masked"}; prints one JSON line.
SCRIPT = r"""
import json, sys
import tokenizers, torch, transformers
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

args = json.loads(sys.argv[1])
tok = AutoTokenizer.from_pretrained(args["folder"], local_files_only=True)
model = AutoModelForMaskedLM.from_pretrained(args["folder"], local_files_only=True)
fill = pipeline("fill-mask", model=model, tokenizer=tok)
guesses = fill(args["masked"].replace("<mask>", tok.mask_token))
print(json.dumps({
    "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
    "torch": torch.__version__, "tokenizer_class": type(tok).__name__,
    "ids": tok(args["sentences"])["input_ids"],
    "fill_mask": [{"token_str": g["token_str"], "score": g["score"]} for g in guesses],
}, ensure_ascii=False))
"""


def _torch_requirement() -> tuple[str, str | None]:
    """torch exactly as ours (2.13.0+cpu stays CPU-only), and the index to retry with when
    pip's configured sources do not have that build."""
    import torch

    version = str(torch.__version__)
    base, _, label = version.partition("+")
    if label == "cpu":
        return f"torch=={version}", CPU_INDEX
    return f"torch=={base}", None


def _pip(python: Path, requirements: list[str], index: str | None) -> subprocess.CompletedProcess:
    cmd = [str(python), "-m", "pip", "install", "-q", *requirements]
    if index:
        cmd += ["--extra-index-url", index]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def compat_python() -> Path:
    """The python of the transformers 4.x venv, created and filled on first use."""
    venv = Path(os.environ.get("COMPAT_VENV", REPO_ROOT / ".venv-compat"))
    python = venv / "bin" / "python"
    torch_req, torch_index = _torch_requirement()
    # tokenizers and safetensors come with transformers; sentencepiece is left out on purpose:
    # the folder must load without it (tokenizer.json, PreTrainedTokenizerFast).
    requirements = [torch_req, f"transformers=={TRANSFORMERS_4}", "tokenizers", "safetensors"]
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == requirements:
        return python
    if venv.exists() and not (venv / "pyvenv.cfg").exists():
        pytest.fail(f"COMPAT_VENV={venv} exists and is not a virtual environment; not touching it")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)  # no system site-packages
    done = _pip(python, requirements, None)
    if done.returncode != 0 and torch_index and not any(m in done.stdout + done.stderr for m in NO_NETWORK):
        done = _pip(python, requirements, torch_index)  # e.g. torch 2.13.0+cpu is not on this disk
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        reached = [line.strip() for line in output.splitlines() if any(m in line for m in NO_NETWORK)]
        if reached:
            pytest.skip(
                f"cannot install transformers=={TRANSFORMERS_4} into {venv}: no network? "
                f"({output.splitlines()[-1]}; {reached[-1][:300]})"
            )
        pytest.fail(f"installing {requirements} into {venv} failed:\n{output[-3000:]}")
    stamp.write_text(json.dumps(requirements))
    return python


def test_upload_folder_loads_in_transformers_4_with_the_same_ids(trained_out, compat_python):
    import transformers
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    assert main(["--folder", str(trained_out / "pretrain" / RUN), "--dry-run"]) == 0
    upload = trained_out / "publish" / RUN / "upload"
    assert json.loads((upload / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"

    # Ours (transformers 5.x), in this process.
    tok = AutoTokenizer.from_pretrained(upload, local_files_only=True)
    ours = tok(SENTENCES)["input_ids"]
    assert all(tok.unk_token_id not in ids for ids in ours[:2])  # Yoruba is in the tiny vocabulary
    model = AutoModelForMaskedLM.from_pretrained(upload, local_files_only=True)
    our_fill = pipeline("fill-mask", model=model, tokenizer=tok)(PublishConfig.sample_text)

    # Theirs (transformers 4.57.6), in the compat venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    payload = json.dumps({"folder": str(upload), "sentences": SENTENCES, "masked": PublishConfig.sample_text})
    done = subprocess.run(
        [str(compat_python), "-c", SCRIPT, payload],
        capture_output=True,
        text=True,
        env=env,
        cwd=trained_out,
        timeout=600,
    )
    assert done.returncode == 0, f"transformers {TRANSFORMERS_4} could not load {upload}:\n{done.stderr[-3000:]}"
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\ncompat: transformers {theirs['transformers']} (tokenizers {theirs['tokenizers']}, torch "
        f"{theirs['torch']}, {theirs['tokenizer_class']}) vs ours {transformers.__version__}: "
        f"ids {'equal' if theirs['ids'] == ours else 'DIFFERENT'} on {len(SENTENCES)} sentences "
        f"({sum(map(len, ours))} tokens); "
        f"fill-mask top guess {theirs['fill_mask'][0]['token_str']!r} ({theirs['fill_mask'][0]['score']:.3f}), "
        f"ours {our_fill[0]['token_str']!r} ({our_fill[0]['score']:.3f})"
    )

    assert theirs["transformers"].startswith("4.57"), theirs["transformers"]
    assert theirs["tokenizer_class"] == "PreTrainedTokenizerFast"
    for sentence, mine, other in zip(SENTENCES, ours, theirs["ids"], strict=True):
        assert other == mine, f"token ids differ for {sentence!r}"
    assert len(theirs["fill_mask"]) == 5
    # Same weights, same torch: the same top guess, with the same score.
    assert theirs["fill_mask"][0]["token_str"] == our_fill[0]["token_str"]
    assert theirs["fill_mask"][0]["score"] == pytest.approx(our_fill[0]["score"], abs=1e-4)
