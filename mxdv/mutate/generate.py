"""Mutant generation: single textual edits of a unit's RTL, found by a small SystemVerilog scanner.

Five mutation classes (``CLASSES``), each one edit at one place of one source line:

- ``operator``: a binary/unary operator swapped (``+``/``-``, ``&``/``|``, ``&&``/``||``,
  ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``<<``/``>>``, ``^`` -> ``|``);
- ``constant``: a numeric literal +1 or -1 (sized literals stay inside their width);
- ``bitselect``: a constant bit select ``[N]`` or part select ``[H:L]`` shifted by one bit;
- ``reset``: a value assigned in a reset branch (``if (rst ...)``) inverted (``1'b0``/``1'b1``,
  ``'0``/``'1``, sized literals get their lowest bit flipped);
- ``condition``: an ``if`` condition or a ternary's condition negated.

What is never mutated: comments, compiler directives, declarations (``logic``/``input``/...,
``parameter``: the module's parameters are set by the environment), ``for`` loop headers
(elaboration structure) and index arithmetic inside ``[...]`` other than a constant select.
A ``<=`` outside parentheses is a non-blocking assignment, not a comparison, and is left alone.

Everything is deterministic: ``generate`` lists mutants in source order, ``sample`` draws from
them with ``random.Random(seed)``, round-robin over the classes so every class is represented.
"""
from __future__ import annotations

import hashlib
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

CLASSES = ("operator", "constant", "bitselect", "reset", "condition")

#: Operator swaps. Longest tokens first; a token mapped to None is recognised (so that its
#: characters are not taken for a shorter operator) but never mutated.
_OPERATORS: tuple[tuple[str, str | None], ...] = (
    (">>>", ">>"), ("<<<", "<<"), ("===", "!=="), ("!==", "==="),
    ("==", "!="), ("!=", "=="), (">=", ">"), ("<=", "<"), ("&&", "||"), ("||", "&&"),
    ("<<", ">>"), (">>", "<<"), ("+:", None), ("-:", None), ("++", None), ("--", None),
    ("->", None), ("~&", None), ("~|", None), ("~^", None), ("^~", None),
    ("+", "-"), ("-", "+"), ("&", "|"), ("|", "&"), ("^", "|"), ("<", "<="), (">", ">="),
)
_SKIP_LINE = re.compile(r"^\s*(`|module\b|endmodule\b|input\b|output\b|inout\b|parameter\b|"
                        r"logic\b|wire\b|reg\b|bit\b|int\b|integer\b|genvar\b|typedef\b|import\b|"
                        r"package\b|endpackage\b|function\b|endfunction\b|\)|\(|#\()")
_FOR_LINE = re.compile(r"^\s*(?:(?:end\s+)?else\s+)?for\s*\(")
_LOCALPARAM = re.compile(r"^\s*localparam\b[^=]*=")
_SIZED = re.compile(r"(\d+)\s*'\s*(s?)([bBoOdDhH])\s*([0-9a-fA-F_]+)\b")
_UNSIZED_FILL = re.compile(r"'([01])(?![0-9a-zA-Z_])")
_DECIMAL = re.compile(r"(?<![\w'.$])(\d+)(?![\w'.])")
_IF = re.compile(r"\bif\s*\(")
_RESET_IF = re.compile(r"\bif\s*\(\s*!?\s*\w*rst\w*\s*\)")
_BASES = {"b": 2, "o": 8, "d": 10, "h": 16}


@dataclass(frozen=True)
class Mutant:
    """One edit: ``original`` at column ``col`` (0-based) of ``line`` (1-based) of ``file``
    (relative to ``rtl/<unit>/``) becomes ``replacement``."""

    cls: str
    file: str
    line: int
    col: int
    original: str
    replacement: str
    source_line: str   # the line before the edit (stripped)
    mutated_line: str  # the line after the edit (stripped)

    @property
    def id(self) -> str:
        key = f"{self.file}:{self.line}:{self.col}:{self.cls}:{self.original}->{self.replacement}"
        return f"{Path(self.file).stem}-L{self.line}-{self.cls}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        return f"{self.cls}: `{self.original}` -> `{self.replacement}` at {self.file}:{self.line}"

    def as_dict(self) -> dict:
        return {"id": self.id, **asdict(self)}


# -- scanning ---------------------------------------------------------------------------------
def _code_spans(text: str) -> list[str]:
    """Each line with comments blanked out (same length, so columns stay valid)."""
    out, in_block = [], False
    for line in text.splitlines():
        chars = list(line)
        i = 0
        while i < len(chars):
            if in_block:
                if line.startswith("*/", i):
                    chars[i] = chars[i + 1] = " "
                    in_block = False
                    i += 2
                    continue
                chars[i] = " "
                i += 1
            elif line.startswith("//", i):
                for k in range(i, len(chars)):
                    chars[k] = " "
                break
            elif line.startswith("/*", i):
                in_block = True
                chars[i] = chars[i + 1] = " "
                i += 2
            elif chars[i] == '"':  # string literal: skip to its end
                j = line.find('"', i + 1)
                j = len(chars) - 1 if j < 0 else j
                for k in range(i, j + 1):
                    chars[k] = " "
                i = j + 1
            else:
                i += 1
        out.append("".join(chars))
    return out


def _literal_mask(code: str) -> list[bool]:
    """True on characters that belong to a numeric literal (``8'hFF``, ``10'd5``, ``'0``)."""
    mask = [False] * len(code)
    for m in _SIZED.finditer(code):
        for k in range(m.start(), m.end()):
            mask[k] = True
    for m in _UNSIZED_FILL.finditer(code):
        for k in range(m.start(), m.end()):
            mask[k] = True
    return mask


def _depths(code: str) -> tuple[list[int], list[int]]:
    """Parenthesis and bracket depth before each character."""
    par, brk, p, b = [], [], 0, 0
    for ch in code:
        if ch == ")":
            p -= 1
        if ch == "]":
            b -= 1
        par.append(p)
        brk.append(b)
        if ch == "(":
            p += 1
        if ch == "[":
            b += 1
    return par, brk


def _matching_paren(code: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "(":
            depth += 1
        elif code[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _reset_spans(codes: list[str]) -> dict[int, tuple[int, int]]:
    """Line index -> (start, end) columns of that line's code inside a reset branch: the
    statement after ``if (rst)``, or its ``begin ... end`` block."""
    spans: dict[int, tuple[int, int]] = {}
    for i, code in enumerate(codes):
        for m in _RESET_IF.finditer(code):
            if not re.match(r"\s*begin\b", code[m.end():]):
                semi = code.find(";", m.end())
                spans[i] = (m.end(), semi + 1 if semi >= 0 else len(code))
                continue
            depth, j, col = 0, i, m.end()
            while j < len(codes):
                seg, end = codes[j], None
                for tok in re.finditer(r"\b(begin|end)\b", seg[col:]):
                    depth += 1 if tok.group(1) == "begin" else -1
                    if depth == 0:
                        end = col + tok.start()
                        break
                spans[j] = (col, len(seg) if end is None else end)
                if end is not None:
                    break
                j, col = j + 1, 0
    return spans


def _in_reset(spans: dict[int, tuple[int, int]], idx: int, col: int) -> bool:
    return idx in spans and spans[idx][0] <= col < spans[idx][1]


def _fmt_sized(width: str, signed: str, base: str, value: int, pad: int = 0) -> str:
    b = base.lower()
    digits = {"b": format(value, "b"), "o": format(value, "o"), "d": str(value), "h": format(value, "X")}[b]
    if b in "bh" and len(digits) < pad:
        digits = "0" * (pad - len(digits)) + digits
    return f"{width}'{signed}{base}{digits}"


def _line_mutants(rel: str, idx: int, raw: str, code: str, reset: dict[int, tuple[int, int]]) -> list[Mutant]:
    found: list[tuple[str, int, str, str]] = []  # (cls, col, original, replacement)
    stripped = code.strip()
    if not stripped or _FOR_LINE.match(code):
        return []
    localparam = _LOCALPARAM.match(code)
    if _SKIP_LINE.match(code) and not localparam:
        return []
    lit = _literal_mask(code)
    par, brk = _depths(code)
    lo = localparam.end() if localparam else 0

    # constants
    for m in _SIZED.finditer(code):
        if m.start() < lo or brk[m.start()] > 0:
            continue
        width, signed, base, digits = m.group(1), m.group(2), m.group(3), m.group(4).replace("_", "")
        try:
            value = int(digits, _BASES[base.lower()])
        except ValueError:
            continue
        w = int(width)
        for nv in (value + 1, value - 1):
            if 0 <= nv < (1 << w):
                found.append(("constant", m.start(), m.group(0), _fmt_sized(width, signed, base, nv, len(digits))))
        if _in_reset(reset, idx, m.start()) and code[:m.start()].rstrip().endswith("<="):
            found.append(("reset", m.start(), m.group(0), _fmt_sized(width, signed, base, value ^ 1, len(digits))))
    for m in _UNSIZED_FILL.finditer(code):
        if m.start() >= lo and _in_reset(reset, idx, m.start()) and code[:m.start()].rstrip().endswith("<="):
            found.append(("reset", m.start(), m.group(0), "'1" if m.group(1) == "0" else "'0"))
    for m in _DECIMAL.finditer(code):
        if m.start() < lo or brk[m.start()] > 0 or lit[m.start()]:
            continue
        value = int(m.group(1))
        for nv in (value + 1, value - 1):
            if nv >= 0:
                found.append(("constant", m.start(), m.group(0), str(nv)))

    if not localparam:
        # bit selects: constant [N] and [H:L] in expressions
        for m in re.finditer(r"\[\s*(\d+)\s*(?::\s*(\d+)\s*)?\]", code):
            if m.start() > 0 and code[:m.start()].rstrip()[-1:] in ("", ";", "{", "=", "(", ","):
                continue  # an array literal or an unpacked declaration, not a select
            hi = int(m.group(1))
            if m.group(2) is None:
                for nv in (hi - 1, hi + 1):
                    if nv >= 0:
                        found.append(("bitselect", m.start(), m.group(0), f"[{nv}]"))
            else:
                low = int(m.group(2))
                for d in (-1, 1):
                    if min(hi, low) + d >= 0:
                        found.append(("bitselect", m.start(), m.group(0), f"[{hi + d}:{low + d}]"))

        # operators
        k = 0
        while k < len(code):
            if lit[k] or code[k].isalnum() or code[k] in "_$'":
                k += 1
                continue
            for tok, rep in _OPERATORS:
                if code.startswith(tok, k):
                    if rep is not None and brk[k] == 0 and not (tok == "<=" and par[k] == 0):
                        found.append(("operator", k, tok, rep))
                    k += len(tok) - 1
                    break
            k += 1

        # conditions: if (...) and the condition of a ternary
        for m in _IF.finditer(code):
            close = _matching_paren(code, m.end() - 1)
            if close < 0:
                continue
            cond = code[m.end():close]
            found.append(("condition", m.end() - 1, f"({cond})", f"(!({cond}))"))
        for q in [i for i, ch in enumerate(code) if ch == "?" and brk[i] == 0]:
            before = code[:q].rstrip()
            if before.endswith(")"):
                end = len(before) - 1
                depth, start = 0, -1
                for k2 in range(end, -1, -1):
                    if code[k2] == ")":
                        depth += 1
                    elif code[k2] == "(":
                        depth -= 1
                        if depth == 0:
                            start = k2
                            break
                if start < 0 or (start > 0 and (code[start - 1].isalnum() or code[start - 1] in "_'$")):
                    continue  # a function call or a cast, not a parenthesized condition
                found.append(("condition", start, code[start:end + 1], f"!{code[start:end + 1]}"))
            else:
                m2 = re.search(r"([A-Za-z_]\w*(?:\[[^\]]*\])?)$", before)
                if m2:
                    found.append(("condition", m2.start(), m2.group(1), f"(!{m2.group(1)})"))

    out = []
    for cls, col, original, replacement in found:
        assert raw[col:col + len(original)] == original, (rel, idx, col, original)
        mutated = raw[:col] + replacement + raw[col + len(original):]
        out.append(Mutant(cls, rel, idx + 1, col, original, replacement, raw.strip(), mutated.strip()))
    return out


def generate(rtl_dir: Path, sources: tuple[str, ...] | list[str], classes=CLASSES) -> list[Mutant]:
    """Every mutant of the given sources (relative to ``rtl_dir``), in source order, without
    duplicates (two edits giving the same file are one mutant)."""
    bad = [c for c in classes if c not in CLASSES]
    if bad:
        raise ValueError(f"unknown mutation class(es) {bad}; known: {', '.join(CLASSES)}")
    out: list[Mutant] = []
    seen: set[tuple[str, str]] = set()
    for rel in sources:
        text = (Path(rtl_dir) / rel).read_text()
        raws = text.splitlines()
        codes = _code_spans(text)
        reset = _reset_spans(codes)
        for idx, (raw, code) in enumerate(zip(raws, codes)):
            for m in sorted(_line_mutants(rel, idx, raw, code, reset), key=lambda m: (m.col, m.cls != "reset", m.cls, m.replacement)):
                if m.cls not in classes:
                    continue
                key = (rel, m.mutated_line + f"@{m.line}")
                if key in seen:
                    continue
                seen.add(key)
                out.append(m)
    return out


def sample(mutants: list[Mutant], n: int | None, seed: int) -> list[Mutant]:
    """``n`` mutants drawn with ``random.Random(seed)``, round-robin over the classes (so a
    class with few candidates, like reset values, is not crowded out); all when n is None or
    not smaller than the number of mutants. Returned in source order."""
    if n is None or n >= len(mutants):
        return list(mutants)
    rng = random.Random(seed)
    by_cls: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_cls.setdefault(m.cls, []).append(m)
    for c in sorted(by_cls):
        rng.shuffle(by_cls[c])
    picked: list[Mutant] = []
    order = [c for c in CLASSES if c in by_cls]
    while len(picked) < n:
        for c in order:
            if by_cls[c] and len(picked) < n:
                picked.append(by_cls[c].pop())
    index = {m: i for i, m in enumerate(mutants)}
    return sorted(picked, key=index.__getitem__)


def apply(mutant: Mutant, rtl_root: Path, unit_name: str, dest_root: Path) -> Path:
    """Copy ``rtl_root/<unit>/`` to ``dest_root/<unit>/`` and apply the mutant there; returns
    ``dest_root`` (what ``MXDV_RTL_ROOT`` must point at). The original RTL is never touched."""
    src_dir = Path(rtl_root) / unit_name
    dst_dir = Path(dest_root) / unit_name
    if dst_dir.exists():
        shutil.rmtree(dst_dir)
    shutil.copytree(src_dir, dst_dir)
    path = dst_dir / mutant.file
    lines = path.read_text().split("\n")
    raw = lines[mutant.line - 1]
    if raw[mutant.col:mutant.col + len(mutant.original)] != mutant.original:
        raise ValueError(f"mutant {mutant.id}: {mutant.original!r} not found at {mutant.where} col {mutant.col}")
    lines[mutant.line - 1] = raw[:mutant.col] + mutant.replacement + raw[mutant.col + len(mutant.original):]
    path.write_text("\n".join(lines))
    return Path(dest_root)
