"""Bounded YAML reading, shared by the spec loader and the manifest loader.

Input files come from users and are read at collection, before any test runs: a bad one must end
in one located sentence, quickly, whatever it holds. So the file's size, its number of documents,
its nesting and the number of values it expands to are bounded; text must be UTF-8; only plain
data is built (strings, numbers, true/false, null, lists, mappings), never an object a tag names.

PyYAML's own constructors cannot give that: they expand an alias by sharing, so a small file of
nested aliases builds a graph that later code (JSON Schema, copies, the API client) walks as a
tree of billions of values; they recurse once per nesting level; and they build dates, bytes,
sets and unbounded integers that the rest of the package cannot carry. Here the parser's events
are composed into nodes without recursion, and the nodes are built into a tree that counts every
value it makes, each use of an alias again, so work and memory stay proportional to the limits.

Every error is a `SpecError(path, line, message)`; the manifest loader rewords it as a
`ManifestError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

import yaml
import yaml.constructor
import yaml.resolver

from pytest_stateful.errors import SpecError

# A place in a document: its keys and item indexes from the root.
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    """How much one file may hold. `kind` names the file in messages ("spec", "manifest")."""

    kind: str
    max_bytes: int
    max_documents: int
    max_depth: int
    max_nodes: int
    # Lines are remembered for places this deep at most (each one costs a tuple and a dict entry).
    lines_depth: int = 1 << 30


# A spec is a few dozen lines: these are far above any real one and far below what hurts.
SPEC_LIMITS = Limits("spec", max_bytes=1 << 20, max_documents=100, max_depth=64, max_nodes=100_000)
# Manifests are larger: a ConfigMap can carry a big file. The objects the plugin applies are
# namespaced (no CRDs: they are refused), so values and nesting stay far below these. Only the top
# of an object is checked against its lines (kind, metadata, the pod template): deeper lines are
# not kept, or every value would cost a remembered place.
MANIFEST_LIMITS = Limits(
    "manifest", max_bytes=10 << 20, max_documents=1000, max_depth=64, max_nodes=250_000, lines_depth=8
)

# Integers travel as JSON to the API server, which holds at most 64 bits; longer text is refused
# before Python converts it (past 4300 digits int() itself raises).
MAX_INT_CHARS = 80
INT64 = 1 << 63

_CORE = "tag:yaml.org,2002:"
STR, NULL, BOOL, INT, FLOAT = (_CORE + t for t in ("str", "null", "bool", "int", "float"))
MAP, SEQ, MERGE, VALUE, TIMESTAMP = (_CORE + t for t in ("map", "seq", "merge", "value", "timestamp"))

_SURROGATE = re.compile("[\ud800-\udfff]")
# A key is kept as written (`1:` is the key "1"), so any plain scalar type will do; no other tag.
_KEY_TAGS = frozenset((STR, NULL, BOOL, INT, FLOAT, VALUE))

# What YAML allows in a stream (the YAML 1.1 printable set, as PyYAML's reader checks it).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's implicit types (YAML 1.1) with two changes toward YAML 1.2, which JSON and kubectl
    follow: an unquoted 2024-01-01 stays the string it reads as (nothing here takes a date), and
    1e3 or 5e-324 (no dot, as JSON writes them) is a number, not a string."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != TIMESTAMP]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(FLOAT, re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


_RESOLVER = _Resolver()
_SCALARS = yaml.constructor.SafeConstructor()


class _PyLoader(yaml.SafeLoader):
    """The pure-Python parser, used when PyYAML has no libyaml: its scanner slows down with every
    flow level ([[[...), so a deep flow is refused while scanning, not after."""

    max_flow = 1000

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= self.max_flow:
            raise yaml.scanner.ScannerError(None, None, "exceeded maximum nesting depth", self.get_mark())
        super().fetch_flow_collection_start(token_class)


# libyaml parses in C, without recursion, and refuses nesting past 1000 levels by itself.
_LOADER: Any = getattr(yaml, "CSafeLoader", None) or _PyLoader


@dataclass(frozen=True)
class Document:
    """One non-empty YAML document: its first line, its data, the line of every key and item."""

    line: int
    data: Any
    lines: dict[Path_, int]


def load(path: Path, limits: Limits) -> list[Document]:
    """The documents of a file, within `limits`; empty documents (a lone or trailing ---) are left out."""
    return documents(read_text(path, limits), path, limits)


def read_text(path: Path, limits: Limits) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        fail(path, 1, f"cannot be read ({exc.strerror or exc}): check that it is a readable file")
    if len(raw) > limits.max_bytes:
        fail(
            path,
            1,
            f"the file is larger than {_size(limits.max_bytes)}, the limit for a {limits.kind} file: "
            "split it into several files",
        )
    return decode(raw, path)


def decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        fail(
            path,
            line,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}): save the file as UTF-8",
        )


def documents(text: str, path: Path, limits: Limits) -> list[Document]:
    """Parse `text` (the content of `path`, or text given inline) within `limits`."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        fail(path, 1, f"the YAML text is larger than {_size(limits.max_bytes)}, the limit for a {limits.kind}")
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        fail(
            path,
            line,
            f"the character U+{ord(bad.group()):04X} at column {bad.start() - text.rfind(chr(10), 0, bad.start())} "
            "is not allowed in YAML: remove it",
        )
    builder = _Builder(path, limits)
    out = []
    for root in _compose(text, path, limits):
        lines: dict[Path_, int] = {}
        data = builder.build(root, (), lines, 0)
        out.append(Document(_line(root), data, lines))
    return out


def place(where: Path_) -> str:
    """A place in a document as people write it: steps[1].scale."""
    if not where:
        return "the document"
    out = str(where[0])
    for part in where[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def fail(path: Path, line: int, message: str) -> NoReturn:
    raise SpecError(path, line, message)


# -- composing: events to nodes, without recursion -------------------------------------------------


class _Alias(yaml.Node):
    """One use of an alias: the node it names, and where it was used (the line errors point at)."""

    id = "alias"

    def __init__(self, target: yaml.Node, start_mark: Any, end_mark: Any) -> None:
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target = target


def _compose(text: str, path: Path, limits: Limits) -> Iterator[yaml.Node]:
    """The root node of each non-empty document. Nesting and the number of documents are bounded
    here, as the events arrive; aliases are checked to name a node already complete."""
    roots: list[yaml.Node] = []
    started = 1
    anchors: dict[str, yaml.Node] = {}
    # The open collections, each with its children so far; an alias to one of them is a cycle.
    stack: list[tuple[yaml.Node, list[yaml.Node]]] = []
    open_nodes: set[int] = set()
    root: yaml.Node | None = None
    empty = False
    nodes = 0

    def add(node: yaml.Node) -> None:
        nonlocal root, nodes
        nodes += 1
        if nodes > limits.max_nodes:
            _too_many(path, _line(node), limits, None)
        if stack:
            stack[-1][1].append(node)
        else:
            root = node

    def anchor(name: str | None, node: yaml.Node) -> None:
        if name is not None:
            anchors[name] = node

    # Dispatch on the event's exact class, most frequent first: a long file is mostly scalars.
    loader = _LOADER(text)
    try:
        while True:
            event: Any = loader.get_event()
            cls = type(event)
            if cls is yaml.ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = _resolve_scalar(event.value, event.implicit)
                # Nothing written at all (a lone, doubled or trailing ---) is an empty document, to be
                # left out; an explicit null (~, null, '') is not.
                empty = not stack and event.value == "" and event.tag is None and event.anchor is None
                empty = empty and not event.style
                scalar = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
                anchor(event.anchor, scalar)
                add(scalar)
            elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                if len(stack) >= limits.max_depth:
                    _too_deep(path, event.start_mark.line + 1, limits)
                kind = yaml.SequenceNode if cls is yaml.SequenceStartEvent else yaml.MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = _RESOLVER.resolve(kind, None, event.implicit)  # type: ignore[no-untyped-call]
                node: Any = kind(tag, [], event.start_mark, event.end_mark, flow_style=event.flow_style)
                anchor(event.anchor, node)
                open_nodes.add(id(node))
                stack.append((node, []))
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                node, children = stack.pop()
                open_nodes.discard(id(node))
                node.value = (
                    children
                    if isinstance(node, yaml.SequenceNode)
                    else list(zip(children[::2], children[1::2], strict=True))
                )
                node.end_mark = event.end_mark
                add(node)
            elif cls is yaml.AliasEvent:
                line = event.start_mark.line + 1
                target = anchors.get(str(event.anchor))
                if target is None:
                    fail(
                        path,
                        line,
                        f"not valid YAML: the alias *{event.anchor} has no anchor &{event.anchor} above it: "
                        "define the anchor before using it",
                    )
                if id(target) in open_nodes:
                    fail(
                        path,
                        line,
                        f"the alias *{event.anchor} is inside the value it names, so it never ends: "
                        "an alias cannot contain itself",
                    )
                add(_Alias(target, event.start_mark, event.end_mark))
            elif cls is yaml.DocumentStartEvent:
                anchors, root, empty, started = {}, None, False, event.start_mark.line + 1
            elif cls is yaml.DocumentEndEvent:
                if root is not None and not empty:
                    # Empty documents are not counted: they cost nothing, and the size limit bounds them.
                    if len(roots) >= limits.max_documents:
                        fail(
                            path,
                            started,
                            f"more than {limits.max_documents} YAML documents in one {limits.kind} file: "
                            "split it into several files",
                        )
                    roots.append(root)
            elif cls is yaml.StreamEndEvent or event is None:
                break
    except yaml.YAMLError as exc:
        mark: Any = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or exc
        if "maximum nesting depth" in str(problem):
            _too_deep(path, mark.line + 1 if mark is not None else 1, limits)
        fail(path, mark.line + 1 if mark is not None else 1, f"not valid YAML: {problem}")
    finally:
        loader.dispose()
    return iter(roots)


def _resolve_scalar(value: str, implicit: tuple[bool, bool]) -> str:
    # A long file repeats its keys and small values: resolving each short text once saves a regex
    # walk; long texts are not kept (the cache would hold them).
    if len(value) <= 64:
        return _resolve_short(value, implicit)
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return tag


@lru_cache(maxsize=4096)
def _resolve_short(value: str, implicit: tuple[bool, bool]) -> str:
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, implicit)  # type: ignore[no-untyped-call]
    return tag


def _too_many(path: Path, line: int, limits: Limits, via: int | None) -> NoReturn:
    how = f" (the alias at line {via} is copied in full at every use)" if via else ""
    fail(
        path,
        line,
        f"more than {limits.max_nodes} values{how}, the limit for a {limits.kind} file: "
        "use fewer aliases or split the file",
    )


def _too_deep(path: Path, line: int, limits: Limits) -> NoReturn:
    fail(
        path,
        line,
        f"nested more than {limits.max_depth} levels deep, the limit for a {limits.kind}: flatten this value",
    )


# -- building: nodes to plain data, every value counted --------------------------------------------


class _Builder:
    """Plain data from nodes. One per file: the node budget is the file's, not each document's."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path, self.limits = path, limits
        self.nodes = 0
        self.via: int | None = None  # the line of the outermost alias being expanded

    def build(self, node: yaml.Node, where: Path_, lines: dict[Path_, int], depth: int) -> Any:
        line = node.start_mark.line + 1
        keep = len(where) <= self.limits.lines_depth
        if keep:
            lines[where] = line
        if isinstance(node, _Alias):
            outer = self.via
            self.via = outer or line
            try:
                value = self.build(node.target, where, lines, depth)
            finally:
                self.via = outer
            if keep:
                lines[where] = line  # an alias's value is where it is used
            return value
        self._count(line)
        if isinstance(node, yaml.ScalarNode):
            # Most values are plain strings: no conversion, and only a "quoted" one can hold an escape.
            if node.tag == STR and node.style != '"':
                return node.value
            return self._scalar(node, where)
        if depth >= self.limits.max_depth:
            _too_deep(self.path, self.via or line, self.limits)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, where, SEQ)
            return [self.build(item, (*where, i), lines, depth + 1) for i, item in enumerate(node.value)]
        self._check_tag(node, where, MAP)
        return self._mapping(node, where, lines, depth)

    def _count(self, line: int) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            _too_many(self.path, self.via or line, self.limits, self.via)

    def _mapping(self, node: yaml.Node, where: Path_, lines: dict[Path_, int], depth: int) -> dict[str, Any]:
        explicit: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            key_line = _line(key_node)
            key_node = _target(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                what = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                fail(
                    self.path,
                    key_line,
                    f"{place(where)} has a {what} as a key (`? ...`): keys are plain strings here; "
                    "write the key as a string",
                )
            if key_node.tag == MERGE:
                merges.append(value_node)
                continue
            self._count(key_line)
            key = str(key_node.value)
            if key_node.tag not in _KEY_TAGS:
                self._check_tag(key_node, (*where, key), STR, key=True)
            if key in key_lines:
                fail(
                    self.path,
                    key_line,
                    f"{place(where)} has the key {key!r} twice (first at line {key_lines[key]}): keep one",
                )
            explicit[key] = self.build(value_node, (*where, key), lines, depth + 1)
            key_lines[key] = key_line
            if len(where) < self.limits.lines_depth:
                lines[(*where, key)] = key_line
        if not merges:
            return explicit
        # `<<: *base` (or a list of them): keys written here win, then the earlier merged mapping.
        merged: dict[str, Any] = {}
        for source in merges:
            node_ = _target(source)
            items = node_.value if isinstance(node_, yaml.SequenceNode) else [source]
            for item in items:
                mapping = _target(item)
                if not isinstance(mapping, yaml.MappingNode) or mapping.tag != MAP:
                    fail(
                        self.path,
                        _line(item),
                        f"{place(where)}: `<<` merges a mapping or a list of mappings: give it an alias of a mapping",
                    )
                outer = self.via
                self.via = outer or _line(item)
                try:
                    found: dict[Path_, int] = {}
                    data = self._mapping(mapping, where, found, depth)
                finally:
                    self.via = outer
                for key, value in data.items():
                    if key not in merged and key not in explicit:
                        merged[key] = value
                        lines.update({p: n for p, n in found.items() if p[len(where) : len(where) + 1] == (key,)})
        return {**merged, **explicit}

    def _scalar(self, node: yaml.ScalarNode, where: Path_) -> Any:
        tag, text = node.tag, str(node.value)
        bad = _SURROGATE.search(text) if node.style == '"' else None
        if bad is not None:
            # "\ud83d" escapes half a character: Python keeps it, but no file or terminal can print it.
            fail(
                self.path,
                _line(node),
                f"{place(where)} holds the escape \\u{ord(bad.group()):04x}, half of a character: "
                "write the character itself",
            )
        try:
            if tag in (STR, MERGE, VALUE):
                return text
            if tag == NULL:
                return None
            if tag == BOOL:
                return _SCALARS.construct_yaml_bool(node)
            if tag == INT:
                if len(text) > MAX_INT_CHARS:
                    self._number(node, where, f"an integer of {len(text)} characters")
                number: int = _SCALARS.construct_yaml_int(node)
                if not -INT64 <= number < INT64:
                    self._number(node, where, f"{text}, more than 64 bits")
                return number
            if tag == FLOAT:
                value: float = _SCALARS.construct_yaml_float(node)
                if not math.isfinite(value):
                    self._number(node, where, f"{text}, not a finite number")
                return value
        except (ValueError, KeyError):
            fail(self.path, _line(node), f"{place(where)}: {text!r} is not a valid {_tag_name(tag)}: fix the value")
        self._check_tag(node, where, STR)
        return text

    def _number(self, node: yaml.Node, where: Path_, what: str) -> NoReturn:
        fail(
            self.path,
            _line(node),
            f"{place(where)} is {what}: give a finite number that fits in 64 bits (quote it if it is meant as text)",
        )

    def _check_tag(self, node: yaml.Node, where: Path_, expected: str, key: bool = False) -> None:
        if node.tag != expected:
            what = f"a key of {place(where[:-1])}" if key else place(where)
            fail(
                self.path,
                _line(node),
                f"{what} has the YAML tag {_tag_name(node.tag)}, which a {self.limits.kind} does not take: "
                "remove the tag (only strings, numbers, true/false, null, lists and mappings are read)",
            )


def _target(node: yaml.Node) -> Any:
    return node.target if isinstance(node, _Alias) else node


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"
