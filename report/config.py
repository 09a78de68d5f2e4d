"""Settings of the report builder (`python -m report.build key=value ...`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def _doc(text: str, **kwargs):
    return field(metadata={"help": text}, **kwargs)


@dataclass
class ReportConfig:
    out_dir: Path = _doc("the run root holding corpus/, tokenizer/, pretrain/, finetune/", default=Path("out"))
    run: list[str] | str = _doc(
        "run folder name(s) `<preset>-<strategy>` under pretrain/ and finetune/; "
        "several are shown side by side; empty = every run found",
        default_factory=list,
    )
    tokenizer_dir: Path | None = _doc("the tokenizer stage's folder (default <out_dir>/tokenizer/tiny)", default=None)
    report_dir: Path | None = _doc("where report.html and figures/ go (default <out_dir>/report)", default=None)
    title: str = _doc("heading of the report", default="Pretraining run report")
    dpi: int = _doc("resolution of the PNG figures", default=110)
    samples_per_reason: int = _doc("rejected corpus lines shown per drop reason", default=5)
    score_rounds: int = _doc(
        "selection rounds shown in the score-distribution figure (evenly spaced, first and last included)", default=6
    )
    force: bool = _doc("rebuild even when the manifest says inputs and settings are unchanged", default=False)

    def __post_init__(self) -> None:
        if isinstance(self.run, str):  # run=tiny-loss or run=tiny-loss,tiny-random on the command line
            self.run = [name.strip() for name in self.run.split(",") if name.strip()]
        if self.tokenizer_dir is None:
            self.tokenizer_dir = Path(self.out_dir) / "tokenizer" / "tiny"
        if self.report_dir is None:
            self.report_dir = Path(self.out_dir) / "report"
        for name in ("dpi", "samples_per_reason", "score_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.dpi > 600:
            raise ValueError(f"dpi={self.dpi} is more than 600; the HTML embeds every figure")
        for name in self.run:
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"run: {name!r} is not a run folder name (expected <preset>-<strategy>)")
