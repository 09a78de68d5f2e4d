"""One command line for every stage: `python -m STAGE [--preset NAME] [--config FILE] [key=value ...]`.

Settings are read in this order, each step overriding the one before: the settings dataclass's
defaults, the preset (`--preset NAME`, a YAML file in the stage's presets folder; a stage may name
one that applies when neither `--preset` nor `--config` is given), the YAML file `--config FILE`,
then `key=value` / `section.key=value` overrides (values parsed as YAML: `3`, `0.5`, `true`,
`[hau, yor]`). `common.config.load_config` does the reading and checking.

`--help` lists every setting with its default and its meaning, generated from the dataclasses:
a field's `metadata["help"]`, else the string literal under the field, else the comment on its
line. Bad settings and bad inputs raise `ConfigError` (or a subclass); every stage prints them as
one `error: ...` line on stderr, without a traceback, and exits with status 2.

    COMMAND = Command(PretrainConfig, "python -m pretrain.train", __doc__, presets=PRESETS_DIR,
                      flags=lambda p: p.add_argument("--fresh", action="store_true", help="..."))

    def main(argv=None) -> int:
        return COMMAND.run(argv, lambda cfg, args: train(cfg, fresh=args.fresh))
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
REPO_DIR = Path(__file__).resolve().parents[1]


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
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except tokenize.TokenError:
        pass
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
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
        doc = f.metadata.get("help") or docs.get(f.name, "")
        rows.append((f"{prefix}{f.name}", show_value(given), " ".join(doc.split())))
    return rows


def settings_table(rows: Sequence[tuple[str, str, str]]) -> str:
    width = max((len(name) for name, _, _ in rows), default=0)
    return "\n".join(f"  {name:<{width}}  {doc}{' ' if doc else ''}(default {default})" for name, default, doc in rows)


# ---------------------------------------------------------------- the command line


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors raised as ConfigError (one `error:` line, exit 2) and the
    settings table built only when --help asks for it."""

    def __init__(self, *args, settings_help: Callable[[], str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._settings_help = settings_help

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")

    def format_help(self) -> str:
        self.epilog = self._settings_help()
        return super().format_help()


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_DIR)) if path.is_relative_to(REPO_DIR) else str(path)


@dataclass(frozen=True)
class Command:
    """How one stage reads its command line; `run` is the whole of a stage's `main`."""

    config: type
    """The settings dataclass."""
    prog: str
    """How the stage is started, e.g. `python -m pretrain.train`."""
    doc: str = ""
    """What --help says before the options (the module docstring)."""
    presets: Path | None = None
    """Folder of `NAME.yaml` presets; without it there is no --preset."""
    default_preset: str | None = None
    """The preset used when neither --preset nor --config is given."""
    flags: Callable[[argparse.ArgumentParser], Any] | None = None
    """Adds the stage's own flags (e.g. --fresh) to the parser."""
    setting_flags: Mapping[str, str] = field(default_factory=dict)
    """Flags that are another spelling of a setting: {"--dry-run": "dry_run"} (a bool setting's flag
    takes no value and sets it true; any other takes the value), applied after key=value."""
    passthrough: bool = False
    """Unknown flags (and bare words) are kept in `args.passthrough` (Beam's options), not refused."""
    extra_help: Callable[[], str] | None = None
    """More lines for the end of --help (e.g. the task names)."""

    def preset_names(self) -> list[str]:
        return sorted(p.stem for p in Path(self.presets).glob("*.yaml")) if self.presets else []

    def _defaults(self) -> dict:
        if not self.default_preset:
            return {}
        try:
            return read_yaml_with_inherit(preset_path(self.presets, self.default_preset))
        except ConfigError:
            return {}

    def settings_help(self) -> str:
        where = f" (preset {self.default_preset} applied)" if self.default_preset else ""
        text = (
            f"settings (key=value, groups dotted: section.key=value; values are YAML), "
            f"with their defaults{where}:\n" + settings_table(settings_rows(self.config, defaults=self._defaults()))
        )
        return text + (f"\n\n{self.extra_help()}" if self.extra_help else "")

    def parser(self) -> argparse.ArgumentParser:
        parser = _Parser(
            prog=self.prog,
            description=self.doc.strip() or None,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            settings_help=self.settings_help,
        )
        parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings (listed below)")
        if self.presets:
            default = (
                f" ({self.default_preset} when neither --preset nor --config is given)" if self.default_preset else ""
            )
            parser.add_argument(
                "--preset",
                metavar="NAME",
                help=f"preset in {_relative(self.presets)}/: {', '.join(self.preset_names())}{default}",
            )
        parser.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="YAML file of settings" + (", applied after the preset" if self.presets else ""),
        )
        hints = typing.get_type_hints(self.config) if self.setting_flags else {}
        docs = {name: doc for name, _, doc in settings_rows(self.config)} if self.setting_flags else {}
        for flag, setting in self.setting_flags.items():
            if hints.get(setting) is bool:
                parser.add_argument(
                    flag, dest=f"flag:{setting}", action="store_true", help=f"{setting}=true: {docs[setting]}"
                )
            else:
                parser.add_argument(
                    flag,
                    dest=f"flag:{setting}",
                    metavar=setting.upper(),
                    help=f"{setting}={setting.upper()}: {docs[setting]}",
                )
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
        if self.passthrough:  # unknown flags with their values, in order: "--flink_master host:8081"
            args.passthrough = [item for item in rest if item in unknown or item in args.overrides]
        elif unknown or args.overrides:
            raise ConfigError(
                f"unknown argument(s) {unknown + args.overrides}; settings are key=value (see {self.prog} --help)"
            )
        else:
            args.passthrough = []
        args.overrides = [item for item, setting in zip(argv, is_setting) if setting]
        for setting in self.setting_flags.values():
            value = vars(args).pop(f"flag:{setting}")
            if value not in (None, False):
                args.overrides.append(f"{setting}={'true' if value is True else value}")
        if self.presets is None:
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

    def run(
        self,
        argv: Sequence[str] | None,
        body: Callable[[Any, argparse.Namespace], Any],
        failures: tuple[type[BaseException], ...] = (),
    ) -> int:
        """Read the settings and call `body(cfg, args)`. ConfigError, FileNotFoundError and the stage's
        `failures` end as one `error: ...` line and exit status 2; an int that `body` returns is the
        exit status, anything else means 0. `--help` exits 0."""
        try:
            code = body(*self.read(argv))
        except (ConfigError, FileNotFoundError, *failures) as err:
            return fail(err)
        return code if isinstance(code, int) and not isinstance(code, bool) else 0
