"""Print benchmark rows as a Markdown table and save them as bench/results/NAME.{json,md}."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def write_table(
    name: str,
    rows: list[dict],
    cols: list[str],
    cell: Callable[[object], str] = _cell,
    folder: Path | None = None,
) -> str:
    table = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    text = "\n".join(table)
    print(text)
    folder = RESULTS if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(rows, indent=2))
    (folder / f"{name}.md").write_text(text + "\n")
    return text
