"""Run `python -m pretrain.train` in a subprocess from the tests, with optional fault injection:

AFRO_TEST_KILL_IN_SAVE=N   SIGKILL this process while it writes its N-th checkpoint
AFRO_TEST_SIGNAL_AT_STEP=N:SIG   send SIG (KILL, TERM) to this process once N steps are done
AFRO_TEST_SIGNAL_RANK=R          ... only on rank R (torchrun)
AFRO_TEST_RANK_HASH=1      each rank writes the sha256 of its final weights to out_dir/rank-R.sha256
                           and the block ids it trained to out_dir/rank-R.ids.json (DDP test)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain import checkpoint  # noqa: E402
from pretrain import train  # noqa: E402


def _kill_in_save(n: int) -> None:
    original, calls = checkpoint._write_file, {"files": 0, "saves": 0}
    real_save = checkpoint.save_checkpoint

    def counting_save(*args, **kwargs):
        calls["saves"] += 1
        return real_save(*args, **kwargs)

    def killing_write(path, data):
        if calls["saves"] == n and path.name == "state.pt":  # after model/optimizer, before COMPLETE
            os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)

    checkpoint._write_file = killing_write
    checkpoint.save_checkpoint = counting_save


def _signal_at_step(spec: str) -> None:
    step, name = spec.split(":")
    original = train.Trainer.train_step

    only_rank = os.environ.get("AFRO_TEST_SIGNAL_RANK")

    def signalling_step(self, ids):
        if self.progress.step == int(step) and only_rank in (None, os.environ.get("RANK", "0")):
            os.kill(os.getpid(), getattr(signal, f"SIG{name}"))
        return original(self, ids)

    train.Trainer.train_step = signalling_step


def main() -> int:
    if os.environ.get("AFRO_TEST_SIGNAL_AT_STEP"):
        _signal_at_step(os.environ["AFRO_TEST_SIGNAL_AT_STEP"])
    if os.environ.get("AFRO_TEST_KILL_IN_SAVE"):
        _kill_in_save(int(os.environ["AFRO_TEST_KILL_IN_SAVE"]))
    if not os.environ.get("AFRO_TEST_RANK_HASH"):
        return train.main(sys.argv[1:])
    args = train.parse_args(sys.argv[1:])
    cfg = train.load_run_config(args)
    result = train.run(cfg, fresh=args.fresh, record_ids=True)
    rank = int(os.environ.get("RANK", "0"))
    digest = hashlib.sha256()
    for name, tensor in sorted(result.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    out = Path(cfg.out_dir)
    (out / f"rank-{rank}.sha256").write_text(digest.hexdigest())
    (out / f"rank-{rank}.ids.json").write_text(
        json.dumps([[step.tolist(), mine.tolist()] for step, mine in result.trained_ids])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
