"""The plugin's small annotation CSV files, read line by line with errors that name ``file:line``.

Both the human-verified test list (:func:`.testlist.read_test_list`) and the shot-scale
labels file (:func:`.shotscale.read_shot_scale_labels`) follow the same rules:
UTF-8; blank lines and lines starting with ``#`` are ignored; the first other line
is the header (names compared lower-cased, surrounding spaces dropped); every row
has as many fields as the header and a non-empty video id.  :func:`iter_csv_records`
checks those rules and yields the rows; each format then checks its own columns.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moviekit import MoviekitError


@dataclass(frozen=True)
class CsvRecord:
    """One data row: its file, 1-based line number and fields by (lower-cased) header name."""

    path: Path
    line: int
    fields: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.fields[column]

    def get(self, column: str, default: str | None = None) -> str | None:
        return self.fields.get(column, default)

    def error(self, message: str) -> MoviekitError:
        """An error about this row, prefixed with ``file:line``."""
        return MoviekitError(f"{self.path}:{self.line}: {message}")

    def shot_index(self, column: str = "shot") -> int:
        """The 0-based shot index in ``column``; errors name the file and line."""
        text = self.fields[column]
        try:
            shot = int(text)
        except ValueError:
            raise self.error(f"shot {text!r} is not an integer (the 0-based shot index)") from None
        if shot < 0:
            raise self.error(f"shot {shot} is negative")
        return shot


def iter_csv_records(
    path: str | Path,
    required: Sequence[str],
    *,
    what: str,
    example: str,
    expected: str | None = None,
    check_header: Callable[[list[str]], str | None] | None = None,
    id_column: str | None = "video",
) -> Iterator[CsvRecord]:
    """The data rows of the CSV file ``path``, in order, after checking its structure.

    ``required``: columns the header must name (other columns are allowed).
    ``what``: what the file is, for the not-found and empty-file errors (e.g. ``"test list"``).
    ``example``: a header line shown when the file has none.
    ``expected``: a description of the columns added to the missing-column error.
    ``check_header``: a further check of the lower-cased header; returns an error text or None.
    ``id_column``: a required column that must not be empty in any row (the video id).

    Errors (:class:`~moviekit.MoviekitError`) name ``file:line``; they are raised while
    iterating, so a caller's own row checks keep the order of the lines.
    """
    if id_column is not None and id_column not in required:
        raise ValueError(f"id_column {id_column!r} must be one of the required columns {list(required)}")
    path = Path(path)
    if not path.is_file():
        raise MoviekitError(f"{what} {path} not found")
    header: list[str] | None = None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        row = [c.strip() for c in next(csv.reader([raw]))]
        if header is None:
            header = [c.lower() for c in row]
            missing = [c for c in required if c not in header]
            if missing:
                detail = f" (expected {expected})" if expected else ""
                raise MoviekitError(
                    f"{path}:{lineno}: the header must name the column(s) {', '.join(required)}; missing {', '.join(missing)}{detail}"
                )
            problem = check_header(header) if check_header is not None else None
            if problem:
                raise MoviekitError(f"{path}:{lineno}: {problem}")
            continue
        if len(row) != len(header):
            raise MoviekitError(f"{path}:{lineno}: {len(row)} fields but the header has {len(header)}")
        record = CsvRecord(path, lineno, dict(zip(header, row)))
        if id_column is not None and not record[id_column]:
            raise record.error(f"empty {id_column} id")
        yield record
    if header is None:
        raise MoviekitError(f"{path}: empty {what} (expected a header line such as '{example}')")
