"""Driver family -> the CSM's next action.

A plain YAML mapping shipped with the package (`playbooks.yaml`) that a team edits or overrides
key by key with its own file, so the suggestions follow the team's playbooks rather than ours.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

HIGH_HEALTH = "high_health"  # suggested for every healthy account
FALLBACK = "default"  # for a family the mapping does not name


def load_playbooks(path: str | Path | None = None) -> dict[str, str]:
    """The shipped playbooks, with the entries of `path` (if given) replacing theirs."""
    books = _parse(resources.files("healthscore.report").joinpath("playbooks.yaml").read_text(), "playbooks.yaml")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such playbooks file")
        books |= _parse(path.read_text(), str(path))
    return books


def _parse(text: str, name: str) -> dict[str, str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{name}: playbooks are a mapping of driver family -> next action, e.g. 'late_payments: Call finance'")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"{name}: these entries need a non-empty action text: {', '.join(bad)}")
    return {k: v.strip() for k, v in data.items()}


def action_for(books: dict[str, str], family: str | None) -> str:
    return books.get(family or FALLBACK) or books[FALLBACK]
