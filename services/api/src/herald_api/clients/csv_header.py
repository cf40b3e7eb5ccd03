"""The bulk import's CSV header as one regular expression, so that the OpenAPI document
states exactly which CSV bodies are accepted and the importer checks the same thing.

A header names ``phone`` and ``timezone``, and optionally ``operator_code`` and ``tag``,
each once, in any order and letter case, each optionally in double quotes and padded with
up to 64 spaces or tabs. The expression is built from the columns rather than written by
hand: "any order, each once" is a tree of every ordering, about 5,000 characters long.
"""

import re

COLUMNS = ("phone", "timezone", "operator_code", "tag")
REQUIRED = frozenset({"phone", "timezone"})
_PADDING = "[ \\t]{0,64}"
_BOM = "\\ufeff"


def _caseless(name: str) -> str:
    # JSON Schema patterns have no flags, so each letter spells out both cases.
    return "".join(f"[{char}{char.upper()}]" if char.isalpha() else char for char in name)


def _column(name: str) -> str:
    spelled = _caseless(name)
    return f'{_PADDING}(?:{spelled}|"{spelled}"){_PADDING}'


def _columns_after(named: frozenset[str]) -> str:
    """The rest of a header whose earlier columns are ``named``, as alternatives."""
    alternatives = []
    for name in COLUMNS:
        if name in named:
            continue
        now_named = named | {name}
        rest = _columns_after(now_named)
        if not rest:
            alternatives.append(_column(name))
        elif now_named >= REQUIRED:
            alternatives.append(f"{_column(name)}(?:,(?:{rest}))?")
        else:
            alternatives.append(f"{_column(name)},(?:{rest})")
    return "|".join(alternatives)


HEADER_LINE = f"{_BOM}?(?:{_columns_after(frozenset())})"
_HEADER_LINE = re.compile(HEADER_LINE)


def is_header(line: str) -> bool:
    """Whether ``line`` (without its line break) is a header the import accepts."""
    return _HEADER_LINE.fullmatch(line) is not None


def column_names(header: str) -> list[str]:
    """The column names of a header line, lower-cased, without quotes and padding."""
    return [
        cell.strip(" \t").strip('"').lower() for cell in header.removeprefix("\ufeff").split(",")
    ]


def body_pattern(max_line_bytes: int) -> str:
    """The pattern a whole CSV body matches: blank lines (each at most ``max_line_bytes``,
    the importer's limit), the header, then anything."""
    blank_line = f"[ \\t\\v\\f\\r]{{0,{max_line_bytes}}}\\n"
    return f"^(?:{blank_line})*{HEADER_LINE}\\r?(?:\\n[\\s\\S]*)?$"
