"""GPU out of memory gives a message with the batch settings and what to lower."""

from __future__ import annotations

import pytest
import torch

from pretrain import train


def test_out_of_memory_message_names_batch_settings_row8(monkeypatch, capsys, tmp_path):
    def run_out_of_memory(cfg, fresh=False, **where):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(train, "run", run_out_of_memory)
    code = train.main(["--preset", "tiny", f"out_dir={tmp_path}", "train.batch_size=48", "train.grad_accum=2"])
    err = capsys.readouterr().err
    assert code == 3
    assert "train.batch_size=48" in err and "train.grad_accum=2" in err
    assert "data.block_len=" in err and "lower train.batch_size" in err
    assert "Traceback" not in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_gpu_out_of_memory_is_reported_row8(tmp_path, capsys):
    """A batch far beyond the card's memory: the run ends with the row-8 message, not a traceback."""
    from tests.support.pretrain import build_inputs, run_args

    corpus, tok = build_inputs(tmp_path)
    code = train.main(
        run_args(
            corpus, tok, tmp_path / "run", "train.device=cuda", "train.batch_size=1000000", "model.hidden_size=1024"
        )
    )
    assert code == 3
    assert "out of GPU memory with train.batch_size=1000000" in capsys.readouterr().err
