"""``calopt surrogate``: generative fast-simulation models (train, sample; evaluate is added
by the evaluation module)."""

from __future__ import annotations

import typer

from calopt.cli.surrogate_train import sample, train

surrogate_app = typer.Typer(help="Generative surrogates of the cascade: train, sample.", no_args_is_help=True)
surrogate_app.command("train")(train)
surrogate_app.command("sample")(sample)
