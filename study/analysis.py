"""Numbers of the selection study (issue 9), computed only from the runs' raw files.

Reads, per run folder: `manifest.json` (tokens, steps), `metrics.jsonl` (validation loss per
language at every `eval_every` steps), `timing.jsonl` (scoring and wall time),
`selection/round-*.jsonl` (what was chosen), `finetune/results.csv` (downstream scores).
Writes into the study folder: the raw tables (`curves.csv`, `downstream.csv`, `timing.csv`,
`selection.csv`) from which every number can be recomputed, the summary `study.csv`,
`study.md`, and figures under `figures/`.

Seed-to-seed spread: a difference from the control "exceeds the spread" when the two ±1 std
bars do not overlap, |mean_s - mean_c| > std_s + std_c (sample std over pretraining seeds).
Runs with the same seed share initial weights and validation masks, so the paired count
(in how many seeds the strategy beat the control) is reported beside it.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.io import atomic_write, read_manifest

LOWER_IS_BETTER = {"valid_loss": True, "downstream": False}


@dataclass
class RunData:
    name: str
    strategy: str
    seed: int
    folder: Path
    tokens: int = 0
    steps: int = 0
    params: int = 0
    curve: dict[int, dict[str, float]] = field(default_factory=dict)  # tokens -> lang -> loss
    wall_s: float = 0.0
    scoring_s: float = 0.0
    rounds: list[dict] = field(default_factory=list)  # round summaries
    downstream: list[dict] = field(default_factory=list)  # results.csv rows
    complete: bool = False


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_run(folder: Path) -> RunData | None:
    """One run's numbers; None when the folder is not a study run (no `<strategy>-seed<k>` name)."""
    name = folder.name
    if "-seed" not in name:
        return None
    strategy, seed = name.rsplit("-seed", 1)
    run = RunData(name, strategy, int(seed), folder)
    manifest = read_manifest(folder)
    run.complete = manifest is not None
    summary = (manifest or {}).get("summary", {})
    run.tokens, run.steps, run.params = summary.get("tokens", 0), summary.get("steps", 0), summary.get("parameters", 0)
    records = _jsonl(folder / "metrics.jsonl")
    per_step = run.tokens / run.steps if run.steps else 0
    for rec in records:
        if rec.get("event") == "eval":
            run.curve[int(rec["step"] * per_step)] = {k: v["loss"] for k, v in rec["langs"].items()
                                                      if v.get("loss") is not None}
    timing = _jsonl(folder / "timing.jsonl")
    if timing:
        run.wall_s, run.scoring_s = timing[-1]["elapsed_s"], timing[-1]["scoring_s"]
    for path in sorted((folder / "selection").glob("round-*.jsonl")):
        lines = _jsonl(path)
        if lines and lines[-1].get("type") == "summary":
            run.rounds.append(lines[-1])
    results = folder / "finetune" / "results.csv"
    if results.exists():
        with open(results, newline="", encoding="utf-8") as handle:
            run.downstream = list(csv.DictReader(handle))
    return run


def load_runs(study_dir: Path) -> list[RunData]:
    runs = [load_run(p) for p in sorted((Path(study_dir) / "runs").iterdir()) if p.is_dir()] \
        if (Path(study_dir) / "runs").exists() else []
    return [r for r in runs if r is not None and r.complete]


# ------------------------------------------------------------------ statistics


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def common_langs(runs: list[RunData]) -> list[str]:
    """Languages with a validation loss at every checkpoint of every run (fair averages)."""
    sets = [set.intersection(*(set(v) for v in r.curve.values())) for r in runs if r.curve]
    return sorted(set.intersection(*sets)) if sets else []


def final_loss(run: RunData, lang: str | None, langs: list[str]) -> float:
    last = run.curve[max(run.curve)]
    return last[lang] if lang else statistics.fmean(last[x] for x in langs)


def mean_curve(runs: list[RunData], langs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, mean over seeds of the language-averaged loss, std over seeds) at shared checkpoints."""
    tokens = sorted(set.intersection(*(set(r.curve) for r in runs)))
    per_run = np.array([[statistics.fmean(r.curve[t][x] for x in langs) for t in tokens] for r in runs])
    std = per_run.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(tokens))
    return np.array(tokens), per_run.mean(axis=0), std


def tokens_to_reach(tokens: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    """First token count at which `curve` reaches `target` (linear between checkpoints), else None."""
    for i, value in enumerate(curve):
        if value <= target:
            if i == 0:
                return float(tokens[0])
            prev = curve[i - 1]
            frac = (prev - target) / (prev - value) if prev != value else 1.0
            return float(tokens[i - 1] + frac * (tokens[i] - tokens[i - 1]))
    return None


def compare(values: list[float], control: list[float], lower_is_better: bool) -> dict:
    """Difference from the control and whether it exceeds the seed-to-seed spread."""
    if any(np.isnan(v) for v in [*values, *control]):
        return {"mean": mean_std(values)[0], "std": mean_std(values)[1], "n": len(values), "diff": None,
                "exceeds_spread": None, "seeds_better": None, "verdict": "missing"}
    m, s = mean_std(values)
    mc, sc = mean_std(control)
    diff = m - mc
    exceeds = abs(diff) > s + sc
    better = (diff < 0) == lower_is_better and diff != 0
    paired = sum((v < c) == lower_is_better and v != c for v, c in zip(values, control))
    verdict = "same as control" if values == control else (
        ("better" if better else "worse") + (" (exceeds spread)" if exceeds else " (within spread)"))
    return {"mean": m, "std": s, "n": len(values), "diff": diff, "exceeds_spread": exceeds,
            "seeds_better": f"{paired}/{min(len(values), len(control))}", "verdict": verdict}


# ------------------------------------------------------------------ tables


def by_strategy(runs: list[RunData], order: list[str]) -> dict[str, list[RunData]]:
    groups: dict[str, list[RunData]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.seed):
        groups[run.strategy].append(run)
    return {s: groups[s] for s in order if groups.get(s)}


def paired_values(group: list[RunData], control: list[RunData], value) -> tuple[list[float], list[float]]:
    """Values of the seeds present in both groups, in seed order (pairs share init and masks)."""
    seeds = sorted({r.seed for r in group} & {r.seed for r in control})
    pick = lambda runs: [value(next(r for r in runs if r.seed == s)) for s in seeds]  # noqa: E731
    return pick(group), pick(control)


def downstream_rows(run: RunData) -> dict[tuple[str, str], float]:
    """(task, lang) -> test score (%), averaged over finetuning seeds."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in run.downstream:
        if row.get("test_score") not in (None, ""):
            scores[(row["task"], row["lang"])].append(float(row["test_score"]))
    return {k: statistics.fmean(v) for k, v in scores.items()}


def paired_ratios(group: list[RunData], control: list[RunData], langs: list[str]) -> list[float | None]:
    """Per seed: tokens this run needs to reach the same-seed control run's final loss (language
    mean) / the control run's tokens; None where it never does."""
    out = []
    for run in group:
        ctrl = next((c for c in control if c.seed == run.seed), None)
        if ctrl is None:
            continue
        tokens, curve, _ = mean_curve([run], langs)
        reached = tokens_to_reach(tokens, curve, final_loss(ctrl, None, langs))
        out.append(None if reached is None else reached / max(ctrl.curve))
    return out


def summary_rows(groups: dict[str, list[RunData]], control: str, langs: list[str]) -> list[dict]:
    """The study table: one row per strategy and measure (valid loss per language and mean,
    tokens to reach the control's final loss, downstream score, scoring share)."""
    rows = []
    ctrl = groups[control]
    _, ctrl_curve, _ = mean_curve(ctrl, langs)
    target, ctrl_tokens = float(ctrl_curve[-1]), max(max(r.curve) for r in ctrl)
    tasks = sorted({k for r in ctrl for k in downstream_rows(r)})
    for strategy, group in groups.items():
        for lang in [*langs, None]:
            vals, cvals = paired_values(group, ctrl, lambda r: final_loss(r, lang, langs))
            rows.append({"strategy": strategy, "measure": "final_valid_loss", "key": lang or "mean",
                         **compare(vals, cvals, True)})
        tokens, curve, _ = mean_curve(group, langs)
        reached = tokens_to_reach(tokens, curve, target)
        paired = paired_ratios(group, ctrl, langs)
        got = [r for r in paired if r is not None]
        rows.append({"strategy": strategy, "measure": "tokens_to_control_final_loss", "key": "mean",
                     "mean": reached, "std": None, "n": len(group), "diff": None, "exceeds_spread": None,
                     "seeds_better": None,
                     "verdict": "not reached" if reached is None else f"ratio {reached / ctrl_tokens:.3f}",
                     "ratio": None if reached is None else reached / ctrl_tokens,
                     "paired_ratio_mean": mean_std(got)[0] if got else None,
                     "paired_ratio_std": mean_std(got)[1] if got else None,
                     "paired_reached": f"{len(got)}/{len(paired)}"})
        for task, lang in tasks:
            vals, cvals = paired_values(group, ctrl, lambda r: downstream_rows(r).get((task, lang), float("nan")))
            rows.append({"strategy": strategy, "measure": f"downstream_{task}", "key": lang,
                         **compare(vals, cvals, False)})
        shares = [r.scoring_s / r.wall_s if r.wall_s else float("nan") for r in group]
        m, s = mean_std(shares)
        rows.append({"strategy": strategy, "measure": "scoring_share_of_wall", "key": "all", "mean": m, "std": s,
                     "n": len(group), "diff": None, "exceeds_spread": None, "seeds_better": None,
                     "verdict": f"{statistics.fmean(r.scoring_s for r in group):.1f} s of "
                                f"{statistics.fmean(r.wall_s for r in group):.1f} s"})
    return rows


def selection_rows(runs: list[RunData]) -> list[dict]:
    rows = []
    for run in runs:
        for summary in run.rounds:
            total = sum(v["chosen"] for v in summary["languages"].values()) or 1
            for lang, entry in sorted(summary["languages"].items()):
                rows.append({"run": run.name, "strategy": run.strategy, "seed": run.seed, "round": summary["round"],
                             "mode": summary.get("mode"), "lang": lang, "chosen": entry["chosen"],
                             "share": round(entry["chosen"] / total, 6),
                             "mean_score_candidates": entry.get("mean_score_candidates"),
                             "mean_score_chosen": entry.get("mean_score_chosen")})
    return rows


def choice_rows(runs: list[RunData]) -> list[dict]:
    """Per strategy and round, mean over seeds: how the chosen blocks differ from the candidates
    (every strategy but `mix` keeps the same language quotas, so its choice is within languages;
    `mix` moves the quotas themselves)."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for s in run.rounds:
            langs = s["languages"].values()
            gaps = [e["mean_score_chosen"] - e["mean_score_candidates"] for e in langs
                    if e.get("mean_score_chosen") is not None and e.get("mean_score_candidates") is not None]
            acc[(run.strategy, s["round"])]["mode"].append(s.get("mode"))
            acc[(run.strategy, s["round"])]["gap"].append(statistics.fmean(gaps) if gaps else float("nan"))
            acc[(run.strategy, s["round"])]["chosen_before"].append(s.get("chosen_before", 0) / max(1, s["chosen"]))
            acc[(run.strategy, s["round"])]["junk_flagged"].append(s.get("junk_flagged", 0))
            acc[(run.strategy, s["round"])]["generated"].append((s.get("afrolm") or {}).get("blocks", 0))
    return [{"strategy": k[0], "round": k[1], "mode": v["mode"][0],
             "score_gap": statistics.fmean(v["gap"]), "chosen_before": statistics.fmean(v["chosen_before"]),
             "junk_flagged": statistics.fmean(v["junk_flagged"]), "generated_blocks": statistics.fmean(v["generated"])}
            for k, v in sorted(acc.items(), key=lambda kv: kv[0])]


def selection_shares(rows: list[dict]) -> dict[str, dict[int, dict[str, float]]]:
    """strategy -> round -> lang -> share of chosen blocks, mean over seeds."""
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        acc[row["strategy"]][row["round"]][row["lang"]].append(row["share"])
    return {s: {r: {lang: statistics.fmean(v) for lang, v in langs.items()} for r, langs in rounds.items()}
            for s, rounds in acc.items()}


def raw_tables(runs: list[RunData]) -> dict[str, list[dict]]:
    curves, downstream, timing = [], [], []
    for run in runs:
        for tokens, langs in sorted(run.curve.items()):
            for lang, loss in sorted(langs.items()):
                curves.append({"run": run.name, "strategy": run.strategy, "seed": run.seed,
                               "tokens": tokens, "lang": lang, "valid_loss": loss})
        for row in run.downstream:
            downstream.append({"run": run.name, "strategy": run.strategy, "seed": run.seed,
                               "task": row["task"], "lang": row["lang"], "metric": row["metric"],
                               "finetune_seed": row["seed"], "test_score": row["test_score"],
                               "dev_score": row["dev_score"]})
        timing.append({"run": run.name, "strategy": run.strategy, "seed": run.seed, "params": run.params,
                       "steps": run.steps, "tokens": run.tokens, "wall_s": run.wall_s, "scoring_s": run.scoring_s,
                       "scoring_share": round(run.scoring_s / run.wall_s, 4) if run.wall_s else None})
    return {"curves": curves, "downstream": downstream, "timing": timing, "selection": selection_rows(runs),
            "choice": choice_rows(runs)}


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
    scored = [p for p in sorted((run.folder / "selection").glob("round-*.jsonl"))
              if _jsonl(p)[-1].get("mode") == "scored"]
    if k <= 0:
        return []
    if not scored:
        return generated_examples(run, k, width)
    cands = [c for c in _jsonl(scored[-1]) if c.get("type") == "candidate" and c.get("score") is not None
             and not c.get("generated") and not c.get("junk")]
    cands.sort(key=lambda c: c["score"])
    picks = [("highest", c) for c in cands[::-1][:k]] + [("lowest", c) for c in cands[:k]]
    texts = decode_blocks(run, [c["block_id"] for _, c in picks])
    return [{"rank": rank, "round": c["round"], "lang": c["lang"], "score": c["score"], "chosen": c["chosen"],
             "text": t[:width] + ("…" if len(t) > width else "")} for (rank, c), t in zip(picks, texts)]


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
        out.append({"rank": rank, "round": None, "lang": langs[i], "score": None, "chosen": None,
                    "text": text[:width] + ("…" if len(text) > width else "")})
    return out


def decode_blocks(run: RunData, ids: list[int]) -> list[str]:
    import yaml
    from tokenizers import Tokenizer

    from common.corpus import corpus_hash
    from pretrain.data import PackedBlockPool, cache_key, tokenizer_hash

    cfg = yaml.safe_load((run.folder / "config.yaml").read_text(encoding="utf-8"))
    cache_root = Path(cfg["data"]["cache_dir"] or run.folder.parent / "cache")
    key = cache_key(tokenizer_hash(Path(cfg["tokenizer_dir"])), corpus_hash(Path(cfg["corpus_dir"])),
                    cfg["data"]["block_len"])
    langs = sorted({s_lang for s in run.rounds for s_lang in s["languages"]})
    pool = PackedBlockPool(cache_root / key, langs, None, Path(cfg["corpus_dir"]))
    tok = Tokenizer.from_file(str(run.folder / "final" / "tokenizer.json"))
    return [tok.decode([int(i) for i in block], skip_special_tokens=True).replace("\n", " ")
            for block in pool.blocks(ids)]


# ------------------------------------------------------------------ report


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(groups, control, langs, rows, examples, shares, runs) -> str:
    strategies = list(groups)
    get = {(r["strategy"], r["measure"], r["key"]): r for r in rows}
    out = []
    mean_rows = [get[(s, "final_valid_loss", "mean")] for s in strategies if s != control]
    better = [s for s, r in zip([s for s in strategies if s != control], mean_rows)
              if r["verdict"].startswith("better") and r["exceeds_spread"]]
    worse = [s for s, r in zip([s for s in strategies if s != control], mean_rows) if r["verdict"].startswith("worse")]
    beyond = [s for s, r in zip([s for s in strategies if s != control], mean_rows)
              if r["verdict"].startswith("worse") and r["exceeds_spread"]]
    out.append("## Verdict (computed from the table below)\n")
    out.append(
        f"On mean validation loss over {len(langs)} languages at an equal budget of "
        f"{max(r.tokens for r in runs):,} training tokens, "
        + (f"{', '.join(better)} beat the `{control}` control by more than the seed-to-seed spread"
           if better else f"no strategy beats the `{control}` control by more than the seed-to-seed spread")
        + "; " + (f"{', '.join(worse)} did worse than `{control}` on the mean over seeds ("
                  + (f"beyond the spread: {', '.join(beyond)}" if beyond else "all within the spread") + ")."
                  if worse else f"none did worse than `{control}`.") + "\n")
    n_seeds = ", ".join(f"{s}: {len(g)}" for s, g in groups.items())
    out.append(f"Runs per strategy (pretraining seeds): {n_seeds}. Spread rule: a difference exceeds the "
               "spread when |mean − control mean| > std + control std (sample std over seeds); "
               "`seeds better` counts the seeds (paired: same initial weights and validation masks) "
               "in which the strategy beat the control.\n")
    out.append("## Final validation loss per language (mean ± std over seeds; lower is better)\n")
    out.append("| strategy | " + " | ".join(langs) + " | mean | Δ vs control | seeds better | verdict |")
    out.append("|---" * (len(langs) + 5) + "|")
    for s in strategies:
        cells = [f"{fmt(get[(s, 'final_valid_loss', lang)]['mean'])} ± {fmt(get[(s, 'final_valid_loss', lang)]['std'])}"
                 for lang in langs]
        m = get[(s, "final_valid_loss", "mean")]
        out.append(f"| {s} | " + " | ".join(cells) + f" | {fmt(m['mean'])} ± {fmt(m['std'])} | "
                   f"{fmt(m['diff'], 3)} | {m['seeds_better']} | {m['verdict']} |")
    out.append("\nPer language, differences beyond the spread (all others are within it):\n")
    beyond = [f"{s} {lang}: {fmt(get[(s, 'final_valid_loss', lang)]['diff'])} ({get[(s, 'final_valid_loss', lang)]['verdict']})"
              for s in strategies if s != control for lang in langs
              if get[(s, "final_valid_loss", lang)]["exceeds_spread"]]
    out.append("\n".join(f"- {b}" for b in beyond) if beyond else "- none")
    out.append("\n## Data efficiency: tokens to reach the control's final validation loss\n")
    out.append("From each strategy's validation curve (mean over seeds of the language-averaged loss), the first "
               "token count at which it reaches the control's final value (linear between checkpoints), divided "
               "by the control's total tokens. Below 1 = needs less text; `not reached` = never got there.\n")
    out.append("`paired` repeats this per seed against the same-seed control run (mean ± std over the "
               "seeds that reached it), which shows how much of the ratio is seed noise.\n")
    out.append("| strategy | tokens (mean curve) | ratio (mean curve) | paired ratio per seed | seeds that reached it |")
    out.append("|---|---|---|---|---|")
    for s in strategies:
        r = get[(s, "tokens_to_control_final_loss", "mean")]
        paired = ("–" if r["paired_ratio_mean"] is None
                  else f"{fmt(r['paired_ratio_mean'])} ± {fmt(r['paired_ratio_std'])}")
        tokens = "not reached" if r["mean"] is None else f"{r['mean']:,.0f}"
        out.append(f"| {s} | {tokens} | "
                   f"{fmt(r['ratio']) if r['ratio'] is not None else 'not reached'} | {paired} | {r['paired_reached']} |")
    tasks = sorted({(r["measure"][len("downstream_"):], r["key"]) for r in rows if r["measure"].startswith("downstream_")})
    if tasks:
        out.append("\n## Downstream test scores (%, mean ± std over pretraining seeds; higher is better)\n")
        out.append("| strategy | " + " | ".join(f"{t} {lang}" for t, lang in tasks) + " |")
        out.append("|---" * (len(tasks) + 1) + "|")
        for s in strategies:
            cells = []
            for t, lang in tasks:
                r = get.get((s, f"downstream_{t}", lang))
                cells.append("–" if r is None else f"{fmt(r['mean'], 2)} ± {fmt(r['std'], 2)}"
                             + ("" if s == control else f" ({r['verdict']})"))
            out.append(f"| {s} | " + " | ".join(cells) + " |")
    out.append("\n## Scoring time as a share of wall time\n")
    out.append("| strategy | share (mean ± std) | scoring s of wall s (mean) |")
    out.append("|---|---|---|")
    for s in strategies:
        r = get[(s, "scoring_share_of_wall", "all")]
        out.append(f"| {s} | {fmt(100 * r['mean'], 1)}% ± {fmt(100 * r['std'], 1)} | {r['verdict']} |")
    out.append("\n## What each strategy chose: share of chosen blocks per language, per round (mean over seeds)\n")
    all_langs = sorted({lang for s in shares.values() for r in s.values() for lang in r})
    out.append("| strategy | round | " + " | ".join(all_langs) + " |")
    out.append("|---" * (len(all_langs) + 2) + "|")
    for s in strategies:
        for rnd, langs_share in sorted(shares.get(s, {}).items()):
            out.append(f"| {s} | {rnd} | " + " | ".join(f"{100 * langs_share.get(x, 0):.1f}%" for x in all_langs) + " |")
    out.append("\nEvery strategy but `mix` gets the same per-language quotas (temperature sampling, "
               "`selection.alpha`), so their language shares above are equal by design and they differ in which "
               "blocks they take within a language; `mix` sets the shares from each language's excess loss:\n")
    out.append("| strategy | round | mode | mean score, chosen − candidates | re-chosen from earlier rounds | "
               "junk flagged | afrolm generated blocks |")
    out.append("|---|---|---|---|---|---|---|")
    order = {s: i for i, s in enumerate(strategies)}
    for r in sorted(choice_rows(runs), key=lambda r: (order.get(r["strategy"], 99), r["round"])):
        out.append(f"| {r['strategy']} | {r['round']} | {r['mode']} | {fmt(r['score_gap'])} | "
                   f"{100 * r['chosen_before']:.1f}% | {r['junk_flagged']:.1f} | {r['generated_blocks']:.1f} |")
    if examples:
        out.append("\n## Highest and lowest scored blocks (last scored round, first seed; clean candidates; afrolm: generated blocks)\n")
        for s, items in examples.items():
            if not items:
                continue
            out.append(f"**{s}**\n")
            for e in items:
                text = e["text"].replace("|", "\\|")
                score = "" if e["score"] is None else f", score {e['score']:.3f}"
                out.append(f"- {e['rank']}, {e['lang']}{score}{', chosen' if e['chosen'] else ''}: {text}")
            out.append("")
    return "\n".join(out) + "\n"


def analyse(cfg, log=print) -> dict | None:
    """Write the study tables, markdown and figures from the complete runs in `cfg.out_dir/runs`."""
    out = Path(cfg.out_dir)
    runs = [r for r in load_runs(out) if r.strategy in cfg.strategies]
    groups = by_strategy(runs, list(cfg.strategies))
    if cfg.control not in groups:
        log(f"[study] analysis: no complete `{cfg.control}` run yet in {out / 'runs'}; nothing to compare")
        return None
    langs = common_langs(runs)
    raw = raw_tables(runs)
    for name, table in raw.items():
        write_csv(out / f"{name}.csv", table)
    rows = summary_rows(groups, cfg.control, langs)
    write_csv(out / "study.csv", rows)
    examples = {}
    for s, group in groups.items():
        try:
            examples[s] = block_examples(group[0], cfg.examples)
        except (OSError, KeyError, ValueError) as err:  # examples need the block cache; tables do not
            log(f"[study] analysis: no block examples for {s}: {err}")
    shares = selection_shares(raw["selection"])
    (out / "figures").mkdir(parents=True, exist_ok=True)
    from pretrain.study_figures import write_figures

    figures = write_figures(out / "figures", groups, cfg.control, langs, rows, shares)
    text = markdown(groups, cfg.control, langs, rows, examples, shares, runs)
    text += "\n## Figures\n\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in figures) + "\n"
    with atomic_write(out / "study.md") as handle:
        handle.write(text)
    log(f"[study] analysis of {len(runs)} runs: {out / 'study.md'}, {out / 'study.csv'}, {out / 'figures'}")
    return {"rows": rows, "langs": langs, "groups": groups}
