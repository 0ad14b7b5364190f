"""The ``edgesr`` command line: parse, call one library function, render with rich.

Library modules are imported inside each command, so device-side commands (bench, upscale)
start without torch. Errors about the user's input (:class:`edgesr.errors.EdgesrError`) are
printed as one line with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import EdgesrError

app = typer.Typer(
    help="Data-free distillation, export and on-device benchmarking of super-resolution models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

#: options that take several values after one flag (``--scales 2 3 4``), like argparse's nargs='+'
MULTI_VALUE_OPTIONS = {"--scales", "--data", "--sizes", "--set"}


def expand_multi_value(argv: list[str]) -> list[str]:
    """Rewrite ``--scales 2 3 4`` as ``--scales 2 --scales 3 --scales 4`` for click."""
    out: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg.startswith("-") and not _is_number(arg):
            current = arg if arg in MULTI_VALUE_OPTIONS else None
            out.append(arg)
        elif current is not None and out[-1] != current:
            out.extend([current, arg])
        else:
            out.append(arg)
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def user_errors(fn):
    """Turn :class:`EdgesrError` into ``error: <message>`` on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgesrError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"edgesr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Data-free distillation, export and on-device benchmarking of super-resolution models."""


def pick_device(device: str) -> str:
    """``auto`` means CUDA when torch sees a GPU; asking for CUDA without one is a user error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EdgesrError("--device cuda was asked for, but torch sees no CUDA GPU")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise EdgesrError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def check_scales(scales: list[int]) -> list[int]:
    bad = [s for s in scales if s < 2 or s > 8]
    if bad:
        raise EdgesrError(f"unsupported scale(s) {bad}: use integers from 2 to 8")
    return scales


@app.command("eval")
@user_errors
def eval_cmd(
    model: Annotated[str, typer.Option(help="zoo name (e.g. pytorch-vdsr) or weights file")] = "pytorch-vdsr",
    data: Annotated[list[Path], typer.Option(help="benchmark folder(s): prepared arrays or HR images")] = [],
    scales: Annotated[list[int], typer.Option(help="upscaling factors")] = [2, 3, 4],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the scores here")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    ssim: Annotated[bool, typer.Option(help="also compute SSIM")] = True,
) -> None:
    """PSNR/SSIM of a torch model on benchmark sets (Y channel, border shaved, MATLAB bicubic)."""
    from .data.benchmark import open_set
    from .evaluate import evaluate
    from .io import write_json
    from .models.predict import torch_predictor
    from .models.zoo import load_model
    from .report import scores_table

    if not data:
        raise EdgesrError("give at least one --data folder (e.g. ../shared/data/Set5)")
    check_scales(scales)
    net, meta = load_model(model)
    sets = [open_set(d) for d in data]
    predict = torch_predictor(net, pick_device(device))
    with console.status("evaluating") as status:
        scores = evaluate(predict, sets, scales, with_ssim=ssim,
                          on_done=lambda s: status.update(f"{s.set} x{s.scale}: {s.psnr:.3f} dB"))
    console.print(scores_table(scores, title=f"{model}"))
    if json_out:
        write_json(json_out, {"model": model, "sha256": meta["sha256"], "scores": [s.to_dict() for s in scores]})


@app.command("export")
@user_errors
def export_cmd(
    model: Annotated[str, typer.Option(help="zoo name (e.g. pytorch-vdsr) or weights file")] = "pytorch-vdsr",
    target: Annotated[str, typer.Option(help="onnx, tensorrt (deploy bundle; engine where TensorRT runs) or coreml")] = "onnx",
    scale: Annotated[int, typer.Option(help="upscaling factor: 2, 3 or 4")] = 2,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (onnx: CPU QDQ; tensorrt: TensorRT QDQ; "
                                                "coreml: 8-bit weights)")] = "fp32",
    input_kind: Annotated[str, typer.Option("--input", help="lr: LR in, MATLAB bicubic inside the model; "
                                                            "bicubic: the network alone")] = "lr",
    calib: Annotated[Optional[str], typer.Option(help="INT8 calibration: a distill run folder (data-free, the "
                                                      "default when the model sits in one) or an image folder")] = None,
    calib_method: Annotated[str, typer.Option(help="minmax, entropy or percentile")] = "percentile",
    float_layers: Annotated[str, typer.Option(help="INT8: VDSR convs kept in float, by index (0 = first, "
                                                   "-1 = last), comma-separated")] = "0,-1",
    qad_steps: Annotated[int, typer.Option(help="INT8: quantization-aware distillation steps before "
                                                "quantizing (0 = post-training only)")] = 0,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="output file or folder")] = None,
) -> None:
    """Export a model for devices: ONNX (FP32/FP16/INT8), a TensorRT bundle or a CoreML package."""
    from .export.pipeline import ExportRequest, export_model

    try:
        floats = tuple(int(v) for v in float_layers.split(",") if v.strip())
    except ValueError:
        raise EdgesrError(f"--float-layers takes comma-separated integers, got {float_layers!r}") from None
    req = ExportRequest(model, target, scale, precision, input_kind, calib, out, calib_method, floats, qad_steps)
    with console.status("exporting") as status:
        result = export_model(req, progress=lambda msg: status.update(msg))
    for note in result.notes:
        console.print(note)
    console.print(f"wrote {result.path} (x{result.meta.scale}, {result.meta.input_kind} input, {result.meta.precision})")


def main() -> None:
    app(args=expand_multi_value(sys.argv[1:]), prog_name="edgesr")


if __name__ == "__main__":
    main()
