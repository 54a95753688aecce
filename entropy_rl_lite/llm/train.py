"""Command-line trainer: `python -m entropy_rl_lite.llm.train` (or `erl-train`).

    erl-train compare --profile ci                       # warm start, GRPO/DAPO/REPO-R/ADAPO, phase 2, into runs/ci
    erl-train compare --profile gpu --jobs 5             # the capstone: its 11 algorithms, 5 at a time on one GPU
    erl-train compare --profile gpu --jobs 5 --logs-only --out chapters/data/capstone_gpu   # what chapter 12 reads
    erl-train train --profile cpu --algo repo_r          # one algorithm
    erl-train train --model path/to/local/checkpoint --set lora.r=8 --set warm_start=null
    erl-train compare --profile ci --set train.lr=3e-4 --set algorithms.dapo.eps_high=0.3 --out runs/lr3e-4

A profile is a spec file in entropy_rl_lite/llm/configs/ (ci, cpu, gpu); --config uses your own file.
--set key.sub=value overrides any spec entry (values are parsed as YAML 1.2: 1e-4 is a number; a number in
quotes is converted to the field's type; true/false are the only booleans). Bad keys or values, a device
this machine lacks and a missing --model fail in one line before anything is written or trained.
--out must be new or empty; --overwrite replaces a previous run there, --resume finishes one.
`erl-train compare --help` lists every spec key and TrainConfig field, with its default and meaning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .estimate import describe_cpu_run
from .experiment import RunSpec, check_device, load_spec, prune_checkpoints, run_algorithm, run_compare
from .outdir import check_out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="erl-train",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="mode", required=True, metavar="{compare,train}")  # `one` is internal
    for mode, help_ in (
        ("compare", "warm start once, then several algorithms and the sequential phase"),
        ("train", "warm start, then one algorithm (and the sequential phase)"),
    ):
        p = sub.add_parser(
            mode,
            help=help_,
            description=help_,
            epilog=_fields_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--profile", default="ci", help="ci | cpu | gpu: picks configs/<profile>.yaml (default: ci, on any machine)"
        )
        p.add_argument("--config", help="a spec file of your own (YAML), instead of the profile's")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec entry")
        p.add_argument("--model", help="a local transformers causal-LM checkpoint to start from (no downloads)")
        p.add_argument("--out", help="output directory, new or empty (default runs/<profile>)")
        mode_group = p.add_mutually_exclusive_group()
        mode_group.add_argument("--overwrite", action="store_true", help="replace the previous run in --out")
        mode_group.add_argument(
            "--resume", action="store_true", help="finish the run in --out: keep its warm start and finished algorithms"
        )
        p.add_argument("--device", help="cpu | cuda | cuda:1 (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
        p.add_argument(
            "--logs-only",
            action="store_true",
            help="delete the model checkpoints afterwards, keep logs and summaries (for committing a run)",
        )
        algos = "; ".join(f"{prof}: {', '.join(load_spec(prof).algorithms)}" for prof in ("ci", "cpu", "gpu"))
        if mode == "compare":
            p.add_argument("--algos", nargs="+", help=f"a subset of the spec's algorithms (default: all; {algos})")
            p.add_argument("--jobs", type=int, default=1, help="algorithms run in parallel processes")
        else:
            p.add_argument("--algo", help=f"one of the spec's algorithms (default: the first; {algos})")
    one = sub.add_parser("one")  # a worker of `compare --jobs N`; no help= keeps it out of the listing
    one.add_argument("--spec", required=True)
    one.add_argument("--algo", required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--device")
    return ap


def _fields_epilog() -> str:
    from ..field_docs import format_fields
    from .config import TrainConfig
    from .spec import PLACED_FIELDS

    return (
        "spec keys: profile, seed, model, task.*, phase2_task.*, warm_start.*, lora.*, eval_samples, eval_ks, and\n"
        "TrainConfig fields under train.* (every algorithm), algorithms.<name>.* (one) and phase2.* (phase 2):\n\n"
        + format_fields(TrainConfig, prefix="train.", skip=PLACED_FIELDS)
    )


def _print_summary(summary: dict) -> None:
    """One row per algorithm: the training batches' entropy at the first and last step, then the evaluation after
    phase 1 (entropy, reward, pass@1, distinct correct answers) and phase 2's evaluated reward."""
    w = max(12, *(len(n) for n in summary))
    print(f"{'':{w}s} {'train batches':>17s}   {'evaluation after phase 1':>34s}   {'phase 2':>7s}")
    print(
        f"{'algorithm':{w}s} {'H first':>8s} {'H last':>8s}   {'H':>7s} {'reward':>7s} {'pass@1':>7s} "
        f"{'distinct':>9s}   {'reward':>7s}"
    )
    for name, res in summary.items():
        if name == "warm_start":
            ev = res["eval"]
            print(
                f"{'warm start':{w}s} {'':8s} {'':8s}   {ev['entropy']:7.3f} {ev['reward']:7.3f} {ev['pass@1']:7.3f} "
                f"{ev['distinct_correct']:9.2f}"
            )
            continue
        p1, p2 = res["phase1"], res.get("phase2")
        ev = p1["eval"]
        first, last = (
            ("-", "-") if p1["entropy_start"] is None else (f"{p1['entropy_start']:.3f}", f"{p1['entropy_end']:.3f}")
        )
        print(
            f"{name:{w}s} {first:>8s} {last:>8s}   {ev['entropy']:7.3f} {ev['reward']:7.3f} {ev['pass@1']:7.3f} "
            f"{ev['distinct_correct']:9.2f}   {(p2['eval']['reward'] if p2 else float('nan')):7.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.mode == "one":
            import yaml

            spec = RunSpec.from_dict(yaml.safe_load(Path(args.spec).read_text()))
            run_algorithm(spec, args.algo, args.out, args.device, progress=False)
            return 0
        overrides = list(args.set) + ([f"model={json.dumps(args.model)}"] if args.model else [])
        spec = load_spec(args.profile, args.config, overrides)
        out = check_out(args.out if args.out is not None else f"runs/{spec.profile}")
        device = check_device(args.device)
        names = args.algos if args.mode == "compare" else [args.algo or next(iter(spec.algorithms))]
        for n in names or []:
            spec.train_config(n)  # an unknown name fails before the warning below
        if spec.profile == "gpu" and device.type == "cpu":
            print(f"erl-train: warning: {describe_cpu_run(spec, names)}", file=sys.stderr)
        mode = "overwrite" if args.overwrite else "resume" if args.resume else "new"
        jobs = args.jobs if args.mode == "compare" else 1
        summary = run_compare(spec, out, names, jobs, str(device), progress=not args.no_progress, mode=mode)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"erl-train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("erl-train: interrupted; `--resume` with the same settings finishes the run", file=sys.stderr)
        return 130
    if args.logs_only:
        prune_checkpoints(out)
    _print_summary(summary)
    print(f"logs{'' if args.logs_only else ', checkpoints'} and summary.json in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
