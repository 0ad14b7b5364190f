"""The ``edgesr`` command line: parse, call one library function, render with rich.

Library modules are imported inside each command, so device-side commands (bench, upscale)
start without torch. Errors about the user's input (:class:`edgesr.errors.EdgesrError`) are
printed as one line with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .demo.limits import MB, MP
from .demo.limits import Limits as DemoLimits
from .errors import EdgesrError
from .export.pipeline import DEFAULT_FLOAT_LAYERS, DEFAULT_METHOD
from .optional import available, require_extra
from .scales import check_scales

app = typer.Typer(
    help="Data-free distillation, export and on-device benchmarking of super-resolution models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

#: options that take several values after one flag (``--scales 2 3 4``), like argparse's nargs='+'
MULTI_VALUE_OPTIONS = {"--scales", "--data", "--sizes", "--set", "--providers"}


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
    """Turn :class:`EdgesrError` into ``error: <message>`` on stderr and exit code 1 (an error
    every training process raised alike is printed by rank 0 only: ``echo``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgesrError as exc:
            if not getattr(exc, "echo", False):
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def host_command(name: str):
    """``edgesr NAME`` needs the ``train`` extra: on a device install, say so in one line up front."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            require_extra("train", f"edgesr {name}")
            return fn(*args, **kwargs)

        return wrapper

    return decorate


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




@app.command("eval")
@user_errors
@host_command("eval")
def eval_cmd(
    model: Annotated[str | None, typer.Option(
        help="zoo name (edgesr-vdsr, pytorch-vdsr) or weights file [default: the zoo's default teacher]")] = None,
    data: Annotated[list[Path], typer.Option(help="benchmark folder(s): prepared arrays or HR images")] = [],
    scales: Annotated[list[int], typer.Option(help="upscaling factors")] = [2, 3, 4],
    json_out: Annotated[Path | None, typer.Option("--json", help="write the scores here")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    ssim: Annotated[bool, typer.Option(help="also compute SSIM")] = True,
) -> None:
    """PSNR/SSIM of a torch model on benchmark sets (Y channel, border shaved, MATLAB bicubic)."""
    from .data.benchmark import open_set
    from .evaluate import evaluate
    from .io import write_json
    from .models.predict import torch_predictor
    from .models.zoo import Teachers, load_model
    from .scores_table import scores_table
    from .train.command import resolve_device

    if not data:
        raise EdgesrError("give at least one --data folder (e.g. ../shared/data/Set5)")
    check_scales(scales)
    model = model or Teachers.DEFAULT.value.name
    net, meta = load_model(model)
    sets = [open_set(d) for d in data]
    predict = torch_predictor(net, resolve_device(device))
    with console.status("evaluating") as status:
        scores = evaluate(predict, sets, scales, with_ssim=ssim,
                          on_done=lambda s: status.update(f"{s.set} x{s.scale}: {s.psnr:.3f} dB"))
    console.print(scores_table(scores, title=f"{model}"))
    if json_out:
        write_json(json_out, {"model": model, "sha256": meta["sha256"], "scores": [s.to_dict() for s in scores]})


@app.command("distill")
@user_errors
@host_command("distill")
def distill_cmd(
    recipe: Annotated[str | None, typer.Option(help="recipe name (quick, dfsr, paper, ...) or YAML path")] = None,
    teacher: Annotated[str | None, typer.Option(help="teacher zoo name or weights path (overrides the recipe)")] = None,
    out: Annotated[Path, typer.Option(help="parent folder of the run folder")] = Path("runs/distill"),
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (overrides the recipe)")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue this run folder from its checkpoint")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="override recipe keys: --set batch_size=64 cmi.temperature=0.2")] = [],
) -> None:
    """Data-free distillation of a VDSR teacher into a half-width student (DFSR + CMI)."""
    from .distill.command import distill

    distill(recipe, set_, teacher, out, device, resume, console=console)


teacher_app = typer.Typer(help="Train a VDSR teacher of your own.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


@teacher_app.command("train")
@user_errors
@host_command("teacher train")
def teacher_train_cmd(
    data: Annotated[list[Path], typer.Option(help="folder of ground-truth training images "
                                                  "(e.g. ../shared/data/train291); "
                                                  "its last validation.images files are held out")] = [],
    scales: Annotated[list[int], typer.Option(
        help="upscaling factors one network learns (default: the recipe's)")] = [],
    recipe: Annotated[str | None, typer.Option(help="recipe name (teacher, teacher-tiny) or YAML path")] = None,
    out: Annotated[Path, typer.Option(help="parent folder of the run folder")] = Path("runs/teacher"),
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (overrides the recipe)")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue this run folder from its checkpoint")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="override recipe keys: --set budget_minutes=2.5 optim.lr=5e-4")] = [],
) -> None:
    """Supervised VDSR training on HR images: MATLAB-bicubic degradations, random patches with
    flips and rotations, several scales in one network, a held-out validation split; writes
    teacher.safetensors and a Set5/Set14 table into the run folder."""
    from .teacher.command import train_teacher

    if len(data) > 1:
        raise EdgesrError("give one --data folder")
    if scales:
        check_scales(scales)
    train_teacher(data[0] if data else None, scales, recipe, set_, out, device, resume, console=console)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EdgesrError(f"{name} must be at least 1, got {value}")


@app.command("bench")
@user_errors
def bench_cmd(
    artifacts: Annotated[list[Path], typer.Argument(help="exported models (.onnx, .engine, .mlpackage)")],
    data: Annotated[list[Path], typer.Option(help="benchmark folder(s) for PSNR/SSIM (e.g. Set5 Set14)")] = [],
    scales: Annotated[list[int], typer.Option(help="scales to score at (default: each artifact's own)")] = [],
    sizes: Annotated[list[int], typer.Option(help="square output sizes to time, in pixels")] = [256, 512],
    warmup: Annotated[int, typer.Option(help="untimed runs before timing")] = 3,
    runs: Annotated[int, typer.Option(help="timed runs per size")] = 20,
    threads: Annotated[int | None, typer.Option(help="CPU threads (onnxruntime intra-op; torch)")] = None,
    providers: Annotated[list[str], typer.Option(help="onnxruntime providers in order: cpu, cuda, tensorrt")] = [],
    torch_ref: Annotated[bool, typer.Option(
        "--torch/--no-torch", help="add the source torch model as a reference row, if torch is installed")] = True,
    ssim: Annotated[bool, typer.Option(help="also compute SSIM")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="write all numbers here")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="write the table here")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="write a latency-vs-PSNR plot (PNG) here")] = None,
) -> None:
    """Latency (p50/p90/p99), throughput, memory and PSNR/SSIM of exported models on this device."""
    from .bench.outputs import plot, rich_table, write_results
    from .bench.rows import run_bench
    from .data.benchmark import open_set

    if scales:
        check_scales(scales)
    if warmup < 0:
        raise EdgesrError(f"--warmup must be 0 or more, got {warmup}")
    for name, v in [("--runs", runs), ("--threads", threads), *(("--sizes", n) for n in sizes)]:
        _positive(name, v)
    if plot_out:
        require_extra("plot", "--plot")
    sets = [open_set(d) for d in data]
    with console.status("benchmarking") as status:
        reference = None
        if torch_ref and available("torch"):
            from .reference import torch_row

            def reference(model: str, eval_scales):
                return torch_row(model, sizes, warmup, runs, sets, eval_scales, threads, ssim, status.update)

        rows = run_bench(artifacts, sizes, warmup, runs, sets, scales or None, threads, providers or None,
                         reference, ssim, progress=status.update)
    table = rich_table(rows, sizes, title="edgesr bench")
    # piped output: print the whole table rather than squeezing it into 80 columns
    out = console if console.is_terminal else Console(width=1000)
    out.print(table)
    for r in rows:
        for note in r.notes:
            out.print(f"[dim]{r.name}: {note}[/]")
    settings = {"sizes": sizes, "warmup": warmup, "runs": runs, "threads": threads, "providers": providers,
                "data": [str(d) for d in data], "scales": scales}
    write_results(rows, sizes, settings, json_out, markdown_out)
    if plot_out:
        plot(rows, sizes, plot_out)


@app.command("upscale")
@user_errors
def upscale_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="image files and/or folders of images")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output file (one input) or folder")],
    model: Annotated[Path, typer.Option(help="exported model (.onnx, .engine, .mlpackage)")],
    scale: Annotated[int | None, typer.Option(help="upscaling factor (default: the model's)")] = None,
    tile: Annotated[int, typer.Option(help="output tile side above which images are tiled (bounds memory)")] = 512,
    threads: Annotated[int | None, typer.Option(help="CPU threads for onnxruntime")] = None,
    providers: Annotated[list[str], typer.Option(help="onnxruntime providers in order: cpu, cuda, tensorrt")] = [],
    overwrite: Annotated[bool, typer.Option(help="replace existing output files (never an input)")] = False,
) -> None:
    """Upscale photos: Y through the model, colour and alpha by MATLAB bicubic, bit depth kept."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .io import OutputError
    from .runtime import open_upscaler
    from .runtime.batch import plan_jobs, upscale_file

    if scale is not None:
        check_scales([scale], "--scale")
    _positive("--tile", tile)
    _positive("--threads", threads)
    jobs = plan_jobs(inputs, output, overwrite)
    upscaler = open_upscaler(model, threads, providers or None)
    if scale is not None:
        upscaler.check_scale(scale)
    if len(jobs) == 1:
        upscale_file(upscaler, jobs[0], scale, tile)
        console.print(f"wrote {jobs[0].dst}")
        return
    failed = done = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        files = bar.add_task("images", total=len(jobs))
        tiles = bar.add_task("tiles", total=None, visible=False)
        for job in jobs:
            bar.update(files, description=job.src.name)
            try:
                upscale_file(upscaler, job, scale, tile,
                             on_tile=lambda i, n: bar.update(tiles, completed=i, total=n, visible=n > 1))
            except OutputError as exc:  # every later image would fail the same way: stop
                raise OutputError(f"{exc} ({done} of {len(jobs)} images written before)") from None
            except EdgesrError as exc:
                failed += 1
                bar.console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            else:
                done += 1
            bar.update(files, advance=1)
            bar.update(tiles, visible=False)
    if failed:
        raise EdgesrError(f"{failed} of {len(jobs)} images failed; the others were written to {output}")
    console.print(f"wrote {len(jobs)} images to {output}")


@app.command("demo")
@user_errors
def demo_cmd(
    model: Annotated[list[Path], typer.Option(help="exported model (.onnx, .engine, .mlpackage); repeat the "
                                                   "option to compare several on the page")],
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 opens the page to your network")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)")] = 8000,
    threads: Annotated[int | None, typer.Option(help="CPU threads per inference for onnxruntime "
                                                        "[default: onnxruntime's]")] = None,
    workers: Annotated[int, typer.Option(help="inferences run at once")] = DemoLimits.workers,
    queue: Annotated[int, typer.Option(help="uploads admitted beyond those running; more get 503 + Retry-After")
                     ] = DemoLimits.queue,
    max_upload_mb: Annotated[float, typer.Option(help="largest upload, in MB")] = DemoLimits.max_upload / MB,
    max_mp: Annotated[float, typer.Option(help="largest input image, in megapixels (checked before decoding)")
                      ] = DemoLimits.max_pixels / MP,
    max_output_mp: Annotated[float, typer.Option(help="largest result, in megapixels")
                             ] = DemoLimits.max_output_pixels / MP,
) -> None:
    """Serve a web page that upscales the images you drop on it, beside MATLAB bicubic."""
    from .demo.catalog import build_catalog
    from .demo.server import DemoServer, serve
    from .runtime import open_upscaler

    _positive("--threads", threads)
    limits = DemoLimits(workers=workers, queue=queue, max_upload=int(max_upload_mb * MB),
                        max_pixels=int(max_mp * MP), max_output_pixels=int(max_output_mp * MP))
    server = DemoServer(build_catalog([open_upscaler(m, threads) for m in model]), limits)

    def ready(bound: int) -> None:
        shown = "<this machine's address>" if host in ("0.0.0.0", "::", "") else host
        console.print(f"edgesr demo: http://{shown}:{bound}/", soft_wrap=True, highlight=False, markup=False)
        for c in server.catalog.models:
            console.print(f"  {c.id}: {c.upscaler.describe()}", soft_wrap=True, highlight=False, markup=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            err_console.print(f"[bold yellow]warning:[/] listening on {escape(host or 'every address')}: anyone "
                              "who can reach this machine can use the demo (no login); stop it with Ctrl-C",
                              soft_wrap=True, highlight=False)
        console.print("Ctrl-C to stop", highlight=False)

    try:
        serve(server, host, port, ready)
    except OSError as exc:
        raise EdgesrError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command("export")
@user_errors
@host_command("export")
def export_cmd(
    model: Annotated[str | None, typer.Option(
        help="zoo name (edgesr-vdsr, pytorch-vdsr) or weights file [default: the zoo's default teacher]")] = None,
    target: Annotated[str, typer.Option(
        help="onnx, tensorrt (deploy bundle; engine where TensorRT runs) or coreml")] = "onnx",
    scale: Annotated[int, typer.Option(help="upscaling factor, 2 to 8, one the model was made for")] = 2,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (onnx: CPU QDQ; tensorrt: TensorRT QDQ; "
                                                "coreml: 8-bit weights)")] = "fp32",
    input_kind: Annotated[str, typer.Option("--input", help="lr: LR in, MATLAB bicubic inside the model; "
                                                            "bicubic: the network alone")] = "lr",
    calib: Annotated[str | None, typer.Option(help="INT8 calibration: prior names (dead-leaves, pink-noise), a distill "
                                                      "run folder or an image folder; default: what taught the run "
                                                      "the model sits in, else dead-leaves (data-free)")] = None,
    calib_method: Annotated[str, typer.Option(help="minmax, entropy, percentile or mse")] = DEFAULT_METHOD,
    float_layers: Annotated[str, typer.Option(help="INT8: VDSR convs kept in float: auto:K (the K whose "
                                                   "quantization costs most, measured per export; auto: "
                                                   "3 for tensorrt, 2 for CPU), indices (0 = first, "
                                                   "-1 = last) comma-separated, or none")] = DEFAULT_FLOAT_LAYERS,
    qad_steps: Annotated[int, typer.Option(help="INT8: quantization-aware distillation steps before "
                                                "quantizing (0 = post-training only)")] = 0,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="output file or folder")] = None,
) -> None:
    """Export a model for devices: ONNX (FP32/FP16/INT8), a TensorRT bundle or a CoreML package."""
    from .export.pipeline import ExportRequest, export_model
    from .models.zoo import Teachers

    model = model or Teachers.DEFAULT.value.name

    req = ExportRequest(model, target, scale, precision, input_kind, calib, out, calib_method, float_layers,
                        qad_steps)
    with console.status("exporting") as status:
        result = export_model(req, progress=lambda msg: status.update(msg))
    for note in result.notes:
        console.print(note, soft_wrap=True)
    m = result.meta
    console.print(f"wrote {result.path} (x{m.scale}, {m.input_kind} input, {m.precision})", soft_wrap=True)


def main() -> None:
    app(args=expand_multi_value(sys.argv[1:]), prog_name="edgesr")


if __name__ == "__main__":
    main()
