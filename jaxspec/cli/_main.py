"""Entry point of the ``jaxspec`` command.

Each subcommand lives in its own module of :mod:`jaxspec.cli` and exposes ``register(app)``. This module only
assembles them, lazily, and turns bad input into one line on stderr with exit status 2 (never a traceback).

Start-up stays short because nothing numerical is imported until a command runs: the root group lists the
commands from the table :data:`COMMANDS` (name, module, one-line help, optional extra) and imports a command's
module only when that command is invoked (or its own ``--help`` is asked for). Before a command that needs an
optional extra runs, :func:`missing_extra` checks that the extra is installed, so the command stops within
seconds with ``jaxspec: error: jaxspec sweep needs pip install 'jaxspec[sweep]'`` rather than failing after
the work.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import typer
import typer.core

from jaxspec import __version__
from jaxspec._errors import InputError, MissingExtraError
from jaxspec._extras import missing_modules
from jaxspec.cli._cache import enable_compile_cache

EXIT_BAD_INPUT = 2


class Command(NamedTuple):
    """One ``jaxspec`` subcommand: the module whose ``register(app)`` defines it, its help line, its extra."""

    module: str
    help: str
    extra: str | None = None
    core_flags: tuple[str, ...] = ()  # flags that make the command run on the core install (no extra needed)


# Every subcommand, in the order ``jaxspec --help`` lists them. ``extra`` names the optional dependency group
# (``pip install 'jaxspec[extra]'``) the command needs beyond the core install; see the README's table.
COMMANDS: dict[str, Command] = {
    "lyapunov": Command(
        "jaxspec.cli._spectrum", "Lyapunov exponents of a product of random layers, beside the closed form."
    ),
    "demo": Command(
        "jaxspec.cli._spectrum",
        "Spectra of Gaussian, masked and ReLU products beside their closed forms, and a figure.",
    ),
    "theory": Command(
        "jaxspec.cli._theory",
        "Closed-form exponents, per-layer standard deviations, P(K >= i) and finite-depth offsets.",
    ),
    "svals": Command(
        "jaxspec.cli._theory",
        "Exact finite-depth log singular values of a product (stratified QR), beside L lambda_i + c_i.",
    ),
    "sweep": Command(
        "jaxspec.cli._sweep",
        "Run a sweep over a grid of ensembles and seeds, sharded over devices, chunked and resumable.",
        "sweep",
        ("--template",),  # printing the shipped example spec needs no store
    ),
    "report": Command(
        "jaxspec.cli._sweep",
        "Summary figures of a sweep: exponents against width, depth or gain with theory, separation, phases.",
        "sweep",
    ),
    "train": Command(
        "jaxspec.cli._train",
        "Train while tracking singular-value dynamics, with the deep-linear predictions beside them.",
        "train",
    ),
    "ufm": Command(
        "jaxspec.cli._ufm",
        "Deep linear UFM at its collapsed optimum: gamma, loss, Hessian outliers and Gram eigenvalues.",
    ),
    "figures": Command(
        "jaxspec.cli._figures", "Reproduce the papers' figures (PNG plus the underlying data).", "figures"
    ),
}


def missing_extra(name: str) -> str | None:
    """The one-line reason command ``name`` cannot run on this install, or ``None`` when it can.

    Example:
        >>> missing_extra("lyapunov") is None
        True
    """
    extra = COMMANDS[name].extra
    absent = [] if extra is None else missing_modules(extra)
    if not absent:
        return None
    return f"jaxspec {name} needs pip install 'jaxspec[{extra}]' (missing: {', '.join(absent)})"


def _command_args(ctx) -> list[str]:
    """The command line after ``jaxspec`` (as :meth:`LazyGroup.resolve_command` saw it)."""
    return ctx.meta.get("jaxspec.args", sys.argv[1:])


def _asks_for_help(ctx) -> bool:
    return "--help" in _command_args(ctx)


def _uses_core_flags(ctx, entry: Command) -> bool:
    return any(flag in _command_args(ctx) for flag in entry.core_flags)


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them; imports a command when it runs."""

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def resolve_command(self, ctx, args):
        # Keep the whole command line: get_command decides on flags (--help, a command's core flags) that
        # click has not parsed yet when it asks for the command.
        ctx.meta["jaxspec.args"] = list(args)
        return super().resolve_command(ctx, args)

    def format_help(self, ctx, formatter) -> None:
        # The listing only needs names and help lines: hand out placeholders, import nothing.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx, name: str):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        if self._listing:
            return typer.core.TyperCommand(name, help=entry.help)
        reason = missing_extra(name)
        if reason is not None and not _asks_for_help(ctx) and not _uses_core_flags(ctx, entry):
            raise MissingExtraError(reason)
        return load_command(name)


def load_command(name: str):
    """The click command of subcommand ``name``, built from its module's ``register(app)``."""
    module = importlib.import_module(COMMANDS[name].module)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @holder.callback()
    def _group() -> None:  # a callback makes ``holder`` a group even when it registers a single command
        pass

    module.register(holder)
    return typer.main.get_command(holder).commands[name]


def build_app() -> typer.Typer:
    """The ``jaxspec`` Typer app: a lazy root group with the version option and the :data:`COMMANDS`."""
    app = typer.Typer(
        name="jaxspec",
        help="Spectra of deep networks: Lyapunov exponents, finite-depth singular values, alignment, theory.",
        cls=LazyGroup,
        no_args_is_help=True,
        invoke_without_command=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        ctx: typer.Context,
        version: bool = typer.Option(False, "--version", help="print the version and exit"),
        compile_cache: bool = typer.Option(
            True,
            "--compile-cache/--no-compile-cache",
            help="reuse compiled programs across runs (in $JAXSPEC_CACHE_DIR or ~/.cache/jaxspec/xla; "
            "JAXSPEC_COMPILE_CACHE=0 also turns it off)",
        ),
    ) -> None:
        if version:
            print(f"jaxspec {__version__}")
            raise typer.Exit()
        if ctx.invoked_subcommand is None:
            print(ctx.get_help())
            raise typer.Exit()
        if compile_cache:
            enable_compile_cache()

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
    except (InputError, MissingExtraError) as err:
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
