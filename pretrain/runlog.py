"""Run bookkeeping: refusing to resume with changed settings, and clearing a run for --fresh.
The files a run leaves for later stages (metrics.jsonl, ...) are pretrain/runfiles.py's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common.config import ConfigError
from common.io import write_json
from pretrain.config import RESUME_SAFE_SETTINGS, flatten
from pretrain.init_from import START_DIR
from pretrain.runfiles import METRICS, SELECTION_DIR, TIMING

RUN_FILE = "run.json"  # result-relevant settings and input hashes of the run in this folder


def result_settings(config: dict) -> dict:
    """Flattened settings that change the trained weights, metrics or selection files.
    `vocab.*` act on an init_from checkpoint only: left out without one, and `data.noise_share`
    when 0, so runs keep the settings (and manifests) they had before those settings existed."""
    flat = flatten(config)
    unused = set() if flat.get("init_from") else {k for k in flat if k.startswith("vocab.")}
    if not flat.get("data.noise_share"):
        unused.add("data.noise_share")
    return {k: v for k, v in flat.items() if k not in RESUME_SAFE_SETTINGS | unused}


def differences(old: dict, new: dict) -> list[str]:
    missing = object()
    lines = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, missing), new.get(key, missing)
        if before != after:
            show = lambda v: "(unset)" if v is missing else json.dumps(v, ensure_ascii=False)  # noqa: E731
            lines.append(f"{key}: {show(before)} -> {show(after)}")
    return lines


def check_same_run(out_dir: Path, settings: dict, inputs: dict) -> bool:
    """True when `out_dir` holds a run with exactly these settings and inputs; False when empty.

    Raises ConfigError naming every differing setting or input otherwise.
    """
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return False
    recorded = json.loads(path.read_text(encoding="utf-8"))
    diff = differences(recorded["settings"], settings) + differences(
        {f"input {k}": v for k, v in recorded["inputs"].items()}, {f"input {k}": v for k, v in inputs.items()}
    )
    if diff:
        raise ConfigError(
            f"{out_dir} holds a run with other settings; refusing to resume it with:\n  "
            + "\n  ".join(diff)
            + "\nUse a new out_dir, or pass --fresh to delete that run and start again."
        )
    return True


def record_run(out_dir: Path, settings: dict, inputs: dict) -> None:
    write_json(Path(out_dir) / RUN_FILE, {"settings": settings, "inputs": inputs})


OWNED = (RUN_FILE, METRICS, TIMING, "config.yaml", "manifest.json", "checkpoints", SELECTION_DIR, "final", START_DIR)


def clear_run(out_dir: Path) -> None:
    """--fresh: delete what a previous run wrote into `out_dir` (and nothing else)."""
    for name in OWNED:
        path = Path(out_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
