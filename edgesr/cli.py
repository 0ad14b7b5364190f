"""The ``edgesr`` command line: parse, call one library function, render with rich.

Library modules are imported inside each command, so device-side commands (bench, upscale)
start without torch. Errors about the user's input (:class:`edgesr.errors.EdgesrError`) are
printed as one line with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .demo.limits import MB, MP
from .demo.limits import Limits as DemoLimits
from .errors import EdgesrError, end_process
from .export.int8 import DEFAULT_FLOAT_LAYERS, DEFAULT_METHOD
from .io import refuse_existing, refuse_inputs
from .optional import available, require_extra
from .scales import check_scales

# Plain (click) help rather than rich panels: rich markup would swallow "[default: ...]" texts,
# and its type column shows Python types (<bool>, <list[Path]>); every option below names its
# value (metavar), and click marks defaults and [required] itself.
app = typer.Typer(
    help="Data-free distillation, export and on-device benchmarking of super-resolution models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
#: Without a terminal (a log file, a pipe, CI) no line is wrapped: at the 80 columns rich
#: assumes there, a run's longer lines were broken mid-phrase; tables keep their own width
LOG_WIDTH = 10_000
console = Console() if sys.stdout.isatty() else Console(width=LOG_WIDTH)
err_console = Console(stderr=True)

# typer prints an argument's Python type beside it (ARTIFACT... <list[Path]>) even when its
# metavar already names the values; the option panel has no such column in plain help
if hasattr(typer.core.TyperArgument, "display_type_rich"):
    typer.core.TyperArgument.display_type_rich = lambda self, ctx: None

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
    every training process raised alike is printed by rank 0 only: ``echo``); a requested stop
    into ``stopped: ... continue with <the command as typed> --resume RUN`` and 128 + the signal
    (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process a signal ended."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgesrError as exc:
            resume_with = getattr(exc, "resume_with", None)  # a requested stop (train.loop.Interrupted)
            if resume_with is not None:
                if not getattr(exc, "echo", False):
                    err_console.print(f"[yellow]stopped:[/] {escape(resume_with(program()))}", highlight=False,
                                      soft_wrap=True)
                raise typer.Exit(128 + exc.signum) from None
            if not getattr(exc, "echo", False):
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            if exc.exit_at_once:
                end_process(1)
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


#: the --threads help of the host commands: the rule lives in edgesr/threads.py
THREADS_HELP = ("CPU threads for torch and onnxruntime [default: OMP_NUM_THREADS if set, else the cores "
                "free now: cores minus those other processes keep busy (sampled for 0.5 s), at least 1]")
#: what the --model options of eval and export default to (tests check it is the zoo's default)
DEFAULT_TEACHER = "pytorch-vdsr"


def use_threads(threads: int | None) -> None:
    """Apply the thread rule of :mod:`edgesr.threads` (``--threads`` first), before any work
    raises the load. Long jobs say what it chose once their recipe is valid
    (``edgesr.train.command.announce``), so that a recipe error stays one line."""
    from . import threads as rule

    rule.apply(rule.choose(threads))


def program() -> str:
    """``edgesr`` as the user ran it, for commands printed to be pasted next: ``edgesr`` when
    that is what the PATH finds, else the path typed (``.venv/bin/edgesr``), else ``python -m edgesr``."""
    import os
    import shlex
    import shutil

    argv0 = Path(sys.argv[0])
    if argv0.name != "edgesr":
        return f"{shlex.quote(sys.executable)} -m edgesr"
    found = shutil.which("edgesr")
    if found and Path(found).resolve() == argv0.resolve():
        return "edgesr"
    try:
        shown = os.path.relpath(argv0)
    except ValueError:
        shown = str(argv0)
    return shlex.quote(shown if not shown.startswith("..") else str(argv0.resolve()))


def main_process() -> bool:
    """False in the processes torchrun started besides the first: they print nothing of their own."""
    import os

    return os.environ.get("RANK", "0") == "0"


def refuse_other_kind(recipe: str | None, command: str) -> None:
    """A recipe of the other training command, named by mistake, is one line naming the command
    that runs it, rather than the first key of it this command does not know."""
    if not recipe:
        return
    from .config import load_recipe
    from .distill.recipe import DistillRecipe
    from .teacher.recipe import TeacherRecipe

    kinds = {"distill": (DistillRecipe, "a distillation recipe", ""),
             "teacher train": (TeacherRecipe, "a teacher recipe", " --data DIR")}
    try:
        load_recipe(kinds[command][0], recipe)
        return
    except EdgesrError:
        pass  # not ours: is it the other command's?
    for other, (cls, what, needs) in kinds.items():
        if other == command:
            continue
        try:
            load_recipe(cls, recipe)
        except EdgesrError:
            return  # neither: the command reports its own error
        exc = EdgesrError(f"{recipe} is {what}: run it with edgesr {other} --recipe {recipe}{needs}")
        exc.echo = not main_process()  # under torchrun, said once
        raise exc


def finished(started: float, next_step: str, next_args: list[str]) -> None:
    """The last line of a long job: its wall time and the command that usually comes next
    (once: not again from each process torchrun started)."""
    import shlex
    import time

    from .train.progress import duration

    if not main_process():
        return

    cmd = " ".join([program(), *(shlex.quote(a) for a in next_args)])
    console.print(f"done in {duration(time.monotonic() - started)}. Next, {next_step}: {cmd}",
                  highlight=False, markup=False, soft_wrap=True)


OVERWRITE_HELP = "replace existing output files (without it, an existing output is an error)"
Overwrite = Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP, show_default=False)]
Threads = Annotated[int | None, typer.Option(metavar="N", help=THREADS_HELP, show_default=False)]
#: the options both training commands (distill, teacher train) take alike
TrainDevice = Annotated[str | None, typer.Option(metavar="auto|cpu|cuda", help="where to train [default: the "
                                                 "recipe's, auto: CUDA when torch sees a GPU]")]
Resume = Annotated[Path | None, typer.Option(metavar="RUN_DIR", help="continue this run folder from its checkpoint, "
                                             "with its saved recipe")]
#: every command spells its output option --out (-o where it names a file or folder of results);
#: --output, upscale's former spelling, is accepted everywhere as its alias
OUT_NAMES = ("--out", "--output")
RunsFolder = Annotated[Path, typer.Option(*OUT_NAMES, metavar="DIR", help="parent folder of the run folder")]


def recipe_option(default: str) -> Any:
    """The --recipe option of a training command whose default recipe is ``default``."""
    return Annotated[str | None, typer.Option(metavar="NAME|FILE", help="recipe name or YAML file; `edgesr recipes` "
                                              f"lists the names [default: {default}]")]


def overrides_option(example: str) -> Any:
    """The --set option, its help showing ``example`` overrides of that command's recipe."""
    return Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE...",
                                             help=f"override recipe keys: --set {example}")]


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


@app.command("eval", short_help="PSNR/SSIM of a torch model on benchmark sets.")
@user_errors
@host_command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option(metavar="NAME|FILE|RUN", help="zoo name (pytorch-vdsr, edgesr-vdsr), "
                                       "weights file (.safetensors, state dict, pytorch-vdsr pickle) or a run "
                                       "folder (its student, or its student of each scale)")
                     ] = DEFAULT_TEACHER,
    data: Annotated[list[Path], typer.Option(metavar="DIR...", help="benchmark folder(s): prepared arrays or HR "
                                             "images, e.g. ../shared/data/Set5 ../shared/data/Set14 [required]")] = [],
    scales: Annotated[list[int], typer.Option(metavar="S...", help="upscaling factors")] = [2, 3, 4],
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="write the scores here")] = None,
    device: Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="where the model runs")] = "auto",
    threads: Threads = None,
    ssim: Annotated[bool, typer.Option(help="also compute SSIM")] = True,
    overwrite: Overwrite = False,
) -> None:
    """PSNR/SSIM of a torch model on benchmark sets (Y channel, border shaved, MATLAB bicubic).

    On the CPU the model runs through onnxruntime on its ONNX export (faster than torch, equal
    to 1e-6). The scores also go to the score cache ($EDGESR_HOME/scores), where a later
    edgesr distill with this model as teacher finds its teacher and bicubic rows.
    """
    from .cache import ScoreCache
    from .data.benchmark import open_set
    from .evaluate import Row, evaluate_rows
    from .io import write_json
    from .models.predict import benchmark_predictor, input_kind
    from .models.zoo import load_for_scales
    from .scores_table import scores_table
    from .train.command import resolve_device

    if not data:
        raise EdgesrError("give at least one --data folder (e.g. ../shared/data/Set5)")
    check_scales(scales)
    refuse_existing([json_out], overwrite)
    refuse_inputs([json_out], [model, *data])
    use_threads(threads)
    net, meta = load_for_scales(model, list(dict.fromkeys(scales)))
    sets = [open_set(d) for d in data]
    dev = resolve_device(device)
    row = Row(lambda: benchmark_predictor(net, dev), input_kind(net), store=ScoreCache(meta["sha256"], read=False))
    with console.status("evaluating") as status:
        scores = evaluate_rows({model: row}, sets, scales, with_ssim=ssim,
                               on_done=lambda _, s: status.update(f"{s.set} x{s.scale}: {s.psnr:.3f} dB"))[model]
    console.print(scores_table(scores, title=f"{model}"))
    if json_out:
        write_json(json_out, {"model": model, "sha256": meta["sha256"], "scores": [s.to_dict() for s in scores]})


@app.command("distill", short_help="Distill a teacher into a half-width student, without data.")
@user_errors
@host_command("distill")
def distill_cmd(
    recipe: recipe_option("quick") = None,
    teacher: Annotated[str | None, typer.Option(metavar="NAME|FILE", help="teacher zoo name or weights file "
                                                "[default: the recipe's, pytorch-vdsr in the shipped ones]")] = None,
    out: RunsFolder = Path("runs/distill"),
    device: TrainDevice = None,
    resume: Resume = None,
    threads: Threads = None,
    set_: overrides_option("batch_size=64 cmi.temperature=0.2") = [],
) -> None:
    """Data-free distillation of a VDSR teacher into a half-width student (DFSR + CMI).

    Writes runs/distill/<recipe name>/ (a new folder -2, -3, ... if it exists): the student,
    the generators, metrics.png and results.json; INT8 export calibrates on what taught the run. Without a terminal it
    prints a progress line every 30 seconds.
    """
    import time

    from .distill.command import distill

    started = time.monotonic()
    refuse_other_kind(recipe, "distill")
    run_dir, scales = distill(recipe, set_, teacher, out, device, resume, console=console, threads=threads)
    finished(started, "export the student (data-free INT8, calibrated on the run's own samples)",
             ["export", "--model", str(run_dir), "--scale", str(scales[0]), "--precision", "int8"])


teacher_app = typer.Typer(help="Train a VDSR teacher of your own.", no_args_is_help=True)
app.add_typer(teacher_app, name="teacher")


@teacher_app.command("train", short_help="Train a VDSR teacher on HR images.")
@user_errors
@host_command("teacher train")
def teacher_train_cmd(
    data: Annotated[list[Path], typer.Option(metavar="DIR", help="folder of ground-truth training images "
                                             "(e.g. ../shared/data/train291); its last validation.images files "
                                             "are held out [required for a new run]")] = [],
    scales: Annotated[list[int], typer.Option(
        metavar="S...", help="upscaling factors one network learns [default: the recipe's]")] = [],
    recipe: recipe_option("teacher") = None,
    out: RunsFolder = Path("runs/teacher"),
    device: TrainDevice = None,
    resume: Resume = None,
    threads: Threads = None,
    set_: overrides_option("budget_minutes=2.5 optim.lr=5e-4") = [],
) -> None:
    """Supervised VDSR training on HR images: MATLAB-bicubic degradations, random patches with
    flips and rotations, several scales in one network, a held-out validation split; writes
    teacher.safetensors and a Set5/Set14 table into the run folder."""
    import time

    from .teacher.command import next_step, train_teacher

    if len(data) > 1:
        raise EdgesrError("give one --data folder")
    if scales:
        check_scales(scales)
    started = time.monotonic()
    refuse_other_kind(recipe, "teacher train")
    run_dir = train_teacher(data[0] if data else None, scales, recipe, set_, out, device, resume, console=console,
                            threads=threads)
    finished(started, *next_step(run_dir))


@app.command("students", short_help="List the student families distill can train.")
@user_errors
@host_command("students")
def students_cmd() -> None:
    """List the student families (recipe key student.arch): where each works, its default
    width and depth, and its parameters and multiply-adds per 1280x720 output frame at x2,
    x3 and x4 with those defaults (the fixed anchor and in-graph bicubic, at most 16 per output
    pixel, not counted). An LR-space family trains one network per scale."""
    from rich.table import Table

    from .models.registry import FRAME, create_student, families, macs_per_frame, parameters

    table = Table(title=f"student families (multiply-adds per {FRAME[0]}x{FRAME[1]} output frame)")
    for col in ("arch", "works at", "width x depth", "params x2/x3/x4", "GMAC x2/x3/x4", "what it is"):
        table.add_column(col, overflow="fold")
    for fam in sorted(families(), key=lambda f: (f.input_kind != "bicubic", f.name)):
        nets = {s: create_student(fam.name, s, reparam=0) for s in (2, 3, 4)}
        params = "/".join(f"{parameters(n) / 1e3:.0f}k" for n in nets.values())
        macs = "/".join(f"{macs_per_frame(n, s) / 1e9:.1f}" for s, n in nets.items())
        where = "output res." if fam.input_kind == "bicubic" else "LR, per scale"
        table.add_row(fam.name, where, f"{fam.width} x {fam.depth}", params, macs, fam.summary)
    console.print(table)
    console.print("choose one with --set student.arch=NAME (and student.width, student.depth, student.anchor, "
                  "student.reparam)", highlight=False, markup=False, soft_wrap=True)


@app.command("recipes", short_help="List the named recipes and what each is for.")
@user_errors
@host_command("recipes")
def recipes_cmd() -> None:
    """List the recipe names --recipe takes, with what each is for: distillation recipes
    (edgesr distill) and teacher recipes (edgesr teacher train). Your own in ./recipes come
    first and hide shipped ones of the same name."""
    from .config import catalog, shipped_recipes
    from .distill.recipe import DistillRecipe
    from .teacher.recipe import TeacherRecipe

    entries = catalog({"distillation": DistillRecipe, "teacher": TeacherRecipe})
    width = max((len(e.name) for e in entries), default=0)
    shipped = shipped_recipes().resolve()
    for label, command in (("distillation", "edgesr distill"), ("teacher", "edgesr teacher train"), ("", "")):
        group = [e for e in entries if e.kind == label]
        if not group:
            continue
        console.print(f"{label} recipes ({command} --recipe NAME):" if label else "not recipes:",
                      highlight=False, markup=False)
        for e in group:
            own = "" if e.path.parent.resolve() == shipped else f"  [{e.path}]"
            console.print(f"  {e.name.ljust(width)}  {e.description}{own}", highlight=False, markup=False,
                          soft_wrap=True)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EdgesrError(f"{name} must be at least 1, got {value}")


@app.command("bench", short_help="Latency, memory and PSNR/SSIM of exported models.")
@user_errors
def bench_cmd(
    artifacts: Annotated[list[Path], typer.Argument(metavar="ARTIFACT", help="exported models: .onnx, .engine, "
                                                    ".mlpackage, or a TensorRT bundle folder", show_default=False)],
    data: Annotated[list[Path], typer.Option(metavar="DIR...", help="benchmark folder(s) for PSNR/SSIM, e.g. "
                                             "../shared/data/Set5 ../shared/data/Set14 [default: none: latency "
                                             "only]")] = [],
    scales: Annotated[list[int], typer.Option(metavar="S...", help="scales to score at [default: each "
                                              "artifact's own]")] = [],
    sizes: Annotated[list[int], typer.Option(metavar="N...", help="square output sizes to time, in pixels")
                     ] = [256, 512],
    warmup: Annotated[int, typer.Option(metavar="N", help="untimed runs before timing")] = 3,
    runs: Annotated[int, typer.Option(metavar="N", help="timed runs per size")] = 20,
    threads: Annotated[int | None, typer.Option(metavar="N", help="CPU threads (onnxruntime intra-op; torch) "
                                                "[default: one per physical core, onnxruntime's own default]")
                       ] = None,
    providers: Annotated[list[str], typer.Option(metavar="NAME...", help="onnxruntime providers in order: cpu, "
                                                 "cuda, tensorrt [default: the fastest this onnxruntime has]")] = [],
    torch_ref: Annotated[bool, typer.Option(
        "--torch/--no-torch", help="add a reference row: the source torch model, timed and scored (needs torch "
        "and the source weights; takes longer than the artifacts)")] = False,
    ssim: Annotated[bool, typer.Option(help="also compute SSIM")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="write all numbers here")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", metavar="FILE", help="write the table here")
                            ] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", metavar="FILE", help="write a latency-vs-PSNR plot "
                                                  "(PNG) here")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Latency (p50/p90/p99), throughput, memory and PSNR/SSIM of exported models on this device."""
    from .bench.outputs import plot, rich_tables, write_results
    from .bench.rows import check_sizes, run_bench
    from .data.benchmark import open_set
    from .threads import check_requested, physical_cores

    if scales:
        check_scales(scales)
    if warmup < 0:
        raise EdgesrError(f"--warmup must be 0 or more, got {warmup}")
    for name, v in [("--runs", runs), *(("--sizes", n) for n in sizes)]:
        _positive(name, v)
    check_sizes(sizes)
    check_requested(threads)
    if plot_out:
        require_extra("plot", "--plot")
    refuse_existing([json_out, markdown_out, plot_out], overwrite)
    refuse_inputs([json_out, markdown_out, plot_out], [*artifacts, *data])
    sets = [open_set(d) for d in data]
    asked_threads = threads
    threads = threads or physical_cores()  # explicit, so that the results can say how many
    with console.status("benchmarking") as status:
        reference = None
        if torch_ref:
            if not available("torch"):
                raise EdgesrError('--torch needs torch (not installed here): pip install "edgesr[train]"')
            from .reference import torch_row

            def reference(model: str, source_sha256: str, eval_scales):
                return torch_row(model, source_sha256, sizes, warmup, runs, sets, eval_scales, threads, ssim,
                                 status.update)

        rows = run_bench(artifacts, sizes, warmup, runs, sets, scales or None, threads, providers or None,
                         reference, ssim, progress=status.update)
    # piped output: the whole table in one piece; a terminal: in as many as its width needs
    out = console if console.is_terminal else Console(width=LOG_WIDTH)
    for table in rich_tables(rows, sizes, out.width, title="edgesr bench"):
        out.print(table)
    for r in rows:
        for note in r.notes:
            out.print(f"[dim]{escape(r.name)}: {escape(note)}[/]")
    if not torch_ref and any(r.source for r in rows):
        out.print("[dim]add --torch for a reference row of the source model run by torch[/]")
    used = list(dict.fromkeys(p for r in rows for p in r.providers))  # what the sessions run on, not the request
    settings = {"sizes": sizes, "warmup": warmup, "runs": runs, "threads": threads,
                "threads_from": "--threads" if asked_threads else "one per physical core (onnxruntime's default)",
                "providers": used, "providers_asked": providers, "data": [str(d) for d in data], "scales": scales}
    write_results(rows, sizes, settings, json_out, markdown_out)
    if plot_out:
        plot(rows, sizes, plot_out)


@app.command("upscale", short_help="Upscale photos with an exported model.")
@user_errors
def upscale_cmd(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT", help="image files and/or folders of images",
                                                 show_default=False)],
    output: Annotated[Path, typer.Option("-o", *OUT_NAMES, metavar="PATH", help="output file (one input) or "
                                         "folder", show_default=False)],
    model: Annotated[Path, typer.Option(metavar="ARTIFACT", help="exported model: .onnx, .engine, .mlpackage or a "
                                        "TensorRT bundle folder", show_default=False)],
    scale: Annotated[int | None, typer.Option(metavar="S", help="upscaling factor [default: the model's]")] = None,
    tile: Annotated[int, typer.Option(metavar="N", help="output tile side above which images are tiled "
                                      "(bounds memory; at least 64)")] = 512,
    max_mp: Annotated[float, typer.Option(metavar="MP", help="largest result, in megapixels (checked on the file's "
                                          "header before decoding)")] = 64.0,
    threads: Annotated[int | None, typer.Option(metavar="N", help="CPU threads for onnxruntime [default: "
                                                "onnxruntime's, one per core]")] = None,
    providers: Annotated[list[str], typer.Option(metavar="NAME...", help="onnxruntime providers in order: cpu, "
                                                 "cuda, tensorrt [default: cpu]")] = [],
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP + "; never an input",
                                            show_default=False)] = False,
) -> None:
    """Upscale photos: Y through the model, colour and alpha by MATLAB bicubic, bit depth kept."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .io import OutputError
    from .runtime import open_upscaler
    from .runtime.batch import max_output_pixels, plan, upscale_file
    from .runtime.memory import bytes_per_pixel, check_fits
    from .runtime.tiling import check_tile
    from .threads import check_requested

    if scale is not None:
        check_scales([scale], "--scale")
    check_tile(tile)
    check_requested(threads)
    max_pixels = max_output_pixels(max_mp)
    work = plan(inputs, output, overwrite)
    jobs = work.jobs
    upscaler = open_upscaler(model, threads, providers or None)
    if scale is not None:
        upscaler.check_scale(scale)
    check_fits(tile * tile * bytes_per_pixel(upscaler), f"--tile {tile} with {upscaler.path.name}",
               "choose a smaller --tile")
    if len(jobs) == 1:
        upscale_file(upscaler, jobs[0], scale, tile, max_pixels=max_pixels)
        console.print(f"wrote {jobs[0].dst}", soft_wrap=True)
        _upscale_notes(work)
        return
    failed = done = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        files = bar.add_task("images", total=len(jobs))
        tiles = bar.add_task("tiles", total=None, visible=False)
        for job in jobs:
            bar.update(files, description=job.src.name)
            try:
                upscale_file(upscaler, job, scale, tile, max_pixels=max_pixels,
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
    if not failed:
        console.print(f"wrote {len(jobs)} images to {output}", soft_wrap=True)
    _upscale_notes(work)
    if failed:
        raise EdgesrError(f"{failed} of {len(jobs)} images failed; the others were written to {output}")


def _upscale_notes(work) -> None:
    """The rest of upscale's summary: every file of the input folders that was not upscaled,
    by name, and the images written in another format than they were read (GIF as PNG)."""
    from .data.images import READ_SUFFIXES
    from .runtime.batch import shown

    if work.renamed():
        console.print("written as PNG (edgesr reads GIF but does not write it): "
                      + ", ".join(f"{j.src.name} -> {j.dst.name}" for j in work.renamed()),
                      soft_wrap=True, highlight=False, markup=False)
    if work.skipped:
        console.print(f"skipped {len(work.skipped)} (edgesr upscales {' '.join(sorted(READ_SUFFIXES))} files and "
                      f"does not look into subfolders): {', '.join(shown(p) for p in work.skipped)}",
                      soft_wrap=True, highlight=False, markup=False)


@app.command("demo", short_help="Serve the upscaling web page.")
@user_errors
def demo_cmd(
    model: Annotated[list[Path], typer.Option(metavar="ARTIFACT", help="exported model (.onnx, .engine, "
                                              ".mlpackage, TensorRT bundle folder); repeat the option to compare "
                                              "several on the page", show_default=False)],
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="address to listen on; 0.0.0.0 opens the page to "
                                      "your network")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="port to listen on (0: any free port)")] = 8000,
    threads: Annotated[int | None, typer.Option(metavar="N", help="CPU threads per inference for onnxruntime "
                                                "[default: onnxruntime's, one per core]")] = None,
    workers: Annotated[int, typer.Option(metavar="N", help="inferences run at once")] = DemoLimits.workers,
    queue: Annotated[int, typer.Option(metavar="N", help="uploads admitted beyond those running; more get 503 + "
                                       "Retry-After")] = DemoLimits.queue,
    max_upload_mb: Annotated[float, typer.Option(metavar="MB", help="largest upload, in MB")
                             ] = DemoLimits.max_upload / MB,
    max_mp: Annotated[float, typer.Option(metavar="MP", help="largest input image, in megapixels (checked before "
                                          "decoding)")] = DemoLimits.max_pixels / MP,
    max_output_mp: Annotated[float, typer.Option(metavar="MP", help="largest result, in megapixels")
                             ] = DemoLimits.max_output_pixels / MP,
) -> None:
    """Serve a web page that upscales the images you drop on it, beside MATLAB bicubic."""
    from .demo.catalog import build_catalog
    from .demo.limits import check_port, limits_from_flags
    from .demo.server import DemoServer, serve
    from .runtime import open_upscaler
    from .threads import check_requested

    check_port(port)
    check_requested(threads)
    limits = limits_from_flags(workers, queue, max_upload_mb, max_mp, max_output_mp)
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


@app.command("export", short_help="Export a model: ONNX, TensorRT bundle or CoreML.")
@user_errors
@host_command("export")
def export_cmd(
    model: Annotated[str, typer.Option(metavar="NAME|FILE", help="zoo name (pytorch-vdsr, edgesr-vdsr) or weights "
                                       "file, e.g. runs/distill/quick/student.safetensors")] = DEFAULT_TEACHER,
    target: Annotated[str, typer.Option(metavar="onnx|tensorrt|coreml", help="onnx: one .onnx file; tensorrt: a "
                                        "deploy bundle folder (engine built too where TensorRT runs); coreml: an "
                                        ".mlpackage")] = "onnx",
    scale: Annotated[int, typer.Option(metavar="S", help="upscaling factor, 2 to 8, one the model was made for")] = 2,
    precision: Annotated[str, typer.Option(metavar="fp32|fp16|int8", help="onnx: int8 is CPU QDQ; tensorrt: "
                                           "TensorRT QDQ; coreml: fp16 computes in FP16, int8 adds 8-bit "
                                           "weights")] = "fp32",
    input_kind: Annotated[str, typer.Option("--input", metavar="lr|bicubic", help="lr: LR in, MATLAB bicubic "
                                            "inside the model; bicubic: the network alone")] = "lr",
    calib: Annotated[str | None, typer.Option(metavar="PRIORS|RUN_DIR|IMAGE_DIR", help="INT8 calibration: prior "
                                              "names (dead-leaves, pink-noise), a distill run folder or a folder "
                                              "of HR images [default: what taught the run the model sits in, "
                                              "else dead-leaves: data-free]")] = None,
    calib_method: Annotated[str, typer.Option(metavar="minmax|entropy|percentile|mse", help="INT8 range "
                                              "calibration")] = DEFAULT_METHOD,
    float_layers: Annotated[str, typer.Option(metavar="SPEC", help="INT8: convs kept in float: auto:K (the K "
                                              "whose quantization costs most, measured per export; auto: 4 for "
                                              "tensorrt, 2 for CPU), indices (0 = first, -1 = last) "
                                              "comma-separated, or none")] = DEFAULT_FLOAT_LAYERS,
    qad_steps: Annotated[int | None, typer.Option(metavar="N", help="INT8: quantization-aware distillation steps "
                                                  "before quantizing (0 = post-training only) [default: what the "
                                                  "recipe of the run the model sits in says (int8.qad_steps: "
                                                  "300 for quick-edge), else 0]", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("-o", *OUT_NAMES, metavar="PATH", help="output file or folder [default: "
                                             "<model>_x<S>_<input>_<precision> + .onnx, _tensorrt/ or .mlpackage, "
                                             "in the current folder; <model> is the zoo name or the file's stem]")
                   ] = None,
    overwrite: Overwrite = False,
    threads: Threads = None,
) -> None:
    """Export a model for devices: ONNX (FP32/FP16/INT8), a TensorRT bundle or a CoreML package."""
    from .export.pipeline import ExportRequest, export_model

    use_threads(threads)
    req = ExportRequest(model, target, scale, precision, input_kind, calib, out, calib_method, float_layers,
                        qad_steps, overwrite)
    with console.status("exporting") as status:
        result = export_model(req, progress=lambda msg: status.update(msg))
    for note in result.notes:
        console.print(note, soft_wrap=True)
    m = result.meta
    console.print(f"wrote {result.path} (x{m.scale}, {m.input_kind} input, {m.precision})", soft_wrap=True)
    if target == "coreml" and sys.platform != "darwin":
        console.print("note: a CoreML package runs on macOS and iOS only: bench, upscale and demo cannot run it on "
                      "this machine; copy it to a Mac (deploy/ios/README.md), or export --target onnx to run here",
                      soft_wrap=True, highlight=False, markup=False)


def main() -> None:
    app(args=expand_multi_value(sys.argv[1:]), prog_name="edgesr")


if __name__ == "__main__":
    main()
