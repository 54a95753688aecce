"""The claims ledger (claims.yml): which of the paper's claims the book tests, where, and with what result.

A chapter that decides a row calls `check(id, status)` after the asserts that establish it, so the ledger,
the chapter and its summary cannot disagree; the preface renders the ledger with `ledger_markdown()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATUSES = ("reproduced", "regime-dependent", "not reproduced", "undecided", "untested")
FIELDS = ("id", "claim", "where", "status", "evidence", "choices")
LEDGER = "claims.yml"


@dataclass(frozen=True)
class Claim:
    """One row of the ledger: a claim of the paper in one setting."""

    id: str  # the claim's number in docs/science.md §8, with a suffix for a setting: "4", "4-lm", "13a"
    claim: str  # the paper's wording, shortened
    where: str  # chapter stem and section, e.g. "03_objectives_and_collapse §9"
    status: str  # one of STATUSES
    evidence: str  # seeds and standard errors, in words
    choices: str  # the [ours] choices the result depends on
    ours: bool = False  # the claim itself is the book's reading, not the paper's

    @property
    def chapter(self) -> str:
        return self.where.split()[0]


def find_ledger(start: str | Path | None = None) -> Path:
    """claims.yml in `start` (default: the working directory) or the nearest folder above it."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / LEDGER).is_file():
            return folder / LEDGER
    raise FileNotFoundError(f"no {LEDGER} in {here} or any folder above it")


def load_claims(path: str | Path | None = None) -> dict[str, Claim]:
    """Read and validate the ledger: known fields, unique ids, statuses from STATUSES. Returns {id: Claim}."""
    import yaml

    path = Path(path) if path is not None else find_ledger()
    rows = (yaml.safe_load(path.read_text()) or {}).get("claims")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty list under 'claims:'")
    out: dict[str, Claim] = {}
    for i, row in enumerate(rows):
        row = dict(row)
        name = row.get("id", f"row {i}")
        missing = [f for f in FIELDS if f not in row]
        unknown = sorted(set(row) - set(FIELDS) - {"ours"})
        if missing or unknown:
            raise ValueError(f"{path}: claim {name}: missing fields {missing}, unknown fields {unknown}")
        row = {k: (v if k == "ours" else str(v)) for k, v in row.items()}
        if row["status"] not in STATUSES:
            raise ValueError(f"{path}: claim {name}: status {row['status']!r} is not one of {STATUSES}")
        if row["id"] in out:
            raise ValueError(f"{path}: claim id {row['id']!r} appears twice")
        out[row["id"]] = Claim(**row)
    return out


def check(claim_id: str, status: str, path: str | Path | None = None) -> None:
    """Assert that the ledger gives `claim_id` the status this chapter has just established; print it.

    Returns nothing, so that a cell ending in `claims.check(...)` shows only the printed line.
    """
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    ledger = load_claims(path)
    if claim_id not in ledger:
        raise KeyError(f"claim {claim_id!r} is not in the ledger; known: {', '.join(ledger)}")
    row = ledger[claim_id]
    assert row.status == status, (
        f"claim {claim_id}: this chapter finds {status!r}, the ledger ({LEDGER}) says {row.status!r}; "
        "update one of them"
    )
    print(f"claim {claim_id}: {status} (ledger agrees)")


def ledger_markdown(path: str | Path | None = None) -> str:
    """The ledger as a Markdown table, one row per claim and setting."""
    head = "| claim | the paper says | where | status | evidence | [ours] choices involved |\n|---|---|---|---|---|---|"
    lines = [head]
    for c in load_claims(path).values():
        wording = f"*[ours]* {c.claim}" if c.ours else c.claim
        where = f"ch. {c.chapter.split('_', 1)[0]} {c.where.removeprefix(c.chapter).strip()}".strip()  # "ch. 03 §9"
        cells = [c.id, wording, where, f"**{c.status}**", c.evidence, c.choices or "—"]
        lines.append("| " + " | ".join(s.replace("|", "\\|") for s in cells) + " |")
    return "\n".join(lines)
