"""Settings of `python -m publish.hub` (one typed dataclass, see common/config.py).

There is deliberately no `token` setting: the token comes from `HF_TOKEN` or the user's
login only, so it can never end up in a config file, a manifest or a command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from common.config import ConfigError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LANG_CODE = re.compile(r"^[a-z]{2,3}$")


@dataclass
class PublishConfig:
    folder: Path = Path("")
    """Pretraining run folder, e.g. out/pretrain/tiny-loss (holds final/, config.yaml)."""
    repo_id: str = ""
    """Hub repository `namespace/name`; required unless dry_run."""
    results: Path | None = None
    """Finetune results table; default <OUT>/finetune/<run name>/results.csv."""
    report_dir: Path | None = None
    """Report folder (HTML + PNGs), included when present; default <OUT>/report."""
    out_dir: Path | None = None
    """Where the exact upload folder is staged; default <OUT>/publish/<run name>."""
    data_dir: Path = Path("../shared/data")
    """Raw data catalogue, read for the licence of each source (mono/SOURCES.tsv)."""
    languages: list[str] = field(default_factory=list)
    """ISO 639-3 codes for the card; empty = take them from the run's config or corpus."""
    license: str = "other"
    """Hub licence id. `other` + LICENSE.md because the data's terms are mixed (docs/publish.md)."""
    license_name: str = "afrolm-data-noncommercial"
    """Name shown on the Hub when license=other."""
    private: bool = False
    """Create the repository private (ignored when it exists already)."""
    revision: str = "main"
    """Branch to commit to; created from main when missing."""
    commit_message: str = ""
    """Commit title; default `Publish <run name>`."""
    endpoint: str = ""
    """Hub URL; empty = HF_ENDPOINT or https://huggingface.co."""
    allow_no_results: bool = False
    """Publish without finetune results (the card then says so)."""
    dry_run: bool = False
    """Build and verify the upload folder, never contact the Hub (also `--dry-run`)."""
    max_attempts: int = 5
    """Attempts per Hub step (create repo, branch, upload) before giving up."""
    backoff_s: float = 2.0
    """First wait between attempts; doubles each time (exponential backoff)."""
    max_backoff_s: float = 60.0
    """Longest wait between attempts."""
    timeout_s: float = 120.0
    """Per-request HTTP timeout; a stalled endpoint counts as a failed attempt."""
    sample_text: str = "Ọmọ náà ń lọ sí <mask> lójoojúmọ́."
    """Preferred fill-mask example (one `<mask>`): the card's widget and the offline check use it
    when the model's top guess there is a word, else a validation sentence (docs/publish.md)."""
    example_candidates: int = 200
    """Validation sentences (one word masked) tried for the fill-mask example when sample_text's
    top guess is not a word; 0 = always sample_text."""

    def __post_init__(self) -> None:
        if self.repo_id and not REPO_ID.match(self.repo_id):
            raise ConfigError(f"repo_id: {self.repo_id!r} must look like namespace/name")
        bad = [code for code in self.languages if not LANG_CODE.match(code)]
        if bad:
            raise ConfigError(f"languages: {bad} are not ISO 639 codes (2-3 lower-case letters)")
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts: must be at least 1, got {self.max_attempts}")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("backoff_s and max_backoff_s: must not be negative")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s: must be positive, got {self.timeout_s}")
        if self.sample_text.count("<mask>") != 1:
            raise ConfigError("sample_text: must contain <mask> exactly once")
        if self.example_candidates < 0:
            raise ConfigError(f"example_candidates: must not be negative, got {self.example_candidates}")
        if not self.revision:
            raise ConfigError("revision: must not be empty")
        if not self.license:
            raise ConfigError("license: must not be empty (use `other` with license_name)")


@dataclass
class RunPaths:
    """Every path the stage reads or writes, with defaults resolved from the run folder."""

    run: Path
    final: Path
    results: Path
    report: Path
    out: Path

    @property
    def name(self) -> str:
        return self.run.name


def resolve_paths(cfg: PublishConfig) -> RunPaths:
    """out/pretrain/<name> -> out/finetune/<name>/results.csv, out/report, out/publish/<name>."""
    if str(cfg.folder) in ("", "."):
        raise ConfigError("folder: give the pretraining run folder (--folder out/pretrain/<preset>-<strategy>)")
    run = Path(cfg.folder)
    out_root = run.parent.parent
    return RunPaths(
        run=run,
        final=run / "final",
        results=cfg.results or out_root / "finetune" / run.name / "results.csv",
        report=cfg.report_dir or out_root / "report",
        out=cfg.out_dir or out_root / "publish" / run.name,
    )
