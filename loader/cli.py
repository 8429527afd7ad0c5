"""The command line: parse options, call the library, print. Nothing else lives here.

Errors are shown in one place (`main`): a `LoaderError` prints its message and exits
with its code (2 for usage and spec errors, 3 for a stopped run); `--debug` shows the
traceback as well.
"""

from __future__ import annotations

import json
import sys

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


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="loader", standalone_mode=False)
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


if __name__ == "__main__":
    main()
