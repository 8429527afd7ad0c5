"""The command line: parse options, call the library, print. Nothing else lives here.

Errors are shown in one place (`main`): a `LoaderError` prints its message and exits
with its code (2 for usage and spec errors, 3 for a stopped run); `--debug` shows the
traceback as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from loader import __version__
from loader.errors import LoaderError

if TYPE_CHECKING:
    from loader.spec import Spec


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loader")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Declarative bulk loader for case-management REST APIs."""
    ctx.obj = {"debug": debug}


@cli.command()
def schema() -> None:
    """Print the JSON Schema of mapping specs (for editors and the YAML language server)."""
    from loader.resources import load_schema

    click.echo(json.dumps(load_schema("spec.schema.json"), indent=2))


# Shared by validate and run: the spec, and another file in place of its source.
spec_argument = click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
source_option = click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read this file instead of the spec's source.file.",
)


def _load(spec: Path, source: Path | None) -> Spec:
    """The spec, with --source in place of its source.file; its warnings on stderr."""
    from loader.spec import load_spec

    loaded = load_spec(spec)
    if source is not None:
        loaded = loaded.with_source(source)
    for warning in loaded.warnings:
        click.echo(f"Warning: {warning}", err=True)
    return loaded


@cli.command()
@spec_argument
@source_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.html, report.json and rejects (default: runs/<spec name>).",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    help="Stop after this many errors (exit 3): for hopeless files.",
)
@click.option(
    "--emit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the payloads of valid rows to this JSONL file.",
)
def validate(
    spec: Path, source: Path | None, out_dir: Path | None, max_errors: int | None, emit: Path | None
) -> int:
    """Check every row of SPEC's source against the mapping and the API schemas.

    Sends nothing. Exit 0 if every row is valid, 1 if some are not, 2 for a spec error.
    """
    from loader.dryrun import dry_run

    loaded = _load(spec, source)
    result = dry_run(loaded, out_dir=out_dir, max_errors=max_errors, emit=emit, progress=True)
    s = result.summary
    click.echo(
        f"{_count(s.rows, 'row')}: {s.valid} valid, {s.invalid} invalid "
        f"({_count(s.issues - s.warnings, 'error')}, {_count(s.warnings, 'warning')})"
    )
    if s.stopped_early:
        click.echo(f"Stopped early: --max-errors {max_errors} reached.")
    click.echo(f"Report:  {result.report_html}")
    click.echo(f"         {result.report_json}")
    if result.rejects:
        click.echo(f"Rejects: {result.rejects}")
    if result.emitted:
        click.echo(f"Payloads: {result.emitted}")
    return result.exit_code


@cli.command()
@spec_argument
@source_option
@click.option(
    "--target",
    help="Tenant URL (https://uat.icasework.com/?db=ACCOUNT, https://ACCOUNT.icasework.com/, "
    "or a sandbox's URL); credentials from LOADER_API_KEY and LOADER_API_SECRET. "
    "Default: an embedded sandbox beside the ledger.",
)
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ledger file (default: runs/<spec name>/ledger.sqlite). The same ledger resumes.",
)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Requests per second.")
@click.option("--burst", type=click.IntRange(min=1), help="Requests allowed at once above --rate.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Requests in flight at most.",
)
@click.option("--limit", type=click.IntRange(min=0), help="Send at most this many rows.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for results.csv, failures.csv, run-summary.json (default: the ledger's).",
)
@click.option(
    "--in-doubt",
    type=click.Choice(["stop", "lookup", "resend"]),
    default="lookup",
    show_default=True,
    help="Rows whose request may have been applied. lookup: look up where the operation "
    "can, resend where it is idempotent, else stop and list them; resend: the same, but "
    "resend the rest too (risking duplicates); stop: settle none, stop and list them.",
)
@click.option("--retry-failed", is_flag=True, help="Send failed rows again.")
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of NAME=value lines with LOADER_API_KEY and LOADER_API_SECRET; "
    "its values win over the environment's.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    help="Error budget: stop (exit 3) once this many rows failed in this run.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON line per attempt (no payload values, no tokens).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary.")
@click.option("--chunk-size", type=click.IntRange(min=1), hidden=True, default=5000)
def run(
    spec: Path,
    source: Path | None,
    target: str | None,
    ledger: Path | None,
    rate: float | None,
    burst: int | None,
    concurrency: int,
    limit: int | None,
    out_dir: Path | None,
    in_doubt: str,
    retry_failed: bool,
    credentials_file: Path | None,
    max_failures: int | None,
    log_file: Path | None,
    quiet: bool,
    chunk_size: int,
) -> int:
    """Send SPEC's rows to the target, throttled and resumable; run again to resume.

    Exit 0 all rows succeeded (or were done), 1 some failed or were rejected, 2 spec error,
    3 stopped (rows in doubt, --max-failures reached), 130 interrupted.
    """
    from loader.execute import InDoubtPolicy, Settings
    from loader.run import RunOptions
    from loader.run import run as run_spec

    loaded = _load(spec, source)
    policy = cast(InDoubtPolicy, in_doubt)  # click.Choice checked it
    settings = Settings(
        concurrency=concurrency,
        in_doubt=policy,
        upload_limit=chunk_size,
        max_failures=max_failures,
    )
    options = RunOptions(
        target=target,
        ledger=ledger,
        out=out_dir,
        rate=rate,
        burst=burst,
        limit=limit,
        retry_failed=retry_failed,
        log_file=log_file,
        progress=not quiet,
        settings=settings,
    )
    environ: dict[str, str] = dict(os.environ)
    if credentials_file is not None:
        from loader.auth import read_credentials_file

        environ.update(read_credentials_file(credentials_file))
    result = run_spec(
        loaded, options, environ=environ, echo=lambda line: click.echo(line, err=True)
    )
    if not quiet:
        for line in result.lines:
            click.echo(line)
        click.echo(f"Results: {result.out_dir / 'results.csv'}")
        failures = result.out_dir / "failures.csv"
        if failures.exists():
            click.echo(f"Not loaded: {failures}")
    elif result.status.endswith("stopped") or result.status == "interrupted":
        click.echo(result.lines[-1], err=True)  # why it stopped, even for scripts
    return result.exit_code


@cli.command()
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status(ledger: Path, as_json: bool) -> None:
    """Counts by state and step, the last run's rate and the most frequent errors."""
    from loader.results import format_status, status_report

    report = status_report(ledger)
    click.echo(json.dumps(report, indent=2) if as_json else format_status(report))


@cli.command()
@click.argument("ledger", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the CSV here (default: standard output).",
)
def results(ledger: Path, out_file: Path | None) -> None:
    """Source key, row, step, state, target id, error code and info of every entry (CSV)."""
    from loader.ledger import Ledger
    from loader.results import write_results

    with Ledger.open(ledger, readonly=True) as opened:
        count = write_results(opened, out_file)
    if out_file is not None:
        click.echo(f"{count} entries written to {out_file}", err=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
    help="Port to listen on; 0 picks a free one.",
)  # fmt: skip
@click.option(
    "--store", type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file to keep cases in (default: a temporary file, removed at exit).",
)  # fmt: skip
@click.option("--account", default="demo", show_default=True, help="Account name (?db=).")
@click.option("--api-key", default="sandbox-key", show_default=True)
@click.option("--api-secret", default="sandbox-secret", show_default=True)
@click.option(
    "--tenant", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tenant YAML: case types, value lists, reports (default: built in).",
)  # fmt: skip
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Delay per answer, ms.")
@click.option("--jitter", type=click.FloatRange(min=0), default=0.0, help="± random delay, ms.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Requests/s allowed.")
@click.option("--burst", type=click.FloatRange(min=1), help="Token-bucket size (default: rate).")
@click.option(
    "--fail-rate", type=click.FloatRange(0, 1), default=0.0,
    help="Share of writes answered --fail-status before they are applied.",
)  # fmt: skip
@click.option("--fail-status", type=click.IntRange(500, 599), default=503, show_default=True)
@click.option(
    "--drop-rate", type=click.FloatRange(0, 1), default=0.0,
    help="Share of writes applied, then left unanswered (connection closed).",
)  # fmt: skip
@click.option("--token-ttl", type=click.IntRange(min=1), default=3600, show_default=True,
              help="Seconds an access token lives.")  # fmt: skip
@click.option("--seed", type=int, help="Make fail/drop/jitter decisions reproducible.")
def sandbox(
    host: str, port: int, store: Path | None, account: str, api_key: str, api_secret: str,
    tenant: Path | None, latency: float, jitter: float, rate: float | None,
    burst: float | None, fail_rate: float, fail_status: int, drop_rate: float,
    token_ttl: int, seed: int | None,
) -> None:  # fmt: skip
    """Serve a local iCasework emulator until interrupted (Ctrl+C)."""
    from loader.sandbox import Sandbox, SandboxConfig

    config = SandboxConfig(
        account=account, api_key=api_key, api_secret=api_secret, store=store, host=host,
        port=port, latency_ms=latency, jitter_ms=jitter, rate=rate, burst=burst,
        fail_rate=fail_rate, fail_status=fail_status, drop_rate=drop_rate,
        token_ttl=token_ttl, tenant=tenant, seed=seed,
    )  # fmt: skip
    server = Sandbox(config)
    base = server.bind()
    click.echo(f"Sandbox listening on {base}")
    click.echo(f"  target:     {server.url}")
    click.echo(f"  token URL:  {base}/token?db={account}")
    click.echo(f"  API key:    {api_key}")
    click.echo(f"  API secret: {api_secret}")
    click.echo(f"  store:      {server.store_path}")
    click.echo("Press Ctrl+C to stop.")
    # uvicorn stops on Ctrl+C and re-raises it afterwards (unless SIGINT was ignored, as
    # in a background job): either way the server is down and its files are closed.
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
    click.echo("Sandbox stopped.")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="loader", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LoaderError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
