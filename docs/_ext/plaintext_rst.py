"""Make the plain-text docstrings of kltrain valid reStructuredText, without changing how they read.

The docstrings are written for ``help()``: ``|x − x'|`` is a norm, and an indented block after a
line ending in ``:`` is a table or code laid out by hand. In reStructuredText the first is a
substitution reference and the second a block quote whose lines get joined. So, outside literal
blocks, directive bodies and backquoted spans: ``|`` is escaped, and a paragraph that ends in a
single ``:`` and is followed by an indented block introduces that block as a literal block (``::``),
as does a standalone ``::`` before any other hand-indented block; an indented run ends with a blank line.
In the blocks made literal, ````x```` loses its backquotes (it was markup there, not text).
Roles (``:math:``, ``:class:``), literals and directives are left as written.
"""

from __future__ import annotations

import re

BACKQUOTED = re.compile(r"``.+?``|(:[\w:+-]+:)?`[^`]*`_{0,2}")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def escape_bars(text: str) -> str:
    """``|`` → ``\\|`` outside backquoted spans (``literal``, roles, `interpreted text`)."""
    out, last = [], 0
    for m in BACKQUOTED.finditer(text):
        out += [text[last:m.start()].replace("|", "\\|"), m.group(0)]
        last = m.end()
    out.append(text[last:].replace("|", "\\|"))
    return "".join(out)


def _next_text(lines: list[str], i: int) -> int | None:
    """The index of the first non-blank line after line i."""
    for j in range(i + 1, len(lines)):
        if lines[j].strip():
            return j
    return None


def rst_safe(lines: list[str]) -> list[str]:
    """The docstring's lines, made valid reStructuredText (see the module docstring)."""
    out: list[str] = []
    block_indent: int | None = None  # inside a literal block or directive body opened at this indent
    made_literal = False  # that block is one this function made literal: ``x`` there was meant as markup
    previous = ""  # the last non-blank line outside blocks
    for i, line in enumerate(lines):
        if block_indent is not None:
            if not line.strip() or _indent(line) > block_indent:
                out.append(line.replace("``", "") if made_literal else line)
                continue
            block_indent, made_literal = None, False
            if out and out[-1].strip():
                out.append("")  # a block ends with a blank line
        if not line.strip():
            out.append(line)
            continue
        stripped = line.rstrip()
        nxt = _next_text(lines, i)
        opens_block = nxt is not None and _indent(lines[nxt]) > _indent(line)
        after_blank = i > 0 and not lines[i - 1].strip()
        after_underline = re.fullmatch(r"\s*([-=~^])\1{2,}\s*", previous) is not None and not after_blank
        if ((after_blank or after_underline) and previous and _indent(line) > _indent(previous)
                and not previous.rstrip().endswith("::")):
            # a hand-laid indented block: literal, not a block quote
            out[len(out) - after_blank:] = ["", "::", ""]
            out.append(line.replace("``", ""))
            block_indent, made_literal = _indent(previous), True
            continue
        previous = line
        if stripped.endswith("::") or stripped.lstrip().startswith(".. "):
            out.append(line)
            if opens_block or stripped.lstrip().startswith(".. "):
                block_indent = _indent(line)
            continue
        if out and out[-1].strip() and _indent(line) < _indent(out[-1]):
            out.append("")  # an indented run (a definition, a list item's tail) ends with a blank line
        line = escape_bars(line)
        if stripped.endswith(":") and opens_block and not re.match(r"\s*:[^:]+:", stripped):
            out.append(line.rstrip() + ":")  # "text:" + indented block → "text::" (a field is not a paragraph)
            if nxt == i + 1:
                out.append("")
            block_indent, made_literal = _indent(line), True
            continue
        out.append(line)
    return out
