"""Command-line trainer: `python -m entropy_rl_lite.llm.train` (or `erl-train`).

    erl-train compare --profile ci                       # warm start, GRPO/DAPO/REPO-R/ADAPO, phase 2, into runs/ci
    erl-train compare --profile gpu --jobs 5             # the capstone: 5 algorithms side by side on one GPU
    erl-train compare --profile gpu --jobs 5 --logs-only --out chapters/data/capstone_gpu   # what chapter 11 reads
    erl-train train --profile cpu --algo repo_r          # one algorithm
    erl-train train --model path/to/local/checkpoint --set lora.r=8 --set warm_start=null
    erl-train compare --profile ci --set train.lr=3e-4 --set algorithms.dapo.eps_high=0.3 --out runs/lr3e-4

A profile is a spec file in entropy_rl_lite/llm/configs/ (ci, cpu, gpu); --config uses your own file.
--set key.sub=value overrides any spec entry (values are parsed as YAML). Bad keys or values fail before
anything trains, with the field named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .experiment import RunSpec, load_spec, prune_checkpoints, run_algorithm, run_compare


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="erl-train",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode, help_ in (
        ("compare", "warm start once, then several algorithms and the sequential phase"),
        ("train", "warm start, then one algorithm (and the sequential phase)"),
    ):
        p = sub.add_parser(mode, help=help_)
        p.add_argument("--profile", default="ci", help="ci | cpu | gpu: picks configs/<profile>.yaml")
        p.add_argument("--config", help="a spec file of your own (YAML), instead of the profile's")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec entry")
        p.add_argument("--model", help="a local transformers causal-LM checkpoint to start from (no downloads)")
        p.add_argument("--out", help="output directory (default runs/<profile>)")
        p.add_argument("--device", help="cpu | cuda | cuda:1 (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
        p.add_argument(
            "--logs-only",
            action="store_true",
            help="delete the model checkpoints afterwards, keep logs and summaries (for committing a run)",
        )
        if mode == "compare":
            p.add_argument("--algos", nargs="+", help="a subset of the spec's algorithms (default: all)")
            p.add_argument("--jobs", type=int, default=1, help="algorithms run in parallel processes")
        else:
            p.add_argument("--algo", help="one of the spec's algorithms (default: the first)")
    one = sub.add_parser("one", help=argparse.SUPPRESS)  # a worker of `compare --jobs N`
    one.add_argument("--spec", required=True)
    one.add_argument("--algo", required=True)
    one.add_argument("--out", required=True)
    one.add_argument("--device")
    return ap


def _print_summary(summary: dict) -> None:
    w = max(12, *(len(n) for n in summary))
    print(
        f"{'algorithm':{w}s} {'H start':>8s} {'H end':>8s} {'reward':>7s} {'pass@1':>7s} {'distinct':>8s} "
        f"{'phase-2 reward':>15s}"
    )
    for name, res in summary.items():
        if name == "warm_start":
            ev = res["eval"]
            print(
                f"{'warm start':{w}s} {'':8s} {ev['entropy']:8.3f} {ev['reward']:7.3f} {ev['pass@1']:7.3f} "
                f"{ev['distinct_correct']:8.2f}"
            )
            continue
        p1, p2 = res["phase1"], res.get("phase2")
        if p1["entropy_start"] is None:  # steps = 0
            print(f"{name:{w}s} (no RL steps) reward {p1['eval']['reward']:.3f}")
            continue
        print(
            f"{name:{w}s} {p1['entropy_start']:8.3f} {p1['entropy_end']:8.3f} {p1['eval']['reward']:7.3f} "
            f"{p1['eval']['pass@1']:7.3f} {p1['eval']['distinct_correct']:8.2f} "
            f"{(p2['eval']['reward'] if p2 else float('nan')):15.3f}"
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
        out = Path(args.out or f"runs/{spec.profile}")
        if args.mode == "compare":
            summary = run_compare(spec, out, args.algos, args.jobs, args.device, progress=not args.no_progress)
        else:
            algo = args.algo or next(iter(spec.algorithms))
            summary = run_compare(spec, out, [algo], 1, args.device, progress=not args.no_progress)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"erl-train: error: {e}", file=sys.stderr)
        return 2
    if args.logs_only:
        prune_checkpoints(out)
    _print_summary(summary)
    print(f"logs{'' if args.logs_only else ', checkpoints'} and summary.json in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
