"""The ``probes`` command: argparse built from the specs, then a pipeline (``probes.pipelines.commands``).

Nothing here holds a default or a step of a pipeline: every option is a field of a spec
(``probes.pipelines.specs``), whose help and default the flag shows. ``probes COMMAND --help`` lists them.

Errors: bad input or an environment problem (a ``ProbesError``, a full disk, a folder that cannot be
written) is one line, exit 2; Ctrl-C says how to resume, exit 130; anything else is a bug: its
traceback, and a line asking to report it, exit 1. ``PROBES_DEBUG=1`` shows every traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from analysis.errors import ProbesError
from probes.pipelines.commands import COMMANDS, GROUPS, Command
from probes.registry import REGISTRIES

ISSUES = "https://github.com/emergence-probes/emergence-probes/issues"
ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EPERM: "not permitted",
}


def _scalar(annotation: Any) -> tuple[type, list[str] | None]:
    """The argparse type and choices of a (non-list) annotation."""
    args = (
        [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) not in (None, Literal)
        else [annotation]
    )
    for arg in args:
        if get_origin(arg) is Literal:
            return str, [str(c) for c in get_args(arg)]
    for arg in args:
        if arg in (int, float, str):
            return arg, None
    return str, None


def _is_list(annotation: Any) -> tuple[bool, Any]:
    if get_origin(annotation) is list:
        return True, get_args(annotation)[0]
    for arg in get_args(annotation):
        if get_origin(arg) is list:
            return True, get_args(arg)[0]
    return False, None


def add_spec_options(parser: argparse.ArgumentParser, spec: Any) -> None:
    """One argument per spec field: ``--top-k`` for ``top_k``; help and default from the field."""
    for name, field in spec.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False:
            continue
        default = field.get_default(call_default_factory=True)
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        description = field.description or ""
        if extra.get("registry"):  # the names registered now, a class of the user's own included
            registry = REGISTRIES[extra["registry"]]
            description = extra["lead"] + registry.help(**extra.get("traits", {}))
        help_text = description + ("" if default is None or field.is_required() else f" (default: {shown})")
        is_list, item = _is_list(field.annotation)
        kind, choices = _scalar(item if is_list else field.annotation)
        options: dict[str, Any] = {"help": help_text.replace("%", "%%")}
        if extra.get("metavar"):
            options["metavar"] = extra["metavar"]
        if field.annotation is bool:
            options["action"] = argparse.BooleanOptionalAction if default else "store_true"
        else:
            options.update(type=kind, choices=choices)
            if is_list:
                options["nargs"] = "+"
        if extra.get("positional"):
            parser.add_argument(name, **options)
        else:
            parser.add_argument("--" + name.replace("_", "-"), dest=name, default=argparse.SUPPRESS, **options)


def _add_command(sub: Any, command: Command, title: str) -> None:
    p = sub.add_parser(title, help=command.help, description=command.description)
    for name, help_text in command.positional:
        p.add_argument(name, help=help_text)
    if command.spec is not None:
        add_spec_options(p, command.spec)
    if command.out is not None:
        out = command.out
        shown = f" (default: {out.default})" if out.default else ""
        if out.positional:
            p.add_argument("out", nargs="?" if out.default else None, default=out.default, help=out.help + shown)
        else:
            p.add_argument("--out", required=out.required, default=out.default, help=out.help + shown)
    p.set_defaults(_command=command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probes",
        description="emergence-probes: how much of a transformer's behaviour reduces to local, readable parts.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Any] = {}
    for command in COMMANDS:
        if " " in command.name:
            group, title = command.name.split(" ", 1)
            if group not in groups:
                help_text, description = GROUPS[group]
                g = sub.add_parser(group, help=help_text, description=description)
                groups[group] = g.add_subparsers(dest="step", required=True, metavar="STEP")
            _add_command(groups[group], command, title)
        else:
            _add_command(sub, command, command.name)
    return parser


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command: Command = args.pop("_command")
    args.pop("command", None)
    args.pop("step", None)
    out = args.pop("out", None)
    debug = os.environ.get("PROBES_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("default", category=UserWarning, module="probes")
            command.run(args, Path(out) if out is not None else None)
        return 0
    except KeyboardInterrupt:
        print(f"\nprobes {command.name}: interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    except ProbesError as err:
        if debug:
            raise
        print(f"probes {command.name}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:
        if debug or err.errno not in ENVIRONMENT_ERRORS:
            traceback.print_exc()
            print(
                f"probes {command.name}: this is a bug in emergence-probes: please report it with the traceback "
                f"above at {ISSUES}",
                file=sys.stderr,
            )
            return 1
        where = f" writing {err.filename}" if err.filename else ""
        print(
            f"probes {command.name}: error: {ENVIRONMENT_ERRORS[err.errno]}{where}: free space, or pass a folder "
            "you can write to",
            file=sys.stderr,
        )
        return 2
    except Exception:
        traceback.print_exc()
        print(
            f"probes {command.name}: this is a bug in emergence-probes: please report it with the traceback above "
            f"at {ISSUES}",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
