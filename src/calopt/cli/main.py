"""Entry point of the ``calopt`` command. User errors print one line and exit with code 2."""

from __future__ import annotations

import sys

import typer
from typer.exceptions import Abort, TyperException

from calopt.cli.cache import cache_app
from calopt.cli.demo import demo
from calopt.cli.evaluate import evaluate
from calopt.cli.events import events_app
from calopt.cli.layout import layout_app
from calopt.cli.optimize import optimize, report
from calopt.cli.simulate import simulate
from calopt.cli.surrogate import surrogate_app
from calopt.cli.technologies import technologies
from calopt.cli.validate import validate
from calopt.errors import CaloptInputError

app = typer.Typer(
    name="calopt",
    help="calopt: machine-learning-assisted, end-to-end optimisation of calorimeter design.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts give units in brackets ([mm]), not markup
)
app.command("technologies")(technologies)
app.command("simulate")(simulate)
app.command("validate")(validate)
app.command("evaluate")(evaluate)
app.command("optimize")(optimize)
app.command("report")(report)
app.command("demo")(demo)
app.add_typer(layout_app, name="layout")
app.add_typer(events_app, name="events")
app.add_typer(surrogate_app, name="surrogate")
app.add_typer(cache_app, name="cache")


def main(argv: list[str] | None = None) -> None:
    """Run the app; a :class:`CaloptInputError` or a usage error becomes one line on stderr
    and exit code 2."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="calopt", standalone_mode=False)
    except CaloptInputError as exc:
        print(f"calopt: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:  # usage errors: bad option values, missing options, unknown commands
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(0)
        fmt = getattr(exc, "format_message", None)
        msg = (fmt() if fmt else str(exc)).replace("\n", " ")
        print(f"calopt: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        print("calopt: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
