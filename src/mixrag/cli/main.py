"""The ``mixrag`` command: parse, call the library, format. Nothing here the API cannot do.

This module holds the root (global options, logging) and the one entry point that turns
user mistakes into one line; the commands live by group in ``index_cmds`` (index, rm,
info, warm), ``query_cmds`` (search, ask, score), ``eval_cmd``, ``serve_cmd``, ``mcp_cmd`` and
``train_cmds`` (train, split-squad), their shared options in ``options``.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from mixrag.cli.eval_cmd import eval_cmd
from mixrag.cli.index_cmds import index_cmd, info_cmd, rm_cmd, warm_cmd
from mixrag.cli.mcp_cmd import mcp_cmd
from mixrag.cli.query_cmds import ask_cmd, score_cmd, search_cmd
from mixrag.cli.serve_cmd import serve_cmd
from mixrag.cli.train_cmds import split_cmd, train_cmd
from mixrag.errors import MixragError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mixrag: retrieval-augmented generation as a mixture model (Lewis et al., 2020).",
)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    threads: Annotated[
        int, typer.Option("--threads", help="CPU threads for the models (0 = torch's default).")
    ] = 0,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # The libraries' own load bars and notices are noise in a command-line tool.
        import os
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("mixrag.ingest.pipeline").setLevel(logging.ERROR)
    if threads:
        import torch

        torch.set_num_threads(threads)


# In this order in --help.
app.command("index")(index_cmd)
app.command("rm")(rm_cmd)
app.command("search")(search_cmd)
app.command("ask")(ask_cmd)
app.command("score")(score_cmd)
app.command("eval")(eval_cmd)
app.command("serve")(serve_cmd)
app.command("mcp")(mcp_cmd)
app.command("train")(train_cmd)
app.command("warm")(warm_cmd)
app.command("split-squad")(split_cmd)
app.command("info")(info_cmd)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and a non-zero exit code."""
    try:
        app()
    except MixragError as e:
        typer.echo(f"mixrag: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo(
            "mixrag: interrupted; everything committed before is intact, re-run to finish",
            err=True,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
