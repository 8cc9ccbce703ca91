"""Entry point of the ``jaxspec`` command.

Each subcommand lives in its own module of :mod:`jaxspec.cli` and exposes ``register(app)``; this module only
assembles them and turns bad input into one line on stderr with exit status 2 (never a traceback).
"""

from __future__ import annotations

import os
import sys

import typer

from jaxspec import __version__
from jaxspec._checks import InputError
from jaxspec.cli import _figures, _spectrum, _sweep, _theory, _train, _ufm

# Modules of jaxspec.cli that each add their subcommands to the app (one line per capability).
SUBCOMMAND_MODULES = (_spectrum, _figures, _sweep, _train, _ufm, _theory)

EXIT_BAD_INPUT = 2


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="jaxspec",
        help="Spectra of deep networks: Lyapunov exponents, finite-depth singular values, alignment, theory.",
        no_args_is_help=True,
        invoke_without_command=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        ctx: typer.Context,
        version: bool = typer.Option(False, "--version", help="print the version and exit"),
    ) -> None:
        if version:
            print(f"jaxspec {__version__}")
            raise typer.Exit()
        if ctx.invoked_subcommand is None:
            print(ctx.get_help())
            raise typer.Exit()

    for module in SUBCOMMAND_MODULES:
        module.register(app)
    return app


def fail(message: str) -> None:
    """Print ``jaxspec: error: <message>`` as one line and exit with status 2."""
    first_line = " ".join(str(message).split())
    print(f"jaxspec: error: {first_line}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def main(argv: list[str] | None = None) -> None:
    # The CLI only writes figure files: no GUI backend (the library itself leaves the backend to the user, so
    # notebooks keep their inline display).
    os.environ.setdefault("MPLBACKEND", "Agg")
    command = typer.main.get_command(build_app())
    try:
        code = command.main(args=argv, prog_name="jaxspec", standalone_mode=False)
    except InputError as err:
        fail(str(err))
    except FileNotFoundError as err:
        fail(f"no such file: {err.filename or err}")
    except typer.Abort:
        print("jaxspec: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:
        # Usage errors of the (click-based) parser carry their own message and exit code 2. Typer has
        # vendored click, so match them by shape rather than by class.
        if getattr(err, "exit_code", None) == EXIT_BAD_INPUT and hasattr(err, "format_message"):
            fail(err.format_message())
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
