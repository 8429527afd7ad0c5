"""The command line: parse options, call the library, print. Nothing else lives here.

Errors are shown in one place (`main`): a `LoaderError` prints its message and exits
with its code (2 for usage and spec errors, 3 for a stopped run); `--debug` shows the
traceback as well.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from loader import __version__
from loader.errors import LoaderError


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


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read this file instead of the spec's source.file.",
)
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
    from loader.spec import load_spec

    loaded = load_spec(spec)
    if source is not None:
        loaded = loaded.with_source(source)
    for warning in loaded.warnings:
        click.echo(f"Warning: {warning}", err=True)
    result = dry_run(loaded, out_dir=out_dir, max_errors=max_errors, emit=emit, progress=True)
    s = result.summary
    click.echo(
        f"{s.rows} rows: {s.valid} valid, {s.invalid} invalid "
        f"({s.issues} errors, {s.warnings} warnings)"
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
