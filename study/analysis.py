"""Numbers and verdict of the selection study, computed only from the runs' own files.

Reads, per run folder (`runs/<arm>-seed<k>/`, `runs-noise/<strategy>-seed<k>/`): `manifest.json`
(steps, tokens, parameters), `config.yaml` (the learning-rate schedule), `metrics.jsonl` (`eval`:
validation loss per language; `baseline`: the unigram loss per language; `selection`: the round
summaries), `timing.jsonl` (wall and scoring seconds), `finetune/results.csv`, and
`selection/round-*.jsonl` for the examples of scored blocks only, each with the reader of the
stage that writes it (`pretrain.runfiles`, `finetune.results`). Writes into the study folder:
`results.csv` (one row per run), `analysis.md` (the tables and the verdict, ready to paste into
docs/study.md), `analysis.json` (the same numbers), the raw tables `curves.csv`,
`downstream.csv` and `selection.csv`, and `figures/`.

The verdict applies the rules of docs/study.md ("How the verdict is computed") to the primary
metric: the mean over the study languages of the final validation loss, paired by seed, each
strategy minus the control. `verdict` and `gate_failures` are those rules; `compare_arms` runs
the tests of study.stats on a family of strategies.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from common.io import atomic_write, read_manifest, write_json
from finetune.results import ResultRow, read_results
from pretrain.runfiles import METRICS, TIMING, read_metrics, read_rounds, read_timing
from study import stats
from study.run import GRIDS, PARITY, PARITY_RECORD

CONFIRMED = "confirmed"
REFUTED = "refuted at this scale"
INCONCLUSIVE = "inconclusive"


# ------------------------------------------------------------------ reading the runs


@dataclass
class RunData:
    name: str
    arm: str  # the strategy, or `<control>+parity`
    seed: int
    folder: Path
    grid: str = "main"  # main | noise
    tokens: int = 0
    steps: int = 0
    params: int = 0
    curve: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> lang -> validation loss
    baseline: dict[str, float] = field(default_factory=dict)  # lang -> unigram validation loss
    rounds: list[dict] = field(default_factory=list)  # round summaries of the `selection` events
    train: dict = field(default_factory=dict)  # the run's `train` settings (schedule, decay_fraction, ...)
    wall_s: float = 0.0
    scoring_s: float = 0.0
    downstream: list[ResultRow] = field(default_factory=list)  # finetune results.csv rows
    complete: bool = False

    def loss(self, step: int, langs: Sequence[str]) -> float:
        """Validation loss at `step`, mean over `langs`."""
        return statistics.fmean(self.curve[step][lang] for lang in langs)

    @property
    def final_step(self) -> int:
        return max(self.curve)


def load_run(folder: Path, grid: str = "main") -> RunData | None:
    """One run's numbers; None when the folder is not a study run (no `<arm>-seed<k>` name)."""
    arm, _, seed = folder.name.rpartition("-seed")
    if not arm or not seed.isdigit():
        return None
    run = RunData(folder.name, arm, int(seed), folder, grid)
    manifest = read_manifest(folder)
    run.complete = manifest is not None
    summary = (manifest or {}).get("summary", {})
    run.tokens, run.steps, run.params = summary.get("tokens", 0), summary.get("steps", 0), summary.get("parameters", 0)
    if (folder / METRICS).exists():
        metrics = read_metrics(folder / METRICS)
        for rec in metrics.evals:
            run.curve[int(rec["step"])] = _losses(rec["langs"])
        run.baseline = _losses(metrics.baseline)
        run.rounds = [{"round": rec["round"], **rec.get("summary", {})} for rec in metrics.selections]
    if (folder / "config.yaml").exists():
        run.train = (yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}).get("train", {})
    if (folder / TIMING).exists():
        timing = read_timing(folder / TIMING)
        if timing:
            run.wall_s, run.scoring_s = timing[-1]["elapsed_s"], timing[-1]["scoring_s"]
    results = folder / "finetune" / "results.csv"
    if results.exists():
        run.downstream = read_results(results)
    return run


def _losses(langs: dict) -> dict[str, float]:
    """lang -> loss of an eval or baseline event's `langs` (languages without a loss left out)."""
    return {lang: v["loss"] for lang, v in langs.items() if v.get("loss") is not None}


def load_runs(folder: Path, grid: str = "main") -> list[RunData]:
    """The complete runs (a manifest and at least one evaluation) in `folder`, by name."""
    folder = Path(folder)
    runs = [load_run(p, grid) for p in sorted(folder.iterdir()) if p.is_dir()] if folder.exists() else []
    return [r for r in runs if r is not None and r.complete and r.curve]


def by_arm(runs: list[RunData], order: Sequence[str]) -> dict[str, list[RunData]]:
    groups: dict[str, list[RunData]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.seed):
        groups[run.arm].append(run)
    return {arm: groups[arm] for arm in order if groups.get(arm)}


def study_langs(runs: list[RunData]) -> list[str]:
    """The languages every run evaluated at its final step: the primary metric averages over them."""
    sets = [set(r.curve[r.final_step]) for r in runs]
    return sorted(set.intersection(*sets)) if sets else []


def pairs(group: list[RunData], control: list[RunData]) -> list[tuple[RunData, RunData]]:
    """(run, control run) of every seed in both groups, in seed order: they share initial weights,
    masks and validation masks."""
    ctrl = {r.seed: r for r in control}
    return [(r, ctrl[r.seed]) for r in group if r.seed in ctrl]


def final_diffs(group: list[RunData], control: list[RunData], langs: Sequence[str]) -> list[float]:
    return [r.loss(r.final_step, langs) - c.loss(c.final_step, langs) for r, c in pairs(group, control)]


# ------------------------------------------------------------------ the verdict rules


def verdict(
    mean: float,
    ci: tuple[float, float],
    p_t_holm: float,
    p_flip_holm: float,
    p_tost: float,
    alpha: float = 0.05,
    gate: Sequence[str] = (),
) -> str:
    """The verdict on one strategy from its paired differences (strategy − control, lower is better),
    as docs/study.md states it:
    - gate not met (any failure listed): inconclusive, naming the failures;
    - confirmed: Holm-adjusted p < alpha in the paired t-test and in the sign-flip test, and the 95%
      interval below 0 (a gain that TOST also finds within ±sesoi is marked as such);
    - refuted at this scale: the same significance with the interval above 0 (worse), or
      equivalent within ±sesoi by TOST at alpha;
    - inconclusive otherwise (nan p-values, i.e. too few pairs, never pass a test)."""
    if gate:
        return f"{INCONCLUSIVE} (gate not met: {'; '.join(gate)})"
    significant = p_t_holm < alpha and p_flip_holm < alpha
    if significant and ci[1] < 0:
        return CONFIRMED + (" (gain smaller than sesoi)" if p_tost < alpha else "")
    if significant and ci[0] > 0:
        return f"{REFUTED} (worse)"
    if p_tost < alpha:
        return f"{REFUTED} (equivalent within ±sesoi)"
    return INCONCLUSIVE


def gate_failures(final: dict[str, float], baseline: dict[str, float], margin: float) -> list[str]:
    """Each study language where the control's final loss is not at least `margin` nats below the
    unigram baseline, as `lang +0.123 < 0.3` (or `lang: no unigram baseline`); [] = gate met."""
    if not final:
        return ["no language evaluated at the end of every run"]
    if not baseline:
        return ["no unigram baseline recorded (no `baseline` event in metrics.jsonl)"]
    out = []
    for lang in sorted(final):
        if lang not in baseline:
            out.append(f"{lang}: no unigram baseline")
        elif baseline[lang] - final[lang] < margin:
            out.append(f"{lang} {baseline[lang] - final[lang]:+.3f} < {margin:g}")
    return out


def describe(diffs: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean paired difference, its t interval and the two p-values, without a verdict."""
    if not len(diffs):
        return {"n": 0, "mean_diff": None, "ci_low": None, "ci_high": None, "p_t": None, "p_sign_flip": None}
    t = stats.paired_t(diffs, confidence)
    return {
        "n": t.n,
        "mean_diff": t.mean,
        "sd_diff": t.sd,
        "ci_low": t.ci[0],
        "ci_high": t.ci[1],
        "p_t": t.p,
        "p_sign_flip": stats.sign_flip(diffs),
    }


def compare_arms(
    diffs: dict[str, Sequence[float]], alpha: float = 0.05, sesoi: float = 0.02, gate: Sequence[str] = ()
) -> list[dict]:
    """One row per strategy of the family `diffs` (strategy -> paired differences): mean, 95%
    interval, paired t and sign-flip p, both Holm-adjusted across the family, TOST p against
    ±sesoi, the minimum detectable effect (80% power at alpha / k) and the verdict."""
    names = [s for s, d in diffs.items() if len(d)]
    rows = [{"strategy": s, **describe(diffs[s])} for s in names]
    holm_t = stats.holm([r["p_t"] for r in rows])
    holm_flip = stats.holm([r["p_sign_flip"] for r in rows])
    for row, p_t, p_flip in zip(rows, holm_t, holm_flip):
        equivalence = stats.tost(diffs[row["strategy"]], sesoi, alpha)
        row.update(
            p_t_holm=p_t,
            p_sign_flip_holm=p_flip,
            p_tost=equivalence.p,
            tost_ci_low=equivalence.ci[0],
            tost_ci_high=equivalence.ci[1],
            mde=stats.min_detectable_effect(row["sd_diff"], row["n"], alpha, k=len(rows)),
            verdict=verdict(row["mean_diff"], (row["ci_low"], row["ci_high"]), p_t, p_flip, equivalence.p, alpha, gate),
        )
    return rows


# ------------------------------------------------------------------ learning curves


def decay_start(train: dict) -> int | None:
    """The last step before the learning rate starts to decay (pretrain/optim.py's wsd schedule);
    None for the other schedules, which decay from the end of warm-up on."""
    if train.get("schedule") != "wsd":
        return None
    total = int(train["max_steps"])
    return total - max(1, round(float(train.get("decay_fraction", 0.2)) * total))


def common_steps(runs: Sequence[RunData], langs: Sequence[str]) -> list[int]:
    steps = [{s for s, losses in r.curve.items() if all(lang in losses for lang in langs)} for r in runs]
    return sorted(set.intersection(*steps)) if steps else []


def step_rows(group: list[RunData], control: list[RunData], langs: Sequence[str], start: int | None) -> list[dict]:
    """Strategy − control at every evaluation step both evaluated (same step = same tokens and,
    for every arm, the same learning rate), paired by seed."""
    matched = pairs(group, control)
    runs = [r for pair in matched for r in pair]
    per_step = control[0].tokens / control[0].steps if control[0].steps else 0
    rows = []
    for step in common_steps(runs, langs):
        diffs = [r.loss(step, langs) - c.loss(step, langs) for r, c in matched]
        phase = "–" if start is None else ("decay" if step > start else "before decay")
        rows.append({"step": step, "tokens": round(step * per_step), "phase": phase, **describe(diffs)})
    return rows


def tokens_to_target(group: list[RunData], control: list[RunData], langs: Sequence[str], start: int | None) -> dict:
    """Per seed, the first evaluation step at which the strategy's loss is at or below the same-seed
    control's loss at the target step: the last step both evaluated before the learning rate
    decays, so an unannealed loss is never compared with an annealed one. Only with the wsd
    schedule (the others decay all along); ratio = step reached / target step."""
    if start is None:
        return {"target_step": None, "why": "schedule is not wsd: no checkpoint before the decay"}
    matched = pairs(group, control)
    steps = [s for s in common_steps([r for pair in matched for r in pair], langs) if s <= start]
    if not steps or steps[-1] == 0:
        return {"target_step": None, "why": f"no evaluation step in (0, {start}] (decay starts after step {start})"}
    target = steps[-1]
    reached = []
    for r, c in matched:
        goal = c.loss(target, langs)
        reached.append(next((s for s in steps if r.loss(s, langs) <= goal), None))
    ratios = [s / target for s in reached if s is not None]
    per_step = control[0].tokens / control[0].steps if control[0].steps else 0
    return {
        "target_step": target,
        "target_tokens": round(target * per_step),
        "seeds": [r.seed for r, _ in matched],
        "reached_steps": reached,
        "reached": f"{len(ratios)}/{len(reached)}",
        "mean_ratio": statistics.fmean(ratios) if ratios else None,
    }


def mean_curve(runs: list[RunData], langs: Sequence[str]) -> tuple[list[int], list[float], list[float]]:
    """(tokens, mean over seeds of the language-mean loss, sd over seeds) at the steps all evaluated."""
    steps = common_steps(runs, langs)
    values = np.array([[r.loss(s, langs) for s in steps] for r in runs])
    sd = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(steps))
    per_step = runs[0].tokens / runs[0].steps if runs[0].steps else 0
    return [round(s * per_step) for s in steps], values.mean(axis=0).tolist(), sd.tolist()


# ------------------------------------------------------------------ descriptive tables


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def downstream_scores(run: RunData) -> dict[tuple[str, str], float]:
    """(task, lang) -> test score (%), averaged over finetuning seeds."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in run.downstream:
        scores[(row["task"], row["lang"])].append(row["test_score"])
    return {k: statistics.fmean(v) for k, v in scores.items()}


def downstream_rows(groups: dict[str, list[RunData]], control: str) -> list[dict]:
    """Per task and language: each arm's mean ± sd, and its paired difference from the control
    (higher is better here; unadjusted p-values: a secondary measure, not in the verdict)."""
    rows = []
    keys = sorted({k for r in groups[control] for k in downstream_scores(r)})
    for task, lang in keys:
        for arm, group in groups.items():
            scores = {r.seed: downstream_scores(r).get((task, lang)) for r in group}
            got = [v for v in scores.values() if v is not None]
            m, sd = mean_sd(got)
            diffs = [
                scores[r.seed] - downstream_scores(c)[(task, lang)]
                for r, c in pairs(group, groups[control])
                if scores.get(r.seed) is not None and (task, lang) in downstream_scores(c)
            ]
            rows.append(
                {
                    "task": task,
                    "lang": lang,
                    "arm": arm,
                    "mean": m,
                    "sd": sd,
                    **({} if arm == control else describe(diffs)),
                }
            )
    return rows


def selection_rows(runs: list[RunData]) -> list[dict]:
    rows = []
    for run in runs:
        for summary in run.rounds:
            total = sum(v["chosen"] for v in summary.get("languages", {}).values()) or 1
            for lang, entry in sorted(summary.get("languages", {}).items()):
                rows.append(
                    {
                        "run": run.name,
                        "arm": run.arm,
                        "seed": run.seed,
                        "round": summary["round"],
                        "mode": summary.get("mode"),
                        "lang": lang,
                        "chosen": entry["chosen"],
                        "share": round(entry["chosen"] / total, 6),
                        "mean_score_candidates": entry.get("mean_score_candidates"),
                        "mean_score_chosen": entry.get("mean_score_chosen"),
                    }
                )
    return rows


def selection_shares(rows: list[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """arm -> round -> lang -> share of chosen blocks, mean over seeds."""
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        acc[row["arm"]][row["round"]][row["lang"]].append(row["share"])
    return {
        s: {r: {lang: statistics.fmean(v) for lang, v in langs.items()} for r, langs in rounds.items()}
        for s, rounds in acc.items()
    }


def choice_rows(runs: list[RunData]) -> list[dict]:
    """Per arm and round, mean over seeds: how the chosen blocks differ from the candidates
    (every strategy but `mix` keeps the same language quotas, so its choice is within languages)."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for s in run.rounds:
            gaps = [
                e["mean_score_chosen"] - e["mean_score_candidates"]
                for e in s.get("languages", {}).values()
                if e.get("mean_score_chosen") is not None and e.get("mean_score_candidates") is not None
            ]
            cell = acc[(run.arm, s["round"])]
            cell["mode"].append(s.get("mode"))
            cell["gap"].append(statistics.fmean(gaps) if gaps else math.nan)
            cell["chosen_before"].append(s.get("chosen_before", 0) / max(1, s.get("chosen", 0)))
            cell["junk_flagged"].append(s.get("junk_flagged", 0))
            cell["generated"].append((s.get("afrolm") or {}).get("blocks", 0))
    return [
        {
            "arm": k[0],
            "round": k[1],
            "mode": v["mode"][0],
            "score_gap": statistics.fmean(v["gap"]),
            "chosen_before": statistics.fmean(v["chosen_before"]),
            "junk_flagged": statistics.fmean(v["junk_flagged"]),
            "generated_blocks": statistics.fmean(v["generated"]),
        }
        for k, v in sorted(acc.items())
    ]


def noise_rows(runs: list[RunData], order: Sequence[str]) -> list[dict]:
    """Positive-control grid: per arm and round, the share of chosen blocks that were noise (the
    rounds' `noise_share`), mean ± sd over seeds, beside the share among the candidates
    (`noise_candidate_share`, what choosing at random keeps); [] when no round records it."""
    acc: dict = defaultdict(list)
    offered: dict = defaultdict(list)
    for run in runs:
        for s in run.rounds:
            if s.get("noise_share") is not None:
                acc[(run.arm, s["round"])].append(float(s["noise_share"]))
                if s.get("noise_candidate_share") is not None:
                    offered[(run.arm, s["round"])].append(float(s["noise_candidate_share"]))
    return [
        {
            "arm": arm,
            "round": rnd,
            "n": len(v),
            "noise_share": mean_sd(v)[0],
            "sd": mean_sd(v)[1],
            "candidate_share": mean_sd(offered[(arm, rnd)])[0] if offered[(arm, rnd)] else None,
        }
        for (arm, rnd), v in sorted(acc.items(), key=lambda kv: (list(order).index(kv[0][0]), kv[0][1]))
    ]


def result_rows(runs: list[RunData], langs: Sequence[str]) -> list[dict]:
    """results.csv: one row per run."""
    rows = []
    for r in runs:
        last = r.curve[r.final_step]
        here = [lang for lang in langs if lang in last]
        rows.append(
            {
                "grid": r.grid,
                "run": r.name,
                "arm": r.arm,
                "seed": r.seed,
                "steps": r.steps,
                "tokens": r.tokens,
                "params": r.params,
                "final_loss": r.loss(r.final_step, here) if here else None,
                **{f"loss_{lang}": last.get(lang) for lang in langs},
                **{f"unigram_{lang}": r.baseline.get(lang) for lang in langs},
                "wall_s": r.wall_s,
                "scoring_s": r.scoring_s,
                "scoring_share": round(r.scoring_s / r.wall_s, 4) if r.wall_s else None,
            }
        )
    return rows


def raw_tables(runs: list[RunData]) -> dict[str, list[dict]]:
    curves, downstream = [], []
    for run in runs:
        for step, losses in sorted(run.curve.items()):
            for lang, loss in sorted(losses.items()):
                curves.append(
                    {
                        "grid": run.grid,
                        "run": run.name,
                        "arm": run.arm,
                        "seed": run.seed,
                        "step": step,
                        "lang": lang,
                        "valid_loss": loss,
                    }
                )
        for row in run.downstream:
            downstream.append(
                {
                    "run": run.name,
                    "arm": run.arm,
                    "seed": run.seed,
                    "task": row["task"],
                    "lang": row["lang"],
                    "metric": row["metric"],
                    "finetune_seed": row["seed"],
                    "test_score": row["test_score"],
                    "dev_score": row["dev_score"],
                }
            )
    return {"curves": curves, "downstream": downstream, "selection": selection_rows(runs)}


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_write(path) as handle:
        handle.write(buf.getvalue())


# ------------------------------------------------------------------ examples of scored blocks


def block_examples(run: RunData, k: int, width: int = 160) -> list[dict]:
    """The k highest and k lowest scored clean candidates of the run's last scored round, as text."""
    if k <= 0:
        return []
    scored = [r for r in read_rounds(run.folder) if r.summary is not None and r.summary.get("mode") == "scored"]
    if not scored:
        return generated_examples(run, k, width)
    cands = [
        c for c in scored[-1].candidates if c.get("score") is not None and not c.get("generated") and not c.get("junk")
    ]
    cands.sort(key=lambda c: c["score"])
    picks = [("highest", c) for c in cands[::-1][:k]] + [("lowest", c) for c in cands[:k]]
    texts = decode_blocks(run, [c["block_id"] for _, c in picks])
    return [
        {
            "rank": rank,
            "round": c["round"],
            "lang": c["lang"],
            "score": c["score"],
            "chosen": c["chosen"],
            "text": t[:width] + ("…" if len(t) > width else ""),
        }
        for (rank, c), t in zip(picks, texts)
    ]


def generated_examples(run: RunData, k: int, width: int = 160) -> list[dict]:
    """`afrolm` scores nothing: show the first and last k blocks it generated (from the newest
    checkpoint's pool state, which holds every generated block)."""
    import torch
    from tokenizers import Tokenizer

    folders = sorted((run.folder / "checkpoints").glob("step-*"))
    if not folders:
        return []
    pool = torch.load(folders[-1] / "state.pt", map_location="cpu", weights_only=False).get("pool", {})
    blocks, langs = pool.get("gen_blocks", []), pool.get("gen_langs", [])
    if not len(langs):
        return []
    tok = Tokenizer.from_file(str(run.folder / "final" / "tokenizer.json"))
    picks = [("first generated", i) for i in range(min(k, len(langs)))]
    picks += [("last generated", i) for i in range(max(k, len(langs) - k), len(langs))]
    out = []
    for rank, i in picks:
        text = tok.decode([int(x) for x in blocks[i]], skip_special_tokens=True).replace("\n", " ")
        out.append(
            {
                "rank": rank,
                "round": None,
                "lang": langs[i],
                "score": None,
                "chosen": None,
                "text": text[:width] + ("…" if len(text) > width else ""),
            }
        )
    return out


def decode_blocks(run: RunData, ids: list[int]) -> list[str]:
    """The text of pool blocks `ids` of the run (noise blocks too: the pool is rebuilt with the
    run's `data.noise_share`)."""
    from tokenizers import Tokenizer

    from common.corpus import corpus_hash
    from pretrain.data import PackedBlockPool, cache_key, cache_root
    from tokenizer import tokenizer_hash

    cfg = yaml.safe_load((run.folder / "config.yaml").read_text(encoding="utf-8"))
    root = cache_root(cfg["data"]["cache_dir"], run.folder)
    key = cache_key(
        tokenizer_hash(Path(cfg["tokenizer_dir"])), corpus_hash(Path(cfg["corpus_dir"])), cfg["data"]["block_len"]
    )
    langs = sorted({lang for s in run.rounds for lang in s.get("languages", {})})
    pool = PackedBlockPool(
        root / key, langs, None, Path(cfg["corpus_dir"]), noise_share=float(cfg["data"].get("noise_share") or 0.0)
    )
    tok = Tokenizer.from_file(str(run.folder / "final" / "tokenizer.json"))
    return [
        tok.decode([int(i) for i in block], skip_special_tokens=True).replace("\n", " ") for block in pool.blocks(ids)
    ]


# ------------------------------------------------------------------ the analysis


def compute(cfg, runs: list[RunData], noise_runs: list[RunData] = (), parity: dict | None = None) -> dict | None:
    """Every number of analysis.md / analysis.json from the loaded runs; None without a control run."""
    parity_arm = cfg.parity_arm
    order = [*cfg.strategies, *([parity_arm] if parity_arm else [])]
    groups = by_arm([r for r in runs if r.arm in order], order)
    control = cfg.control
    if control not in groups:
        return None
    main = [r for arm, group in groups.items() for r in group]
    langs = study_langs(main)
    family = [s for s in groups if s not in (control, parity_arm)]

    finals = {lang: statistics.fmean(r.curve[r.final_step][lang] for r in groups[control]) for lang in langs}
    baselines: dict[str, list[float]] = defaultdict(list)
    for r in groups[control]:
        for lang, loss in r.baseline.items():
            baselines[lang].append(loss)
    baseline = {lang: statistics.fmean(v) for lang, v in baselines.items()}
    failures = gate_failures(finals, baseline, cfg.gate_margin)
    margins = {lang: baseline[lang] - finals[lang] for lang in langs if lang in baseline}
    if failures:
        gate_line = (
            f"**Gate not met**: `{control}` must end at least {cfg.gate_margin:g} nats below the unigram "
            f"baseline in every study language; it does not in: {'; '.join(failures)}. "
            "Every verdict is therefore inconclusive."
        )
    else:
        gate_line = (
            f"**Gate met**: `{control}` ends {min(margins.values()):.3f}–{max(margins.values()):.3f} nats "
            f"below the unigram baseline in all {len(langs)} study languages (needs {cfg.gate_margin:g})."
        )

    diffs = {s: final_diffs(groups[s], groups[control], langs) for s in family}
    verdicts = compare_arms(diffs, cfg.alpha, cfg.sesoi, failures)
    for row in verdicts:
        row["diffs"] = diffs[row["strategy"]]
    per_language = []
    for arm, group in groups.items():
        for lang in [*langs, "mean"]:
            values = [r.loss(r.final_step, langs if lang == "mean" else [lang]) for r in group]
            per_language.append({"arm": arm, "lang": lang, **dict(zip(("mean", "sd"), mean_sd(values)))})

    start = decay_start(groups[control][0].train)
    steps = {s: step_rows(groups[s], groups[control], langs, start) for s in family}
    targets = {s: tokens_to_target(groups[s], groups[control], langs, start) for s in family}

    parity_rows = []
    if parity_arm in groups:
        parity_rows.append(
            {
                "comparison": f"{parity_arm} − {control}",
                **describe(final_diffs(groups[parity_arm], groups[control], langs)),
            }
        )
        parity_rows += [
            {"comparison": f"{s} − {parity_arm}", **describe(final_diffs(groups[s], groups[parity_arm], langs))}
            for s in family
        ]

    noise: dict = {"runs": len(noise_runs)}
    if noise_runs:
        ngroups = by_arm(noise_runs, cfg.strategies)
        nlangs = study_langs(noise_runs)
        noise["rounds"] = noise_rows(noise_runs, cfg.strategies)
        noise["final"] = [
            {"comparison": f"{s} − {control}", **describe(final_diffs(g, ngroups[control], nlangs))}
            for s, g in ngroups.items()
            if s != control and control in ngroups
        ]

    scoring = [
        {
            "arm": arm,
            "scoring_s": statistics.fmean(r.scoring_s for r in g),
            "wall_s": statistics.fmean(r.wall_s for r in g),
            "share": mean_sd([r.scoring_s / r.wall_s for r in g if r.wall_s]),
        }
        for arm, g in groups.items()
    ]
    return {
        "settings": {
            "control": control,
            "alpha": cfg.alpha,
            "sesoi": cfg.sesoi,
            "gate_margin": cfg.gate_margin,
            "parity_arm": parity_arm,
            "family": family,
        },
        "langs": langs,
        "seeds": {arm: [r.seed for r in g] for arm, g in groups.items()},
        "tokens": {arm: sorted({r.tokens for r in g}) for arm, g in groups.items()},
        "gate": {"met": not failures, "failures": failures, "margins": margins, "line": gate_line},
        "verdicts": verdicts,
        "per_language": per_language,
        "schedule": {"name": groups[control][0].train.get("schedule"), "decay_start": start},
        "steps": steps,
        "tokens_to_target": targets,
        "parity": {"record": parity, "rows": parity_rows},
        "noise": noise,
        "downstream": downstream_rows(groups, control),
        "scoring": scoring,
        "shares": selection_shares(selection_rows(main)),
        "choice": sorted(
            choice_rows([r for r in main if r.arm != parity_arm]), key=lambda r: (order.index(r["arm"]), r["round"])
        ),
        "curves": {arm: mean_curve(g, langs) for arm, g in groups.items()},
    }


def _clean(value):
    """JSON without NaN: nan -> null, tuples -> lists, int keys kept as strings."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(row: dict, digits: int = 3) -> str:
    return f"[{fmt(row.get('ci_low'), digits)}, {fmt(row.get('ci_high'), digits)}]"


def markdown(result: dict, examples: dict | None = None, figures: Sequence[Path] = ()) -> str:
    s = result["settings"]
    control, langs = s["control"], result["langs"]
    out = ["## Results\n", result["gate"]["line"] + "\n"]
    seeds = ", ".join(f"{arm}: {len(v)}" for arm, v in result["seeds"].items())
    out.append(
        f"Primary metric: the final validation loss (nats) averaged over the {len(langs)} study languages "
        f"({', '.join(langs)}); Δ = strategy − `{control}` per seed (negative: the strategy is better). "
        f"Seeds per arm: {seeds}. Holm across the {len(s['family'])} strategies, alpha {s['alpha']:g}, "
        f"sesoi ±{s['sesoi']:g} nats; MDE = the smallest true Δ found with 80% power at alpha / "
        f"{len(s['family'])}.\n"
    )
    out.append(
        "| strategy | n | mean Δ | 95% CI | p (t) | p (sign-flip) | Holm p (t) | Holm p (sign-flip) | "
        "TOST p | MDE | verdict |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in result["verdicts"]:
        out.append(
            f"| {r['strategy']} | {r['n']} | {fmt(r['mean_diff'], 4)} | {_ci(r, 4)} | {fmt_p(r['p_t'])} | "
            f"{fmt_p(r['p_sign_flip'])} | {fmt_p(r['p_t_holm'])} | {fmt_p(r['p_sign_flip_holm'])} | "
            f"{fmt_p(r['p_tost'])} | {fmt(r['mde'], 4)} | {r['verdict']} |"
        )

    out.append("\n### Final validation loss per language (mean ± sd over seeds; lower is better)\n")
    cells = {(r["arm"], r["lang"]): f"{fmt(r['mean'])} ± {fmt(r['sd'])}" for r in result["per_language"]}
    out.append("| arm | " + " | ".join(langs) + " | mean |")
    out.append("|---" * (len(langs) + 2) + "|")
    for arm in result["seeds"]:
        out.append(f"| {arm} | " + " | ".join(cells[(arm, lang)] for lang in [*langs, "mean"]) + " |")

    parity = result["parity"]
    if parity["rows"]:
        record = parity["record"] or {}
        how = (
            (
                f"{record['extra_steps']} extra steps ({record['source']}"
                + (
                    f": {record['scoring_s']} s of scoring / {record['seconds_per_step']} s a step"
                    if "scoring_s" in record
                    else ""
                )
                + ")"
            )
            if record
            else "extra steps not recorded"
        )
        out.append(f"\n### At equal compute: `{s['parity_arm']}` ({how})\n")
        out.append(
            "Descriptive, not part of the verdict: the control given the training steps that the scoring "
            "time would have bought.\n"
        )
        out.append("| comparison | n | mean Δ | 95% CI | p (t) | p (sign-flip) |")
        out.append("|---|---|---|---|---|---|")
        for r in parity["rows"]:
            out.append(
                f"| {r['comparison']} | {r['n']} | {fmt(r['mean_diff'], 4)} | {_ci(r, 4)} | {fmt_p(r['p_t'])} | "
                f"{fmt_p(r['p_sign_flip'])} |"
            )

    schedule = result["schedule"]
    out.append(
        f"\n### Paired differences at every evaluation step (Δ mean [95% CI], nats; schedule "
        f"{schedule['name']}"
        + (f", decay after step {schedule['decay_start']}" if schedule["decay_start"] is not None else "")
        + ")\n"
    )
    family = s["family"]
    all_steps = sorted({r["step"] for rows in result["steps"].values() for r in rows})
    if family and all_steps:
        get = {(arm, r["step"]): r for arm, rows in result["steps"].items() for r in rows}
        first = next(rows for rows in result["steps"].values() if rows)
        tokens = {r["step"]: (r["tokens"], r["phase"]) for r in first}
        out.append("| step | tokens | phase | " + " | ".join(family) + " |")
        out.append("|---" * (len(family) + 3) + "|")
        for step in all_steps:
            tok, phase = tokens.get(step, ("–", "–"))
            row = [
                f"{fmt(get[(a, step)]['mean_diff'], 4)} {_ci(get[(a, step)], 3)}" if (a, step) in get else "–"
                for a in family
            ]
            out.append(f"| {step} | {fmt(tok)} | {phase} | " + " | ".join(row) + " |")

    out.append("\n### Tokens to reach the control's loss before the learning-rate decay\n")
    targets = result["tokens_to_target"]
    known = [t for t in targets.values() if t.get("target_step") is not None]
    if not known:
        why = next((t["why"] for t in targets.values()), "no strategy to compare")
        out.append(f"Not computed: {why}.")
    else:
        t0 = known[0]
        out.append(
            f"Target: the same-seed `{control}` run's loss at step {t0['target_step']} "
            f"({t0['target_tokens']:,} tokens), the last evaluation before the decay. Per seed, the first "
            "evaluation step at which the strategy is at or below it (– = not by then).\n"
        )
        out.append("| strategy | reached | mean step ratio | step reached per seed |")
        out.append("|---|---|---|---|")
        for arm, t in targets.items():
            if t.get("target_step") is None:
                continue
            per_seed = ", ".join(
                f"{seed}: {'–' if s_ is None else s_}" for seed, s_ in zip(t["seeds"], t["reached_steps"])
            )
            out.append(f"| {arm} | {t['reached']} | {fmt(t['mean_ratio'])} | {per_seed} |")

    noise = result["noise"]
    if noise["runs"]:
        out.append(f"\n### Positive control ({noise['runs']} runs in {GRIDS['noise']}/)\n")
        if noise["rounds"]:
            rounds = sorted({r["round"] for r in noise["rounds"]})
            get = {(r["arm"], r["round"]): r for r in noise["rounds"]}
            arms = list(dict.fromkeys(r["arm"] for r in noise["rounds"]))
            out.append(
                "Share of chosen blocks that were noise, per round (mean ± sd over seeds; in brackets the "
                "share among the round's candidates, what choosing at random keeps). A strategy that works "
                "chooses less noise than `random`.\n"
            )
            out.append("| arm | " + " | ".join(f"round {r}" for r in rounds) + " |")
            out.append("|---" * (len(rounds) + 1) + "|")

            def cell(row: dict) -> str:
                offered = "" if row["candidate_share"] is None else f" ({100 * row['candidate_share']:.1f}%)"
                return f"{100 * row['noise_share']:.1f}% ± {100 * row['sd']:.1f}{offered}"

            for arm in arms:
                out.append(
                    f"| {arm} | " + " | ".join(cell(get[(arm, r)]) if (arm, r) in get else "–" for r in rounds) + " |"
                )
        else:
            out.append("No round of these runs records a `noise_share`.")
        if noise.get("final"):
            out.append("\n| comparison (final loss) | n | mean Δ | 95% CI | p (t) | p (sign-flip) |")
            out.append("|---|---|---|---|---|---|")
            for r in noise["final"]:
                out.append(
                    f"| {r['comparison']} | {r['n']} | {fmt(r['mean_diff'], 4)} | {_ci(r, 4)} | "
                    f"{fmt_p(r['p_t'])} | {fmt_p(r['p_sign_flip'])} |"
                )

    if result["downstream"]:
        out.append("\n### Downstream test scores (%, mean ± sd over pretraining seeds; higher is better)\n")
        out.append(f"Secondary, not part of the verdict; Δ vs `{control}` with its 95% CI and unadjusted p (t).\n")
        out.append("| task | lang | arm | score | Δ | 95% CI | p (t) |")
        out.append("|---|---|---|---|---|---|---|")
        for r in result["downstream"]:
            out.append(
                f"| {r['task']} | {r['lang']} | {r['arm']} | {fmt(r['mean'], 2)} ± {fmt(r['sd'], 2)} | "
                f"{fmt(r.get('mean_diff'), 2)} | {_ci(r, 2) if 'ci_low' in r else '–'} | "
                f"{fmt_p(r.get('p_t'))} |"
            )

    out.append("\n### Scoring time as a share of wall time\n")
    out.append("| arm | share (mean ± sd) | scoring s of wall s (mean) |")
    out.append("|---|---|---|")
    for r in result["scoring"]:
        m, sd = r["share"]
        out.append(
            f"| {r['arm']} | {fmt(100 * m, 1)}% ± {fmt(100 * sd, 1)} | {r['scoring_s']:.1f} s of {r['wall_s']:.1f} s |"
        )

    shares = result["shares"]
    all_langs = sorted({lang for a in shares.values() for r in a.values() for lang in r})
    if all_langs:
        out.append("\n### Share of chosen blocks per language, per round (mean over seeds)\n")
        out.append("| arm | round | " + " | ".join(all_langs) + " |")
        out.append("|---" * (len(all_langs) + 2) + "|")
        for arm, rounds in shares.items():
            for rnd, share in sorted(rounds.items()):
                out.append(
                    f"| {arm} | {rnd} | " + " | ".join(f"{100 * share.get(x, 0):.1f}%" for x in all_langs) + " |"
                )
        out.append(
            "\nEvery strategy but `mix` gets the same per-language quotas, so they differ in which blocks "
            "they take within a language:\n"
        )
        out.append(
            "| arm | round | mode | mean score, chosen − candidates | re-chosen from earlier rounds | "
            "junk flagged | afrolm generated blocks |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for r in result["choice"]:
            out.append(
                f"| {r['arm']} | {r['round']} | {r['mode']} | {fmt(r['score_gap'])} | "
                f"{100 * r['chosen_before']:.1f}% | {r['junk_flagged']:.1f} | {r['generated_blocks']:.1f} |"
            )

    if examples and any(examples.values()):
        out.append("\n### Highest and lowest scored blocks (last scored round, first seed; afrolm: generated blocks)\n")
        for arm, items in examples.items():
            if items:
                out.append(f"**{arm}**\n")
                for e in items:
                    score = "" if e["score"] is None else f", score {e['score']:.3f}"
                    out.append(
                        f"- {e['rank']}, {e['lang']}{score}{', chosen' if e['chosen'] else ''}: "
                        + e["text"].replace("|", "\\|")
                    )
                out.append("")
    if figures:
        out.append("\n### Figures\n")
        out.append("\n".join(f"![{p.stem}](figures/{p.name})" for p in figures))
    return "\n".join(out) + "\n"


def figure_data(result: dict) -> dict:
    """The plain numbers study.figures draws."""
    langs = result["langs"]
    final = defaultdict(dict)
    for r in result["per_language"]:
        final[r["arm"]][r["lang"]] = (r["mean"], r["sd"])
    downstream = defaultdict(dict)
    for r in result["downstream"]:
        downstream[r["arm"]][(r["task"], r["lang"])] = (r["mean"], r["sd"])
    return {
        "arms": list(result["seeds"]),
        "langs": langs,
        "final": dict(final),
        "curves": result["curves"],
        "differences": {
            r["strategy"]: (r["diffs"], r["mean_diff"], (r["ci_low"], r["ci_high"])) for r in result["verdicts"]
        },
        "sesoi": result["settings"]["sesoi"],
        "control": result["settings"]["control"],
        "shares": result["shares"],
        "downstream": dict(downstream),
    }


def analyse(cfg, log=print) -> dict | None:
    """Write results.csv, analysis.md, analysis.json, the raw tables and figures from the complete
    runs under `cfg.out_dir`; None (and a line saying so) without a complete control run."""
    from study.figures import write_figures

    out = Path(cfg.out_dir)
    runs = load_runs(out / GRIDS["main"], "main")
    noise_runs = [r for r in load_runs(out / GRIDS["noise"], "noise") if r.arm in cfg.strategies]
    record = out / PARITY_RECORD
    parity = json.loads(record.read_text(encoding="utf-8")) if record.exists() else None
    result = compute(cfg, runs, noise_runs, parity)
    if result is None:
        log(f"[study] analysis: no complete `{cfg.control}` run yet in {out / GRIDS['main']}; nothing to compare")
        return None
    used = [r for r in [*runs, *noise_runs] if r.arm in (*cfg.strategies, f"{cfg.control}{PARITY}")]
    write_csv(out / "results.csv", result_rows(used, result["langs"]))
    for name, table in raw_tables(used).items():
        write_csv(out / f"{name}.csv", table)
    examples = {}
    for arm in cfg.strategies:
        first = next((r for r in runs if r.arm == arm), None)
        if first is None:
            continue
        try:
            examples[arm] = block_examples(first, cfg.examples)
        except (OSError, KeyError, ValueError) as err:  # examples need the block cache; tables do not
            log(f"[study] analysis: no block examples for {arm}: {err}")
    figures = write_figures(out / "figures", figure_data(result))
    with atomic_write(out / "analysis.md") as handle:
        handle.write(markdown(result, examples, figures))
    write_json(out / "analysis.json", _clean({k: v for k, v in result.items() if k != "curves"}))
    verdicts = ", ".join(f"{r['strategy']}: {r['verdict']}" for r in result["verdicts"]) or "no strategy to compare"
    log(
        f"[study] analysis of {len(used)} runs: {out / 'analysis.md'}, {out / 'analysis.json'}, "
        f"{out / 'results.csv'}; {verdicts}"
    )
    return result
