"""The README's configuration tables, rendered from the settings classes themselves.

`make docs` rewrites the README between its markers; tests/unit/test_readme.py fails
when the README and the code disagree.
"""

import argparse
import re
import sys
from pathlib import Path

from pydantic_settings import BaseSettings

from herald_api.main import ServerSettings
from herald_api.run import RunSettings
from herald_api.settings import ApiSettings
from herald_common.settings import HeraldSettings, ProbeSettings
from herald_probe_stub.main import build_parser
from herald_reporter.settings import ReporterSettings
from herald_scheduler.settings import ScheduleSettings
from herald_sender.settings import SenderSettings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"

SECTIONS: list[tuple[str, type[BaseSettings], tuple[type[BaseSettings], ...]]] = [
    ("every service", HeraldSettings, ()),
    ("api and sender: the external send API", ProbeSettings, ()),
    ("api (and the `herald` CLI)", ApiSettings, (HeraldSettings,)),
    ("api server (`herald-api`)", ServerSettings, (ApiSettings,)),
    ("`herald run`", RunSettings, (ApiSettings, ProbeSettings)),
    ("scheduler", ScheduleSettings, (HeraldSettings,)),
    ("sender", SenderSettings, (HeraldSettings, ProbeSettings)),
    ("reporter", ReporterSettings, (HeraldSettings,)),
]


def _default(value: object) -> str:
    if hasattr(value, "get_secret_value"):
        return "(a development token)"
    text = getattr(value, "value", value)
    return f"`{text}`"


def settings_table() -> str:
    lines: list[str] = []
    for title, cls, inherited in SECTIONS:
        own = {
            name: field
            for name, field in cls.model_fields.items()
            if not any(name in parent.model_fields for parent in inherited)
        }
        lines += [f"**{title}**", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in own.items():
            variable = f"HERALD_{name.upper()}"
            lines.append(f"| `{variable}` | {_default(field.default)} | {field.description} |")
        lines.append("")
    lines += [
        "**probe stub** (`herald-probe-stub --help`; each flag also reads the variable)",
        "",
        "| flag | variable | default | meaning |",
        "|---|---|---|---|",
    ]
    parser: argparse.ArgumentParser = build_parser({})
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = max(action.option_strings, key=len)
        variable = "HERALD_STUB_" + action.dest.upper()
        meaning = re.sub(
            r"\s+", " ", (action.help or "").replace("%(default)s", str(action.default))
        )
        default = "" if action.default in (None, [], "") else f"`{action.default}`"
        lines.append(f"| `{flag}` | `{variable}` | {default} | {meaning} |")
    return "\n".join(lines).rstrip() + "\n"


def rendered_readme() -> str:
    text = README.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{settings_table()}{END}{after}"


if __name__ == "__main__":
    README.write_text(rendered_readme())
    sys.stdout.write("README.md: configuration tables rewritten\n")
