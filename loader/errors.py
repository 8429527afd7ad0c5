"""The exceptions that stop a run.

Per-row problems are never exceptions: they are `loader.issues.Issue` records. An
exception here means the run as a whole cannot go on (a bad spec, an unreadable file,
a target that refuses every token, a ledger that belongs to another spec).

    LoaderError                 base; `str(exc)` is the message a user reads
     ├── SpecError              the spec file is wrong (carries every problem found)
     ├── SourceError            the source file cannot be read as a table
     ├── LedgerError            the ledger file is unusable or belongs to another run
     ├── TargetError            the target cannot be reached or refuses the run
     │    └── AuthError         credentials refused (what to check is in the message)
     └── StopRun                the run stopped on purpose (rows in doubt, error budget)

Wrap errors of the libraries below (yaml, openpyxl, sqlite3, httpx2) where they enter,
with `raise SourceError(...) from exc`, so that a user never sees a traceback unless
they ask for one with `--debug`.
"""

from __future__ import annotations

from dataclasses import dataclass


class LoaderError(Exception):
    """Base of every error that stops a run. Its message says what, where and what next."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One problem in a spec file, pointing at the place a user edits."""

    file: str
    line: int | None  # 1-based; None when the problem has no single place
    column: int | None  # 1-based
    path: str  # place in the document, e.g. "steps[0].fields.Customer.Email.map"
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        at = f" ({self.path})" if self.path else ""
        return f"{where}{at}: {self.message}"


class SpecError(LoaderError):
    """The spec is wrong. Holds every problem found, not only the first."""

    def __init__(self, problems: list[SpecProblem] | SpecProblem) -> None:
        self.problems = [problems] if isinstance(problems, SpecProblem) else list(problems)
        count = len(self.problems)
        head = "spec error" if count == 1 else f"{count} spec errors"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class SourceError(LoaderError):
    """The source file cannot be read as a table (missing, binary, .xls, no such sheet...)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class LedgerError(LoaderError):
    """The ledger cannot be used: corrupt, newer schema, or made by another spec."""


class TargetError(LoaderError):
    """The target cannot be reached, or answers in a way that stops the whole run."""

    exit_code = 1


class AuthError(TargetError):
    """The target refused the credentials. The message says what to check."""


class StopRun(LoaderError):
    """The run stopped on purpose: rows in doubt under --in-doubt stop, or an error budget."""

    exit_code = 3
