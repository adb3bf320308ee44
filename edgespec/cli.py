"""The `edgespec` command line.

Each family of commands lives in its own module with a ``register(group)`` function; this file
holds the group, `doctor`, and the one place where user errors become a sentence and exit code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import sys

import click

from . import __version__
from .errors import EdgespecError

# Command modules, each owning one family of subcommands.
_COMMAND_MODULES = ("cli_export", "cli_run", "cli_draft", "cli_adapt", "profiling.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgespec")
def cli() -> None:
    """edgespec: fast, lossless speculative decoding for LLMs on PCs.

    \b
    Typical flow:
      edgespec export ./target --draft ./drafter -o bundle     # HF -> INT4 OpenVINO bundle
      edgespec run bundle "def fib(n):" --stats                 # speculative generation
      edgespec demo                                             # the built-in demo pair
    """


def _export_extra() -> dict:
    out = {}
    for mod in ("torch", "transformers", "optimum.intel", "nncf", "onnx", "onnxruntime", "openvino_tokenizers"):
        spec = importlib.util.find_spec(mod.split(".")[0])
        if spec is None:
            out[mod] = None
            continue
        try:
            from importlib.metadata import version

            dist = {"optimum.intel": "optimum-intel", "openvino_tokenizers": "openvino-tokenizers"}.get(mod, mod)
            out[mod] = version(dist)
        except Exception:
            out[mod] = "installed"
    return out


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
def doctor(as_json: bool) -> None:
    """Versions, devices, and whether the export extra is installed."""
    from . import _native

    report: dict = {"edgespec": __version__, "python": sys.version.split()[0], "machine": platform.machine()}
    try:
        report["native"] = _native.versions()
    except EdgespecError as e:
        report["native"] = {"error": str(e)}
    extra = _export_extra()
    report["export_extra"] = {k: v for k, v in extra.items()}
    report["export_ready"] = all(v is not None for v in extra.values())
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"edgespec {__version__}", show_header=False)
    t.add_row("python", report["python"])
    nat = report["native"]
    if "error" in nat:
        t.add_row("native runtime", f"[red]{nat['error']}[/red]")
    else:
        t.add_row("native runtime", f"libedgespec {nat['edgespec_native']} (ABI {nat['abi_version']})")
        t.add_row("openvino (native)", nat["openvino"])
        t.add_row("devices", ", ".join(nat["devices"]) or "none")
    for k, v in extra.items():
        t.add_row(k, v or "[yellow]not installed[/yellow]")
    t.add_row("export extra", "ready" if report["export_ready"] else "missing (pip install 'edgespec[export]')")
    con.print(t)


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"edgespec.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"edgespec.{name}":
                continue  # that family is not part of this build
            raise
        mod.register(cli)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI; user errors print one sentence and exit 2, no traceback."""
    try:
        cli.main(args=argv, prog_name="edgespec", standalone_mode=False)
    except EdgespecError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:  # click's form of KeyboardInterrupt
        click.echo("interrupted (Ctrl-C): stopped.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted (Ctrl-C): stopped.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
