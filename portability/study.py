"""Run chapters under several float-kernel configurations and seeds; collect what their asserts test.

    python portability/study.py run 10_tiny_lm --seeds 0 1 2 3 --variants native default avx2 --jobs 2
    python portability/study.py report 10_tiny_lm           # margins of every recorded quantity, per claim
    python portability/study.py outputs 05_numerical_precision   # nbval-check-output cells that vary
    python portability/study.py findings 10_tiny_lm         # the aggregates the prose quotes (not asserts)

Each run executes one notebook in a fresh kernel (nbclient) with ERL_SEED=<seed> and the variant's
environment (`python -m entropy_rl_lite.book variants`), runs every cell even after a failing one, and
writes portability/results/<stem>/<variant>_s<seed>.json: the failing cells (nbval numbering: code cells
from 0) with the failing line, the printed output of every `nbval-check-output` cell, and the values of the
quantities QUANTITIES names for that notebook, evaluated in the kernel after the last cell. `report`
prints, for every quantity, its range over all runs and its seed-to-seed spread, which is what an assert's
threshold must clear; portability/README.md holds the results that set the chapters' margins.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "portability" / "results"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Per notebook: name -> a Python expression in the chapter's namespace (after its last cell). Each names a
# number (or a list of numbers, one per seed of the chapter) that an assert of the chapter compares.
QUANTITIES: dict[str, dict[str, str]] = {
    "05_numerical_precision": {
        "sdpa logits differ": "differ['sdpa']",
        "eager logits differ": "differ['eager']",
        **{
            f"{k} moved": f"stats[{k!r}]['frac_above'] + stats[{k!r}]['frac_below']"
            for k in (
                "A decode vs full, bf16",
                "B same, eager attention",
                "C bf16 vs fp32 softmax",
                "D decode vs full, fp32",
            )
        },
        **{
            f"{k} std": f"stats[{k!r}]['std']"
            for k in (
                "A decode vs full, bf16",
                "B same, eager attention",
                "C bf16 vs fp32 softmax",
                "D decode vs full, fp32",
            )
        },
    },
    "09_tokens": {
        "surprisal mean - exact / se": "(estimators['mean surprisal −log π(y_t)'].mean().item() - per_token_exact) / (estimators['mean surprisal −log π(y_t)'].std().item() / n_batches**0.5)",
        "logged entropy mean - exact / se": "(estimators['logged entropy (token-mean of H)'].mean().item() - per_token_exact) / (estimators['logged entropy (token-mean of H)'].std().item() / n_batches**0.5)",
        "sd ratio surprisal / logged": "sd_ratio",
        "GRPO final H/T / H0": "(grpo_tok[-1].mean() / H0_tok).item()",
        "GRPO final P(correct)": "R_grpo[-1].mean().item()",
        "GRPO final max per-position H": "H_grpo[-1].mean(0).max().item()",
        "zeta 0.1 - GRPO, min over steps of seed means": "(r1_tok[1:].mean(1) - grpo_tok[1:].mean(1)).min().item()",
        "zeta 0.1 above GRPO at step 100, seeds of 16": "int((r1_tok[100] > grpo_tok[100]).sum())",
        "zeta 0.1 final P(correct)": "R_r1[-1].mean().item()",
        "zeta 0.1 final H/T / H0": "(r1_tok[-1].mean() / H0_tok).item()",
        "zeta 0.3 final H/T / H0": "(r3_tok[-1].mean() / H0_tok).item()",
        "zeta 0.3 final P(correct)": "R_r3[-1].mean().item()",
        "zeta 0.3 last position H / uniform-correct": "(H_r3[-1].mean(0)[-1] / H_ref[-1]).item()",
    },
    "12_capstone": {
        "repo_r H end / grpo H end": "table_run.loc['repo_r', 'H end'] / table_run.loc['grpo', 'H end']",
        "repo_r H end / H start": "table_run.loc['repo_r', 'H end'] / table_run.loc['repo_r', 'H start']",
        "grpo H end / H start": "table_run.loc['grpo', 'H end'] / table_run.loc['grpo', 'H start']",
        **{f"{a} H eval": f"table_run.loc[{a!r}, 'H eval']" for a in ("grpo", "dapo", "repo_r", "adapo")},
        **{f"{a} cumulative H": f"table_run.loc[{a!r}, 'cumulative H']" for a in ("grpo", "dapo", "repo_r", "adapo")},
        "repo_r cumulative H - max of others": "table_run.loc['repo_r', 'cumulative H'] - table_run.loc[['grpo', 'dapo', 'adapo'], 'cumulative H'].max()",
        "repo_r / grpo distinct": "table_run.loc['repo_r', 'distinct correct'] / table_run.loc['grpo', 'distinct correct']",
        **{f"{a} pass@8": f"table_run.loc[{a!r}, 'pass@8']" for a in ("grpo", "dapo", "repo_r", "adapo")},
        "first step at ceiling (zeta, eps_high)": "[first_max['repo_r'], first_max['adapo']]",
        "share of later steps at the ceiling": "list(at_max.values())",
        **{f"late H/H0 {a}": f"late_H[{a!r}]" for a in ("grpo", "dapo", "repo_r", "adapo")},
        "late H repo_r / grpo": "late_H['repo_r'] / late_H['grpo']",
    },
    "10_tiny_lm_solutions": {
        "mass3 GRPO mean per seed": "[m.mean().item() for m in mass3]",
        "P(frozen) per GRPO start": "list(no_hit.values())",
        "P(frozen) mean": "p_frozen",
        "sweep late H/H0 eps 0.1": "[h / H0 for h in sweep[0.1]]",
        "sweep late H/H0 eps 0.2": "[h / H0 for h in sweep[0.2]]",
        "sweep late H/H0 eps 0.5": "[h / H0 for h in sweep[0.5]]",
        "sweep late H/H0 eps 1.0": "[h / H0 for h in sweep[1.0]]",
        "sweep range of means (nats)": "max(means) - min(means)",
        "sweep largest seed difference (nats)": "spread",
        "sweep mean(eps 1.0) - mean(eps 0.1) (nats)": "means[-1] - means[0]",
        "share_up": "share_up",
        "share_all": "share_all",
        "share gap / se": "(share_all - share_up) / se_up",
        "n up tokens": "int(up.sum())",
        "REPO-R rescue hits": "[result_e['REPO-R', i][0] for i in range(3)]",
        "bonus hits": "[result_e['entropy bonus 0.03', i][0] for i in range(3)]",
        "bonus shift-3 reward": "[result_e['entropy bonus 0.03', i][2] for i in range(3)]",
        "bonus old-task reward": "[result_e['entropy bonus 0.03', i][3] for i in range(3)]",
        "GRPO old-task reward": "[result_e['GRPO', i][3] for i in range(3)]",
    },
    "10_tiny_lm": {
        "warm reward": "after['reward']",
        "warm entropy": "after['entropy']",
        "warm distinct": "after['distinct_correct']",
        "random-init reward": "before['reward']",
        "log pi gap correct-wrong": "lp_right - lp_wrong",
        "cov(log pi, R)": "cov",
        "calibration gap / se": "(lp_right - lp_wrong) / se_gap",
        "GRPO pass@1 gain": "table1.loc['GRPO', 'pass@1'] - after['pass@1']",
        "REPO-R pass@1 gain": "table1.loc['REPO-R', 'pass@1'] - after['pass@1']",
        "DAPO - GRPO late H/H0 (seed mean)": "((H_late['DAPO'] - H_late['GRPO']) / H0).mean().item()",
        "REPO-R / GRPO late H, per seed": "(H_late['REPO-R'] / H_late['GRPO']).tolist()",
        "REPO-R / GRPO distinct, per seed": "(dc['REPO-R'] / dc['GRPO']).tolist()",
        "GRPO distinct / warm distinct": "(dc['GRPO'] / after['distinct_correct']).tolist()",
        "REPO-R zmax0.05 max / REPO-R min late H": "(H_late['REPO-R, ζ ≤ 0.05'].max() / H_late['REPO-R'].min()).item()",
        "ADAPO clip max / DAPO clip min": "(clip_hi['ADAPO'].max() / clip_hi['DAPO'].min()).item()",
        "pbar3 warm / GRPO": "gmean(pbar['no phase 1', 3]) / gmean(pbar['GRPO', 3])",
        "shift1 distinct REPO-R / GRPO": "table2.loc['REPO-R', 'end distinct correct'] / table2.loc['GRPO', 'end distinct correct']",
        "H0": "H0.tolist()",
        **{f"late H/H0 {m}": f"(H_late[{m!r}] / H0).tolist()" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO")},
        "late H/H0 REPO-R zmax0.05": "(H_late['REPO-R, ζ ≤ 0.05'] / H0[:2]).tolist()",
        **{f"distinct {m}": f"dc[{m!r}].tolist()" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO")},
        **{f"pass@1 {m}": f"[e['pass@1'] for e in final_eval[{m!r}]]" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO")},
        **{f"pass@8 {m}": f"[e['pass@8'] for e in final_eval[{m!r}]]" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO")},
        "H_max always correct": "H_max",
        "REPO-R late H": "H_late['REPO-R'].tolist()",
        "-log pi median": "q[0].item()",
        "-log pi p90": "q[1].item()",
        "first step zeta at cap, REPO-R": "[next(i for i, z in enumerate(p) if z == 1.0) for p in zeta_paths['REPO-R']]",
        "first step zeta at cap, zmax0.05": "[next(i for i, z in enumerate(p) if z == 0.05) for p in zeta_paths['REPO-R zmax0.05']]",
        "zeta leaves cap after reaching it": "[any(z != max(path) for z in path[path.index(max(path)):]) for paths in zeta_paths.values() for path in paths]",
        "share of steps at cap after reaching it": "[sum(z == max(path) for z in path[path.index(max(path)):]) / len(path[path.index(max(path)):]) for paths in zeta_paths.values() for path in paths]",
        "ADAPO steps at cap": "steps_at_cap",
        **{f"clip_frac_high {m}": f"clip_hi[{m!r}].tolist()" for m in ("GRPO", "DAPO", "ADAPO")},
        **{
            f"log10 gmean pbar3 {m}": f"math.log10(gmean(pbar[{m!r}, 3]))"
            for m in ("GRPO", "DAPO", "REPO-R", "ADAPO", "no phase 1")
        },
        **{f"min E1 {m}": f"E1[{m!r}].min().item()" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO", "no phase 1")},
        **{f"gmean E1 {m}": f"gmean(E1[{m!r}])" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO", "no phase 1")},
        **{f"gmean E3 {m}": f"gmean(E3[{m!r}])" for m in ("GRPO", "DAPO", "REPO-R", "ADAPO", "no phase 1")},
        "pbar3 REPO-R / GRPO": "gmean(pbar['REPO-R', 3]) / gmean(pbar['GRPO', 3])",
        "exact vs sampled reward / se": "(p0.mean().item() - after['reward']) / se",
        "pbar3 warm / REPO-R": "gmean(pbar['no phase 1', 3]) / gmean(pbar['REPO-R', 3])",
        "pbar3 REPO-R / collapsed": "gmean(pbar['REPO-R', 3]) / gmean(collapsed)",
        **{
            f"shift1 {c} {m}": f"table2.loc[{m!r}, {c!r}]"
            for c in ("end reward", "phase-2 mean reward", "end distinct correct")
            for m in ("GRPO", "DAPO", "REPO-R", "ADAPO", "no phase 1")
        },
        "shift3 hits": "[hits3[k] for k in sorted(hits3)]",
        "shift3 hit keys": "[f'{k[0]} {k[1]}' for k in sorted(hits3)]",
        "rho final, log pbar3": "rho.loc['final H', outcomes[0]]",
        "rho cumulative, log pbar3": "rho.loc['cumulative H', outcomes[0]]",
        "rho final, distinct shift1": "rho.loc['final H', outcomes[1]]",
        "rho cumulative, distinct shift1": "rho.loc['cumulative H', outcomes[1]]",
        "rho final vs cumulative": "ranked.corr(method='spearman').loc['final H', 'cumulative H']",
        "bootstrap interval, log pbar3": "interval[outcomes[0]]",
        "bootstrap interval, distinct shift1": "interval[outcomes[1]]",
        "REPO-R separates (final H)": "ranked.loc[is_repo, 'final H'].min() - ranked.loc[~is_repo, 'final H'].max()",
        "REPO-R separates (cumulative H)": "ranked.loc[is_repo, 'cumulative H'].min() - ranked.loc[~is_repo, 'cumulative H'].max()",
    },
}


# Per notebook: the claims its asserts make, as (what the assert says, statistic of one run's quantities `q`,
# "<" or ">", threshold[, "log"]). A statistic over "every seed" is the min or max over the chapter's seeds in
# one run. "log": a ratio or a count spread over decades, whose margin is measured in sds of its logarithm.
CLAIMS: dict[str, list[tuple]] = {
    "09_tokens": [
        (
            "§2 logged entropy estimates H/T: mean within 4 s.e. of exact",
            "abs(q['logged entropy mean - exact / se'])",
            "<",
            4,
        ),
        ("§2 surprisal estimates H/T: mean within 4 s.e. of exact", "abs(q['surprisal mean - exact / se'])", "<", 4),
        ("§2 surprisal's spread / logged entropy's > 3", "q['sd ratio surprisal / logged']", ">", 3),
        ("§2 surprisal's spread / logged entropy's < 5", "q['sd ratio surprisal / logged']", "<", 5),
        ("§4 GRPO: final H/T < 0.1 H0", "q['GRPO final H/T / H0']", "<", 0.1),
        ("§4 GRPO: final P(correct) > 0.98", "q['GRPO final P(correct)']", ">", 0.98),
        ("§4 GRPO: every position's entropy < 0.25", "q['GRPO final max per-position H']", "<", 0.25),
        (
            "§4 ζ = 0.1 above GRPO at every step (seed means)",
            "q['zeta 0.1 - GRPO, min over steps of seed means']",
            ">",
            0,
        ),
        (
            "§4 ζ = 0.1 above GRPO at step 100 in ≥ 11 of 16 seeds",
            "q['zeta 0.1 above GRPO at step 100, seeds of 16']",
            ">",
            10.5,
        ),
        ("§4 ζ = 0.1: final P(correct) > 0.97", "q['zeta 0.1 final P(correct)']", ">", 0.97),
        ("§4 ζ = 0.1: final H/T < 0.5 H0", "q['zeta 0.1 final H/T / H0']", "<", 0.5),
        ("§4 ζ = 0.3: final H/T > 0.75 H0", "q['zeta 0.3 final H/T / H0']", ">", 0.75),
        ("§4 ζ = 0.3: final P(correct) < 0.8", "q['zeta 0.3 final P(correct)']", "<", 0.8),
        (
            "§4 ζ = 0.3: last position > 2 × the uniform-correct policy's",
            "q['zeta 0.3 last position H / uniform-correct']",
            ">",
            2,
        ),
    ],
    "12_capstone": [
        ("§3 GRPO late H / H0 < 0.5", "q['late H/H0 grpo']", "<", 0.5),
        ("§3 REPO-R late H / H0 > 0.5", "q['late H/H0 repo_r']", ">", 0.5),
        ("§3 REPO-R has the largest cumulative entropy", "q['repo_r cumulative H - max of others']", ">", 0),
        ("§3 REPO-R distinct > GRPO's (ratio)", "q['repo_r / grpo distinct']", ">", 1, "log"),
        ("§3 ζ and ε_high at their ceilings by step 25", "max(q['first step at ceiling (zeta, eps_high)'])", "<", 25.5),
        ("§3 ... and there for ≥ 80% of the later steps", "min(q['share of later steps at the ceiling'])", ">", 0.8),
    ],
    "10_tiny_lm_solutions": [
        ("(c) GRPO starts: mean P(no correct sample in 40 steps) > 0.25", "q['P(frozen) mean']", ">", 0.25),
        (
            "(d) every ε_high: late H / H0 < 0.5",
            "max(q['sweep late H/H0 eps 0.1'] + q['sweep late H/H0 eps 0.2'] + q['sweep late H/H0 eps 0.5'] + q['sweep late H/H0 eps 1.0'])",
            "<",
            0.5,
        ),
        ("(e) entropy bonus: > 20 correct samples, every start", "min(q['bonus hits'])", ">", 20, "log"),
        ("(e) entropy bonus: old-task reward < 0.25, every start", "max(q['bonus old-task reward'])", "<", 0.25),
    ],
    "10_tiny_lm": [
        ("§2 random init: reward < 0.05", "q['random-init reward']", "<", 0.05),
        ("§2 warm start: reward > 0.35", "q['warm reward']", ">", 0.35),
        ("§2 warm start: reward < 0.95", "q['warm reward']", "<", 0.95),
        ("§2 warm start: distinct correct > 8", "q['warm distinct']", ">", 8),
        ("§2 calibrated: log π gap > 2 s.e.", "q['calibration gap / se']", ">", 2),
        ("§2 calibrated: Cov(log π, R) > 0", "q['cov(log pi, R)']", ">", 0),
        ("§3 GRPO late H / H0 < 0.5, every seed", "max(q['late H/H0 GRPO'])", "<", 0.5),
        ("§3 GRPO distinct < 0.5 × warm start's, every seed", "max(q['GRPO distinct / warm distinct'])", "<", 0.5),
        ("§3 GRPO pass@1 − warm start's > 0", "q['GRPO pass@1 gain']", ">", 0),
        ("§3 REPO-R late H / H0 > 0.5, every seed", "min(q['late H/H0 REPO-R'])", ">", 0.5),
        ("§3 REPO-R late H > 1.5 × GRPO's, every seed", "min(q['REPO-R / GRPO late H, per seed'])", ">", 1.5, "log"),
        (
            "§3 REPO-R distinct > 1.5 × GRPO's, every seed",
            "min(q['REPO-R / GRPO distinct, per seed'])",
            ">",
            1.5,
            "log",
        ),
        ("§3 DAPO late H / H0 < 0.5, every seed", "max(q['late H/H0 DAPO'])", "<", 0.5),
        ("§3 ADAPO late H / H0 < 0.5, every seed", "max(q['late H/H0 ADAPO'])", "<", 0.5),
        ("§3 H_max (always correct) below every H0", "min(q['H0']) - q['H_max always correct']", ">", 0),
        ("§4 90th percentile of −log π < 4", "q['-log pi p90']", "<", 4),
        (
            "§4 ζ at its cap by step 15 (both caps, every seed)",
            "max(q['first step zeta at cap, REPO-R'] + q['first step zeta at cap, zmax0.05'])",
            "<",
            15.5,
        ),
        (
            "§4 ζ at its cap for ≥ 80% of the steps after it first gets there (every path)",
            "min(q['share of steps at cap after reaching it'])",
            ">",
            0.8,
        ),
        ("§4 REPO-R ζ ≤ 0.05: late H / H0 < 0.5, every seed", "max(q['late H/H0 REPO-R zmax0.05'])", "<", 0.5),
        (
            "§4 REPO-R ζ ≤ 0.05 below REPO-R ζ ≤ 1 (max / min)",
            "q['REPO-R zmax0.05 max / REPO-R min late H']",
            "<",
            1,
            "log",
        ),
        ("§5 ADAPO steps at ε_high cap > 68 of 80, every seed", "min(q['ADAPO steps at cap'])", ">", 68),
        ("§5 ADAPO upper-clip share < 0.01, every seed", "max(q['clip_frac_high ADAPO'])", "<", 0.01),
        ("§5 ADAPO upper-clip share below DAPO's (max / min)", "q['ADAPO clip max / DAPO clip min']", "<", 1, "log"),
        ("§6 exact vs sampled warm-start reward within 4 s.e.", "abs(q['exact vs sampled reward / se'])", "<", 4),
        (
            "§6 shift 1: E1 > 3 for every method (geometric mean)",
            "min(q[f'gmean E1 {m}'] for m in ('GRPO', 'DAPO', 'REPO-R', 'ADAPO', 'no phase 1'))",
            ">",
            3,
            "log",
        ),
        ("§6 shift 3: p̄ REPO-R / p̄ of GRPO, DAPO, ADAPO > 1", "q['pbar3 REPO-R / collapsed']", ">", 1, "log"),
        ("§6 shift 3: p̄ warm start / GRPO > 3", "q['pbar3 warm / GRPO']", ">", 3, "log"),
        ("§6 shift 3: E3 GRPO < 3", "q['gmean E3 GRPO']", "<", 3, "log"),
        (
            "§6 shift 1: every start's end reward > 0.4",
            "min(q[f'shift1 end reward {m}'] for m in ('GRPO', 'DAPO', 'REPO-R', 'ADAPO', 'no phase 1'))",
            ">",
            0.4,
        ),
        ("§6 shift 1: REPO-R distinct > GRPO's (ratio)", "q['shift1 distinct REPO-R / GRPO']", ">", 1, "log"),
        ("§7 REPO-R's runs above all others: final H", "q['REPO-R separates (final H)']", ">", 0),
        ("§7 REPO-R's runs above all others: cumulative H", "q['REPO-R separates (cumulative H)']", ">", 0),
    ],
}


def _jsonable(x):
    """Tensors, numpy and pandas scalars -> plain Python numbers and lists."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def run_one(notebook: Path, seed: int, variant: str, env: dict[str, str], out: Path, timeout: int) -> dict:
    """Execute `notebook` in this process's environment (set by the parent); write and return the record."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    stem = notebook.stem
    quantities = QUANTITIES.get(stem, {})
    probe = (
        "import json as _json\n_q = {}\nfor _k, _e in %r.items():\n    try:\n        _q[_k] = eval(_e)\n"
        "    except Exception as _err:\n        _q[_k] = 'unavailable: ' + type(_err).__name__\n"
        "print('__QUANTITIES__' + _json.dumps({k: _jsonable(v) for k, v in _q.items()}, default=str))"
    )
    nb.cells.append(nbformat.v4.new_code_cell(_jsonable_source() + "\n" + probe % quantities))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    errors, outputs, values = [], {}, {}
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code[:-1]):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                tb = ANSI.sub("", "\n".join(o.get("traceback", [])))
                line = next((ln.split(maxsplit=2)[-1] for ln in tb.splitlines() if re.match(r"\s*-+>", ln)), "")
                errors.append({"cell": i, "ename": o["ename"], "evalue": o["evalue"][:300], "line": line.strip()[:300]})
        if "nbval-check-output" in cell.metadata.get("tags", []):
            text = "".join(
                "".join(o.get("text", ""))
                if o.get("output_type") == "stream"
                else "".join(o.get("data", {}).get("text/plain", ""))
                for o in cell.get("outputs", [])
                if o.get("output_type") != "error"
            )
            outputs[str(i)] = {"sha1": hashlib.sha1(text.encode()).hexdigest()[:12], "text": text[:4000]}
    for o in code[-1].get("outputs", []):
        text = "".join(o.get("text", ""))
        if "__QUANTITIES__" in text:
            values = json.loads(text.split("__QUANTITIES__", 1)[1])
    record = {
        "notebook": str(notebook.relative_to(ROOT)),
        "seed": seed,
        "variant": variant,
        "env": env,
        "seconds": round(seconds, 1),
        "errors": errors,
        "check_output": outputs,
        "quantities": values,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    return record


def _jsonable_source() -> str:
    import inspect

    return inspect.getsource(_jsonable)


def find_notebook(name: str) -> Path:
    hits = [
        p for p in sorted((ROOT / "chapters").glob("**/*.ipynb")) if name in (p.stem, p.name, str(p.relative_to(ROOT)))
    ]
    if len(hits) != 1:
        raise SystemExit(f"{name!r} matches {len(hits)} notebooks; give a stem such as 10_tiny_lm")
    return hits[0]


def variants_env(names: list[str]) -> dict[str, dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    from entropy_rl_lite.book import kernel_variants

    known = {"native": {}, **kernel_variants()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; on this machine: {', '.join(known)}")
    return {n: known[n] for n in names}


def cmd_run(args) -> None:
    from tqdm import tqdm

    nb = find_notebook(args.notebook)
    jobs = [(v, env, s) for v, env in variants_env(args.variants).items() for s in args.seeds]
    bar = tqdm(total=len(jobs), desc=nb.stem, unit="run")

    def launch(job):
        variant, env, seed = job
        out = RESULTS / nb.stem / f"{variant}_s{seed}.json"
        if out.exists() and not args.force:
            bar.update()
            return json.loads(out.read_text())
        child_env = {**os.environ, **env, "ERL_SEED": str(seed), "ERL_PROFILE": "ci"}
        cmd = [sys.executable, __file__, "_one", str(nb), str(seed), variant, json.dumps(env), str(out)]
        subprocess.run(cmd, env=child_env, check=True, timeout=args.timeout + 60)
        bar.update()
        return json.loads(out.read_text())

    with ThreadPoolExecutor(args.jobs) as pool:
        records = list(pool.map(launch, jobs))
    bar.close()
    for r in records:
        status = (
            "ok" if not r["errors"] else "; ".join(f"cell {e['cell']}: {e['line'] or e['ename']}" for e in r["errors"])
        )
        print(f"{r['variant']:>15} seed {r['seed']:>3} {r['seconds']:7.1f} s  {status}")


def load(stem: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((RESULTS / stem).glob("*.json"))]


def cmd_report(args) -> None:
    records = load(find_notebook(args.notebook).stem)
    if not records:
        raise SystemExit("no results yet: run `study.py run` first")
    print(f"{len(records)} runs: " + ", ".join(sorted({f"{r['variant']}_s{r['seed']}" for r in records})))
    failing = [r for r in records if r["errors"]]
    for r in failing:
        for e in r["errors"]:
            print(
                f"  FAIL {r['variant']} seed {r['seed']}: cell {e['cell']}: {e['line'] or e['ename']} ({e['evalue'][:80]})"
            )
    names = list(dict.fromkeys(k for r in records for k in r["quantities"]))
    print(
        f"\n{'quantity':<38} {'min':>10} {'max':>10} {'mean':>10} {'sd':>9}  n  (per run: min–max over the chapter's seeds)"
    )
    for k in names:
        vals = [r["quantities"].get(k) for r in records]
        flat = [
            float(x)
            for v in vals
            if not isinstance(v, str) and v is not None
            for x in (v if isinstance(v, list) else [v])
            if isinstance(x, (int, float))
        ]
        if not flat:
            print(f"{k:<38} {str(vals[0])[:60]}")
            continue
        sd = statistics.stdev(flat) if len(flat) > 1 else 0.0
        print(f"{k:<38} {min(flat):10.4g} {max(flat):10.4g} {statistics.fmean(flat):10.4g} {sd:9.3g} {len(flat):3d}")


def claim_table(stem: str, records: list[dict]) -> list[dict]:
    """Each claim of CLAIMS[stem] evaluated on every run: range, mean, sd and the threshold's distance in sds."""
    rows = []
    for text, expr, op, threshold, *scale in CLAIMS.get(stem, []):
        values = []
        for r in records:
            try:
                values.append(float(eval(expr, {"q": r["quantities"]})))
            except Exception:  # a quantity the run could not record (an earlier cell failed)
                pass
        if not values:
            rows.append({"claim": text, "n": 0})
            continue
        fails = sum(not (v < threshold if op == "<" else v > threshold) for v in values)
        log = scale == ["log"] and min(values) > 0 and threshold > 0
        tr = [math.log(v) for v in values] if log else values
        t = math.log(threshold) if log else threshold
        mean, sd = statistics.fmean(tr), (statistics.stdev(tr) if len(tr) > 1 else float("nan"))
        z = ((t - mean) if op == "<" else (mean - t)) / sd if sd > 0 else float("inf")
        rows.append(
            {
                "claim": text,
                "op": op,
                "threshold": threshold,
                "n": len(values),
                "min": min(values),
                "max": max(values),
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "margin_sd": z if sd > 0 else float("inf"),
                "log": log,
                "fails": fails,
            }
        )
    return rows


def cmd_claims(args) -> None:
    stem = find_notebook(args.notebook).stem
    records = load(stem)
    rows = claim_table(stem, records)
    counts = {v: sum(r["variant"] == v for r in records) for v in sorted({r["variant"] for r in records})}
    print(f"{stem}: {len(records)} runs (" + ", ".join(f"{v} ×{n}" for v, n in counts.items()) + ")")
    if args.markdown:
        print(
            "\n| claim (assert) | threshold | measured min – max | mean ± sd | margin (sd) | failures |\n|---|---|---|---|---|---|"
        )
    for row in rows:
        if not row["n"]:
            print(f"{row['claim']}: no value recorded")
            continue
        thr = f"{row['op']} {row['threshold']:g}"
        cells = (
            row["claim"],
            thr,
            f"{row['min']:.3g} – {row['max']:.3g}",
            f"{row['mean']:.3g} ± {row['sd']:.2g}",
            f"{row['margin_sd']:.1f}" + (" (log)" if row["log"] else ""),
            f"{row['fails']} of {row['n']}",
        )
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(f"{c:<12}" for c in cells))


def _frozen_at_shift3(records: list[dict]) -> str:
    counts: dict[str, list[int]] = {}
    for r in records:
        q = r["quantities"]
        for key, hits in zip(q["shift3 hit keys"], q["shift3 hits"]):
            start = key.rsplit(" ", 1)[0]
            counts.setdefault(start, [0, 0])
            counts[start][0] += hits == 0
            counts[start][1] += 1
    return ", ".join(f"{start} {frozen} of {n}" for start, (frozen, n) in counts.items())


def _rho_gap(records: list[dict], outcome: str) -> str:
    gaps = [r["quantities"][f"rho final, {outcome}"] - r["quantities"][f"rho cumulative, {outcome}"] for r in records]
    key = f"bootstrap interval, {'log pbar3' if outcome == 'log pbar3' else 'distinct shift1'}"
    excl = sum(lo > 0 or hi < 0 for lo, hi in (r["quantities"][key] for r in records))
    return (
        f"{min(gaps):+.2f} to {max(gaps):+.2f}, final ahead in {sum(g > 0 for g in gaps)} of {len(gaps)} runs; "
        f"95% interval excludes 0 in {excl} of {len(gaps)}"
    )


def _sweep(records: list[dict]) -> str:
    means = [
        [sum(r["quantities"][f"sweep late H/H0 eps {e}"]) / 2 for e in ("0.1", "0.2", "0.5", "1.0")] for r in records
    ]
    mono = sum(m == sorted(m) or m == sorted(m, reverse=True) for m in means)
    diff = [m[-1] - m[0] for m in means]
    return (
        f"mean(1.0) − mean(0.1): {statistics.fmean(diff):+.3f} H0 on average, {min(diff):+.2f} to {max(diff):+.2f}; "
        f"monotone in {mono} of {len(means)} runs"
    )


# Per notebook: aggregates over all runs that the chapters' prose and README.md quote (not asserts).
FINDINGS = {
    "10_tiny_lm": {
        "shift-3 starts frozen for all 40 steps": _frozen_at_shift3,
        "claim 13, ρ(final) − ρ(cumulative), shift-3 mass": lambda rs: _rho_gap(rs, "log pbar3"),
        "claim 13, ρ(final) − ρ(cumulative), diversity after shift 1": lambda rs: _rho_gap(rs, "distinct shift1"),
    },
    "10_tiny_lm_solutions": {"(d) the ε_high sweep": _sweep},
}


def cmd_findings(args) -> None:
    stem = find_notebook(args.notebook).stem
    records = load(stem)
    for text, fn in FINDINGS.get(stem, {}).items():
        print(f"{text}: {fn(records)}")


def cmd_outputs(args) -> None:
    records = load(find_notebook(args.notebook).stem)
    by_seed: dict[int, list[dict]] = {}
    for r in records:
        by_seed.setdefault(r["seed"], []).append(r)
    cells = sorted({int(c) for r in records for c in r["check_output"]})
    for c in cells:
        differ = [
            s for s, rs in by_seed.items() if len({r["check_output"].get(str(c), {}).get("sha1") for r in rs}) > 1
        ]
        print(
            f"cell {c}: "
            + (f"output differs across variants for seeds {differ}" if differ else "identical across variants")
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_one":
        nb, seed, variant, env, out = sys.argv[2:7]
        run_one(Path(nb), int(seed), variant, json.loads(env), Path(out), timeout=1800)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="execute a notebook for each (variant, seed)")
    run.add_argument("notebook")
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--variants", nargs="+", default=["native"])
    run.add_argument("--jobs", type=int, default=1)
    run.add_argument("--timeout", type=int, default=1800)
    run.add_argument("--force", action="store_true", help="rerun even where a result file exists")
    for name in ("report", "outputs", "claims", "findings"):
        p = sub.add_parser(name)
        p.add_argument("notebook")
        if name == "claims":
            p.add_argument("--markdown", action="store_true", help="a table for portability/README.md")
    args = ap.parse_args()
    {"run": cmd_run, "report": cmd_report, "outputs": cmd_outputs, "claims": cmd_claims, "findings": cmd_findings}[
        args.cmd
    ](args)


if __name__ == "__main__":
    main()
