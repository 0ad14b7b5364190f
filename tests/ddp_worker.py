"""One rank of the two-process gloo runs of ``tests/test_distributed.py``:
``python -m tests.ddp_worker OUT IMAGES`` with torchrun's environment. Each scenario saves what
this rank ends with to ``OUT/<scenario>/rank<r>.pt``; in the last one rank 1 dies (exit -9), and
rank 0 then ends as the CLI ends after a :class:`RankLost`, without the interpreter's shutdown."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

from edgesr.distill.trainer import Distiller
from edgesr.errors import end_process
from edgesr.train.distributed import RankLost, World, join_world
from edgesr.train.loop import Interrupted
from tests.ddp_helpers import NAN_STEP, distill_recipe, nan_kd_at, snapshot, train
from tests.distill_helpers import tiny_teacher
from tests.teacher_helpers import tiny_recipe as teacher_recipe
from tests.teacher_helpers import tiny_trainer as teacher_trainer


def scenarios(world: World, out: Path, images: Path) -> None:
    cpu = torch.device("cpu")

    def distiller(kind: str) -> Distiller:
        return Distiller(distill_recipe(kind), tiny_teacher(), cpu, world=world)

    def save(name: str, trainer, **extra) -> None:
        (out / name).mkdir(parents=True, exist_ok=True)
        torch.save({**snapshot(trainer), **extra}, out / name / f"rank{world.rank}.pt")

    for kind in ("pooled", "growing", "lr"):
        save(f"{kind}-full", train(distiller(kind), out / f"{kind}-full"))

    # a stop request on rank 1 alone: a real SIGTERM to this process during step 3
    d = distiller("pooled")
    step = d.train_step

    def signalled_step() -> bool:
        if world.rank == 1 and d.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return step()

    d.train_step = signalled_step
    try:
        train(d, out / "pooled-stop")
        message = ""
    except Interrupted as exc:
        message = str(exc)
    save("pooled-stop", d, message=message)

    # the checkpoint one process wrote at step 3, resumed by two
    save("pooled-from-1", train(distiller("pooled"), out / "pooled-from-1", resume=True))

    d = distiller("pooled")
    with nan_kd_at(d, NAN_STEP, on=world.rank == 1):
        save("pooled-nan", train(d, out / "pooled-nan"))

    save("teacher", train(teacher_trainer(teacher_recipe(images), world), out / "teacher"))

    # rank 1 dies outright (SIGKILL) during step 2: rank 0 stops with one line, not a hang
    d = distiller("pooled")
    step = d.train_step

    def dying_step() -> bool:
        if world.rank == 1 and d.step == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return step()

    d.train_step = dying_step
    started = time.monotonic()
    try:
        train(d, out / "rank-lost")
        message = ""
    except RankLost as exc:
        message = str(exc)
    (out / "rank-lost" / "rank0.json").write_text(json.dumps({"message": message,
                                                               "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    with join_world() as w:
        scenarios(w, Path(sys.argv[1]), Path(sys.argv[2]))
    end_process(0)
