"""Reading the admin pages' HTML in tests: field errors, inputs, table rows."""

import re
from html import unescape
from html.parser import HTMLParser

_FIELD_ERROR = re.compile(r'<small class="field-error" id="([\w-]+)-error">(.*?)</small>', re.S)


def field_errors(page: str) -> dict[str, list[str]]:
    """The messages shown beside each form field, by field name."""
    found: dict[str, list[str]] = {}
    for name, message in _FIELD_ERROR.findall(page):
        found.setdefault(name, []).append(unescape(message))
    return found


class Inputs(HTMLParser):
    """The values a form would submit as rendered: inputs, checked boxes, selected
    options and textareas, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def _add(self, name: str | None, value: str | None) -> None:
        if name:
            self.values.setdefault(name, []).append(value or "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name = attributes.get("name")
        if tag == "input":
            kind = attributes.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attributes:
                    self._add(name, attributes.get("value"))
            elif kind not in ("submit", "file"):
                self._add(name, attributes.get("value"))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            self._add(self._select, attributes.get("value"))
        elif tag == "textarea":
            self._textarea = name
            self._add(name, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea][-1] += data


def inputs(page: str) -> dict[str, list[str]]:
    parser = Inputs()
    parser.feed(page)
    return parser.values


def attribute_values(page: str, attribute: str) -> list[str]:
    """Every value of ``attribute`` in the page, in order (e.g. data-message ids)."""
    return [unescape(value) for value in re.findall(rf'{attribute}="([^"]*)"', page)]


def links(page: str, starting: str) -> list[str]:
    """The hrefs that start with ``starting``, unescaped, in order."""
    return [
        unescape(href)
        for href in re.findall(r'href="([^"]*)"', page)
        if unescape(href).startswith(starting)
    ]
