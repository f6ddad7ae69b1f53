"""The `motif` command: one subcommand per stage.

Each subcommand lives in its stage's package as a module exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported lazily
so `motif --help` stays fast and a stage's heavy imports only load when used.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import signal
import sys

from motif_jax.errors import MotifError, disk_problem

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("motif_jax.data.collect_cli", "run NLE actors and write a dataset of caption pairs"),
    "annotate": ("motif_jax.annotate.cli", "label caption pairs with an LLM (or a score/return baseline)"),
    "export-model": ("motif_jax.annotate.export", "convert a GGUF model into a Hugging Face folder for vLLM"),
    "train-reward": ("motif_jax.reward.cli", "train the reward model on annotated pairs"),
    "inspect-reward": ("motif_jax.reward.inspect", "show best/worst captions and a reward histogram"),
    "train": ("motif_jax.agent.cli", "train a PPO agent with the Motif intrinsic reward"),
    "evaluate": ("motif_jax.evaluate.cli", "evaluate a trained agent checkpoint"),
    "plot": ("motif_jax.evaluate.plot", "plot learning curves of one or more runs"),
    "benchmark": ("motif_jax.benchmark", "measure steps/s of the pool, reward model and trainer"),
    "skills": ("motif_jax.skills.cli", "write skill and policy code with an LLM (write-code) and check it (check)"),
    "experiment": ("motif_jax.experiment.cli", "run a grid of conditions x seeds (train + evaluate) and tabulate it"),
    "quickstart": ("motif_jax.quickstart", "run the whole pipeline at small scale on embedded defaults"),
    "config": ("motif_jax.config_cli", "show a stage's resolved, typed config (`motif config show train --config F`)"),
}


# Set by the stage engine (`motif quickstart`, `motif experiment`) to its pid.
STOP_WITH_PARENT = "MOTIF_STOP_WITH_PARENT"


def stop_with_parent() -> None:
    """A stage the engine started gets SIGTERM (it saves and stops, as on Ctrl-C) when the engine dies, even
    by SIGKILL (Linux). Done here rather than in a ``preexec_fn``, which would make the engine fork while
    JAX's threads run."""
    pid = os.environ.pop(STOP_WITH_PARENT, None)
    if pid is None:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != int(pid):  # the engine died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motif", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def parse_command(argv: list[str]) -> tuple[object, argparse.Namespace]:
    """Parse ``[COMMAND, *options]`` with that command's own parser (argparse exits on bad options)."""
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"motif {name}", description=help_text)
    module.add_arguments(sub)
    return module, sub.parse_args(rest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stop_with_parent()
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0
    name = argv[0]
    module, args = parse_command(argv)
    try:
        return int(module.run(args) or 0)
    except MotifError as e:
        print(f"motif {name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if disk_problem(e) is None:
            raise
        where = f"{e.filename}: " if e.filename else ""  # a write no stage turned into its own message
        print(
            f"motif {name}: error: {where}{disk_problem(e)}; free space (or fix permissions) and rerun", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print(f"motif {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
