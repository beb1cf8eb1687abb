"""Entry point of the ``calopt`` command. User errors print one line and exit with code 2;
Ctrl-C prints one line and exits with code 130 (docs/cli.md, "The contract")."""

from __future__ import annotations

import functools
import inspect
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import typer
from typer.exceptions import Abort, TyperException

from calopt.cli.cache import cache_app
from calopt.cli.demo import demo
from calopt.cli.evaluate import evaluate
from calopt.cli.events import events_app
from calopt.cli.layout import layout_app
from calopt.cli.module import module_app
from calopt.cli.optimize import optimize, report
from calopt.cli.showers import showers_app
from calopt.cli.simulate import simulate
from calopt.cli.surrogate import surrogate_app
from calopt.cli.technologies import technologies
from calopt.cli.timing import timing_app
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
app.add_typer(module_app, name="module")
app.add_typer(events_app, name="events")
app.add_typer(surrogate_app, name="surrogate")
app.add_typer(showers_app, name="showers")
app.add_typer(cache_app, name="cache")
app.add_typer(timing_app, name="timing")


def _flag(name: str, param: inspect.Parameter) -> str:
    decls = getattr(param.default, "param_decls", None) or ()
    longs = [d for d in decls if d.startswith("--")]
    return longs[0].split("/")[0] if longs else name.upper()


def finite_numbers(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its float arguments (and tuples of them) checked to be finite: NaN or an
    infinity from the command line is refused in one line naming the option, before anything
    runs or is written. Every command goes through this; ranges are each option's own."""
    flags = {name: _flag(name, par) for name, par in inspect.signature(fn).parameters.items()}

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        for name, value in kwargs.items():
            for v in value if isinstance(value, tuple | list) else (value,):
                if isinstance(v, float) and not math.isfinite(v):
                    raise CaloptInputError(f"{flags.get(name, name)} must be a finite number, got {v}")
        return fn(**kwargs)

    return wrapper


def _check_all(t: typer.Typer) -> None:
    for info in t.registered_commands:
        if info.callback is not None and not hasattr(info.callback, "__wrapped__"):
            info.callback = finite_numbers(info.callback)
    for group in t.registered_groups:
        if group.typer_instance is not None:
            _check_all(group.typer_instance)


_check_all(app)


def _stop_children() -> None:
    """Terminate this process's children (Dask workers of a LocalCluster), which an
    immediate exit would otherwise leave running."""
    try:
        import psutil  # a dependency of dask.distributed
    except ImportError:
        return
    children = psutil.Process().children(recursive=True)
    for c in children:
        try:
            c.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=2.0)
    for c in alive:
        try:
            c.kill()
        except psutil.Error:
            pass


def _on_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C: remove the temporary files of writes under way, stop the workers, say so in one
    line and end with code 130 at once. Finished parts (chunks, trials, cache entries) are
    complete files or committed rows, so a rerun resumes from them. Ending without unwinding
    is deliberate: an exception raised into a compiled (numba) kernel's callbacks crashes the
    interpreter, and unwinding through Dask's shutdown can hang."""
    from calopt.files import remove_temporary_files

    remove_temporary_files()
    _stop_children()
    tty = sys.stderr.isatty()
    os.write(2, (b"\x1b[?25h\n" if tty else b"") + b"calopt: interrupted\n")  # a progress bar hides the cursor
    os._exit(130)


def main(argv: list[str] | None = None) -> None:
    """Run the app; a :class:`CaloptInputError`, a usage error or an :class:`OSError` on a
    named file becomes one line on stderr and exit code 2; Ctrl-C exits with code 130."""
    command = typer.main.get_command(app)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_interrupt) if in_main_thread else None
    try:
        _run(command, argv)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)


def _given(argv: list[str], param: Any) -> str | None:
    """What the command line gave ``param`` (its last occurrence), for a message that names
    the refused value; None if it cannot be found."""
    opts = getattr(param, "opts", None) or ()
    nargs = max(int(getattr(param, "nargs", 1) or 1), 1)
    for i in range(len(argv) - 1, -1, -1):
        if argv[i] in opts and i + nargs < len(argv):
            return " ".join(repr(v) for v in argv[i + 1 : i + 1 + nargs])
        name, eq, value = argv[i].partition("=")
        if eq and name in opts:
            return repr(value)
    return None


def _run(command: Any, argv: list[str] | None) -> None:
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
        given = _given(sys.argv[1:] if argv is None else argv, getattr(exc, "param", None))
        if given is not None and "got" not in msg:
            msg += f", got {given}"
        print(f"calopt: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        print("calopt: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # the system refused a file the user named (disk full, permissions, ...)
        if exc.filename is None:
            raise
        reason = exc.strerror or type(exc).__name__
        print(f"calopt: error: {exc.filename}: {reason}", file=sys.stderr)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
