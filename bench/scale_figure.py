"""The figure of `make bench-scale`: cost of each stage against the size of its input."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.io import atomic_write  # noqa: E402


def plot_scale(result: dict, path: Path) -> None:
    fig, (time_ax, memory_ax, tokenizer_ax, pretrain_ax) = plt.subplots(1, 4, figsize=(17, 4))
    direct = [r for r in result["corpus"] if r["runner"] == "direct"]
    portable = [r for r in result["corpus"] if r["runner"] == "portable"]
    dask = [r for r in result["corpus"] if r["runner"] == "dask"]
    scales = [r["scale"] for r in direct]

    time_ax.plot(scales, [r["seconds"] for r in direct], "o-", label="DirectRunner")
    time_ax.plot(scales, [direct[0]["seconds"] * s for s in scales], ":", color="grey", label="linear from 1x")
    if portable:
        time_ax.plot([r["scale"] for r in portable], [r["seconds"] for r in portable], "s", label="PortableRunner")
    if dask:
        time_ax.plot([r["scale"] for r in dask], [r["seconds"] for r in dask], "D--", label="DaskRunner")
    time_ax.set(
        title="corpus stage: wall time", xlabel="corpus size (x shared corpus)", ylabel="seconds", ylim=(0, None)
    )
    time_ax.legend()

    memory_ax.plot(scales, [r["peak_rss_mib"] for r in direct], "o-", label="DirectRunner, all processes")
    for role, label in (("launcher", "launcher (runner's buffers)"), ("sdk_worker", "largest worker")):
        memory_ax.plot(scales, [r["largest_process_peak_mib"].get(role, 0) for r in direct], ".--", label=label)
    if portable:
        memory_ax.plot(
            [r["scale"] for r in portable], [r["peak_rss_mib"] for r in portable], "s", label="PortableRunner"
        )
    if dask:
        memory_ax.plot(
            [r["scale"] for r in dask], [r["peak_rss_mib"] for r in dask], "D--", label="DaskRunner, all processes"
        )
    memory_ax.set(title="corpus stage: peak RSS", xlabel="corpus size (x shared corpus)", ylabel="MiB", ylim=(0, None))
    memory_ax.legend(loc="lower right", fontsize="small")

    tokenizer = result["tokenizer"]
    tokenizer_ax.plot([r["sample_chars"] / 1e6 for r in tokenizer], [r["seconds"] for r in tokenizer], "o-")
    tokenizer_ax.set(title="tokenizer training", xlabel="sample (million characters)", ylabel="seconds", ylim=(0, None))

    pretrain = result["pretrain"]
    pretrain_ax.bar([str(r["block_len"]) for r in pretrain], [r["tokens_per_s"] or 0 for r in pretrain])
    pretrain_ax.set(title="pretraining throughput", xlabel="sequence length (tokens)", ylabel="tokens/s")

    fig.suptitle(f"bench-scale on {result['machine']['cpus']} CPU cores")
    fig.tight_layout()
    with atomic_write(path, "wb", encoding=None) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
