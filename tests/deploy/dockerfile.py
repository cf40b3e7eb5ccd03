"""deploy/Dockerfile and .dockerignore, read well enough to check and replay the build."""

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.deploy.project import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array form of CMD/ENTRYPOINT/RUN."""
        parsed = json.loads(self.arguments)
        assert isinstance(parsed, list), self
        return [str(part) for part in parsed]

    def words(self) -> list[str]:
        return shlex.split(self.arguments)


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV values of the stage (KEY=VALUE pairs; ${VAR} left as written)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in instruction.words():
                key, _, value = word.partition("=")
                values[key] = value
        return values


@cache
def stages() -> dict[str, Stage]:
    """Each stage's instructions, with global ARG defaults substituted into FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    global_args: dict[str, str] = {}
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(arguments.split()))
        if instruction.keyword == "FROM":
            image, _, name = instruction.arguments.partition(" AS ")
            for arg, default in global_args.items():
                image = image.replace(f"${{{arg}}}", default)
            current = found[name.strip()] = Stage(name.strip(), image.strip())
        elif current is None:
            assert instruction.keyword == "ARG", f"{line!r} before the first FROM"
            arg, _, default = instruction.arguments.partition("=")
            global_args[arg] = default
        else:
            current.instructions.append(instruction)
    return found


def final_stage() -> Stage:
    return list(stages().values())[-1]


def _pattern(rule: str) -> re.Pattern[str]:
    # Docker's matching: * within one path segment, ** across segments, a match on a
    # folder covers everything in it.
    regex = ""
    index = 0
    rule = rule.strip("/")
    while index < len(rule):
        if rule.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif rule.startswith("**", index):
            regex += ".*"
            index += 2
        elif rule[index] == "*":
            regex += "[^/]*"
            index += 1
        elif rule[index] == "?":
            regex += "[^/]"
            index += 1
        else:
            regex += re.escape(rule[index])
            index += 1
    return re.compile(f"^{regex}(?:/.*)?$")


@cache
def ignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    """(excludes, pattern) per .dockerignore line, in order; the last match wins."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            excluded = not line.startswith("!")
            rules.append((excluded, _pattern(line.lstrip("!"))))
    return tuple(rules)


def in_build_context(path: Path) -> bool:
    """Whether ``docker build`` sends this file (relative to the root) to the builder."""
    relative = path.relative_to(ROOT).as_posix() if path.is_absolute() else path.as_posix()
    included = True
    for excluded, pattern in ignore_rules():
        if pattern.match(relative):
            included = not excluded
    return included
