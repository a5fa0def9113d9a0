"""The chaos table: one row per scenario, printed at the end of the pytest session."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = ("fault", "produced", "counted", "notifications exp/deliv", "recovery s", "notes")


@dataclass(frozen=True)
class Row:
    fault: str
    produced: int
    counted: int
    notifications_expected: int
    notifications_delivered: int
    recovery_seconds: float | None
    notes: str = ""

    def cells(self) -> tuple[str, ...]:
        recovery = "-" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}"
        return (
            self.fault,
            str(self.produced),
            str(self.counted),
            f"{self.notifications_expected}/{self.notifications_delivered}",
            recovery,
            self.notes,
        )


ROWS: list[Row] = []


def record(row: Row) -> None:
    ROWS.append(row)


def table(rows: list[Row]) -> str:
    """A Markdown table (readable as is in a terminal)."""
    lines = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(HEADER), rule, *(fmt(r.cells()) for r in rows)])
