"""Atomic output: a crash never leaves a half-written file where a result is expected.

Results are written to a hidden temporary file beside their target (`.<name>.<pid>.<random>.tmp`)
and renamed over it only when complete. A run killed outright (kill -9) cannot delete its
temporary file; the next run writing the same target removes those whose process is gone.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from healthscore.errors import UserError

TABLE_SUFFIXES = (".csv", ".parquet")


def check_output(path: str | Path, suffixes: tuple[str, ...], inputs: Iterable[str | Path | None] = (), option: str = "--out") -> Path:
    """Refuse an output before any work: a wrong extension, a folder, one of the run's inputs
    (an output never overwrites what the run reads), or a place that cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {path}: the file must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    target = path.resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == target:
            raise UserError(f"{option} {path}: is an input of this run; write the output to another file")
    folder = next(p for p in [target.parent, *target.parents] if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: cannot write in {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: the file exists and is read-only")
    return path


def check_outputs(output: str | Path, companions: dict[str, Path], inputs: Iterable[str | Path | None] = ()) -> Path:
    """`check_output` for a table output (.csv/.parquet) and the files written beside it
    (`companions`: what each is -> its path), so that none of them replaces an input."""
    inputs = list(inputs)
    check_output(output, TABLE_SUFFIXES, inputs)
    for what, path in companions.items():
        check_output(path, (Path(path).suffix,), inputs, f"--out ({what})")
    return Path(output)


def temporary_beside(path: Path) -> Path:
    """A new empty temporary file beside `path`, readable as the finished file will be, after
    removing the stale ones an earlier, killed run left for the same target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's private 0600 would hide results from their readers
    return Path(tmp)


def _remove_stale(path: Path) -> None:
    mine = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[^.]+\.tmp")
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        found = mine.fullmatch(candidate.name)
        if found and not _alive(int(found.group(1))):
            candidate.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """A frame as .csv or .parquet (by the path's suffix), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path
