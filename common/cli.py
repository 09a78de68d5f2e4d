"""One command line for every stage: `python -m STAGE [--preset NAME] [--config FILE] [key=value ...]`.

Settings are read in this order, each step overriding the one before: the settings dataclass's
defaults, the preset (`--preset NAME`, a YAML file in the stage's presets folder; a stage may name
one that applies when neither `--preset` nor `--config` is given), the YAML file `--config FILE`,
then `key=value` / `section.key=value` overrides (values parsed as YAML: `3`, `0.5`, `true`,
`[hau, yor]`), all read and checked by `common.config.load_config`. `--help` lists every setting
with its default and meaning: a field's `metadata["help"]`, else the string under the field, else
the comment on its line. Bad settings and bad inputs raise `ConfigError` (or a subclass); every
stage prints them as one `error: ...` line on stderr, without a traceback, and exits with status 2.
A stage's `main(argv)` is `COMMAND.run(argv, lambda cfg, args: ...)`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from common.config import ConfigError, config_to_dict, load_config, preset_path, read_yaml_with_inherit

EXIT_ERROR = 2  # bad settings, bad inputs, and the other failures a stage reports in one line


def fail(err: BaseException | str) -> int:
    """Print `error: <message>` on stderr; returns the exit status for it."""
    print(f"error: {err}", file=sys.stderr, flush=True)
    return EXIT_ERROR


# ---------------------------------------------------------------- --help from the dataclasses


def _source_docs(cls: type) -> dict[str, str]:
    """Each field's doc as written in the source: the string under it, else the comment on its line(s)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
    body, docs = tree.body[0].body, {}
    for node, after in zip(body, [*body[1:], None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = after.value.value
        else:
            lines = range(node.lineno, node.end_lineno + 1)
            docs[node.target.id] = " ".join(comments[n] for n in lines if n in comments)
    return docs


def show_value(value: Any) -> str:
    """A setting's value as it is written on the command line (`key=<this>`)."""
    text = yaml.safe_dump(config_to_dict(value), default_flow_style=True, allow_unicode=True, width=1 << 20)
    return text.strip().removesuffix("...").strip()


def settings_rows(cls: type, prefix: str = "", defaults: Mapping | None = None) -> list[tuple[str, str, str]]:
    """(dotted name, default, doc) of every setting of `cls`; `defaults` (e.g. a preset) replaces the
    dataclass defaults where it gives a value."""
    defaults = defaults or {}
    docs = _source_docs(cls)
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, given = hints[f.name], defaults.get(f.name, dataclasses.MISSING)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            rows += settings_rows(tp, f"{prefix}{f.name}.", given if isinstance(given, dict) else None)
            continue
        if given is dataclasses.MISSING:
            given = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        doc = " ".join((f.metadata.get("help") or docs.get(f.name, "")).split())
        rows.append((f"{prefix}{f.name}", show_value(given), doc))
    return rows


def settings_table(rows: Sequence[tuple[str, str, str]]) -> str:
    width = max((len(name) for name, _, _ in rows), default=0)
    return "\n".join(f"  {name:<{width}}  {doc}{' ' if doc else ''}(default {default})" for name, default, doc in rows)


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are ConfigErrors, and whose settings table is built for --help only."""

    def __init__(self, *args, settings_help: Callable[[], str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._settings_help = settings_help

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")

    def format_help(self) -> str:
        self.epilog = self._settings_help()
        return super().format_help()


@dataclass(frozen=True)
class Command:
    """How one stage reads its command line; `run` is the whole of a stage's `main`."""

    config: type  # the settings dataclass
    prog: str  # how the stage is started, e.g. `python -m pretrain.train`
    doc: str = ""  # what --help says before the options (the module docstring)
    presets: Path | None = None  # folder of NAME.yaml presets; without it there is no --preset
    default_preset: str | None = None  # the preset used when neither --preset nor --config is given
    flags: Callable[[argparse.ArgumentParser], Any] | None = None  # adds the stage's own flags (--fresh)
    # Flags that are another spelling of a setting, {"--dry-run": "dry_run"}: a bool setting's flag
    # takes no value and sets it true, any other takes the value; applied after key=value.
    setting_flags: Mapping[str, str] = field(default_factory=dict)
    passthrough: bool = False  # unknown flags and bare words go to `args.passthrough` (Beam's options)
    extra_help: Callable[[], str] | None = None  # more lines at the end of --help (e.g. the task names)

    def settings_help(self) -> str:
        preset = self.default_preset
        defaults = read_yaml_with_inherit(preset_path(self.presets, preset)) if preset else None
        rows = settings_rows(self.config, defaults=defaults)
        where = f" (preset {preset} applied)" if preset else ""
        text = f"settings (key=value, groups dotted: section.key=value; values are YAML), with their defaults{where}:"
        return f"{text}\n{settings_table(rows)}" + (f"\n\n{self.extra_help()}" if self.extra_help else "")

    def parser(self) -> argparse.ArgumentParser:
        parser = _Parser(
            prog=self.prog, description=self.doc.strip() or None, allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter, settings_help=self.settings_help,
        )  # fmt: skip
        parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings (listed below)")
        if self.presets:
            names = ", ".join(sorted(p.stem for p in Path(self.presets).glob("*.yaml")))
            preset = self.default_preset
            when = f" ({preset} when neither --preset nor --config is given)" if preset else ""
            where = f"{Path(self.presets).parent.name}/{Path(self.presets).name}"
            parser.add_argument("--preset", metavar="NAME", help=f"preset in {where}/: {names}{when}")
        after = ", applied after the preset" if self.presets else ""
        parser.add_argument("--config", type=Path, metavar="FILE", help=f"YAML file of settings{after}")
        docs = {name: doc for name, _, doc in settings_rows(self.config)} if self.setting_flags else {}
        for flag, setting in self.setting_flags.items():
            dest, value = f"flag:{setting}", setting.upper()
            if typing.get_type_hints(self.config)[setting] is bool:
                parser.add_argument(flag, dest=dest, action="store_true", help=f"{setting}=true: {docs[setting]}")
            else:
                parser.add_argument(flag, dest=dest, metavar=value, help=f"{setting}={value}: {docs[setting]}")
        if self.flags:
            self.flags(parser)
        return parser

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """The command line as `args.preset`, `args.config`, `args.overrides` (the key=value items, in
        order), `args.passthrough` and the stage's own flags."""
        argv = list(sys.argv[1:] if argv is None else argv)
        is_setting = ["=" in item and not item.startswith("-") for item in argv]
        rest = [item for item, setting in zip(argv, is_setting) if not setting]
        args, unknown = self.parser().parse_known_args(rest)
        # Passed through: unknown flags with their values, in order ("--flink_master host:8081").
        args.passthrough = [item for item in rest if item in unknown or item in args.overrides]
        if args.passthrough and not self.passthrough:
            raise ConfigError(f"unknown argument(s) {args.passthrough}; settings are key=value (see --help)")
        args.overrides = [item for item, setting in zip(argv, is_setting) if setting]
        for setting in self.setting_flags.values():
            value = vars(args).pop(f"flag:{setting}")
            if value not in (None, False):
                args.overrides.append(f"{setting}={'true' if value is True else value}")
        if not self.presets:
            args.preset = None
        elif args.preset is None and args.config is None:
            args.preset = self.default_preset
        return args

    def load(self, args: argparse.Namespace) -> Any:
        """The settings: dataclass defaults < preset < --config file < key=value."""
        base = read_yaml_with_inherit(preset_path(self.presets, args.preset)) if args.preset else None
        return load_config(self.config, args.config, args.overrides, base=base)

    def read(self, argv: Sequence[str] | None = None) -> tuple[Any, argparse.Namespace]:
        args = self.parse(argv)
        return self.load(args), args

    def help(self) -> str:
        return self.parser().format_help()

    def run(self, argv: Sequence[str] | None, body: Callable[[Any, argparse.Namespace], Any],
            failures: tuple[type[BaseException], ...] = ()) -> int:  # fmt: skip
        """Read the settings and call `body(cfg, args)`. ConfigError, FileNotFoundError and the stage's
        `failures` end as one `error: ...` line and exit status 2; an int that `body` returns is the
        exit status, anything else means 0. `--help` exits 0."""
        try:
            code = body(*self.read(argv))
        except (ConfigError, FileNotFoundError, *failures) as err:
            return fail(err)
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
