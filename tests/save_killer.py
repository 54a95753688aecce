"""Kill a process inside `Trainer.save` at its k-th file-system event (run by test_llm_checkpoint.py).

    python tests/save_killer.py OUT K

Trains a tiny run for one step and saves OUT/ckpt whole, records the weights after that step and after a second
one (OUT/ref_1.safetensors, OUT/ref_2.safetensors), then saves the second step over OUT/ckpt and dies by SIGKILL
at event K: before a rename or a removal, or right after a file write, with that file cut to half its length
(as a kill in the middle of writing would leave it). K = 0 dies nowhere and prints the number of events.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import safetensors.torch
import transformers.modeling_utils

import entropy_rl_lite.llm.checkpoint as checkpoint
from entropy_rl_lite.llm import CharTokenizer, TrainConfig, Trainer
from environments.text_tasks import SumToEnv

out, kill_at = Path(sys.argv[1]), int(sys.argv[2])
cfg = TrainConfig(steps=2, prompts_per_step=2, group_size=2, pass_k=2, adapo=True, eps_high=0.28)
trainer = Trainer(cfg, SumToEnv(min_target=3, max_target=8, max_len=3), tokenizer=CharTokenizer())
for step in (1, 2):
    trainer.train(1, progress=False)
    if step == 1:
        trainer.save(out / "ckpt")
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in trainer.model.state_dict().items()}, out / f"ref_{step}.safetensors"
    )

events = 0


def _event() -> bool:
    global events
    events += 1
    return events == kill_at


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def before(fn):
    def wrapped(*args, **kwargs):
        if _event():
            _die()
        return fn(*args, **kwargs)

    return wrapped


def cut_after(fn, path_arg: int):
    def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        if _event():
            path = Path(args[path_arg])
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            _die()
        return result

    return wrapped


os.rename = before(os.rename)
shutil.rmtree = before(shutil.rmtree)
checkpoint.save_file = cut_after(checkpoint.save_file, 1)  # trainer_state.safetensors
transformers.modeling_utils.safe_save_file = cut_after(transformers.modeling_utils.safe_save_file, 1)  # weights
Path.write_text = cut_after(Path.write_text, 0)  # trainer_state.json (and any other text file)
trainer.save(out / "ckpt")
print(events)
