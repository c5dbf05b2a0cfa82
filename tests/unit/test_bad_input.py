"""Issue 11, bad input: every malformed spec or manifest ends in one located sentence
(FILE:LINE: what is wrong: what to do), never a Python traceback or a hang.

Two parts:

- the corpus: one case per class of malformed input the tester found (and a few more), each with
  the line and the words its error must have, and the good inputs that must still load (a
  trailing ---, empty documents, an unquoted date, merge keys, the limits' own boundaries);
- properties (hypothesis, derandomized): documents generated from the shipped JSON Schema, the
  same documents mutated byte by byte and token by token, YAML tags injected, alias bombs and
  deep nesting, fed to `load_file` (and manifests to `load_manifests`). Every outcome is either
  specs or a SpecError/ManifestError that names the file and a line inside it, within seconds.

The counts (cases, generated documents, mutations) are asserted as minimums and printed as a
census (`-s` shows it); docs/reliability.md records them with the figures from before the change.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from pytest_stateful.errors import ManifestError, SpecError
from pytest_stateful.spec.loader import load_file, schema, spec_from_mapping
from pytest_stateful.workload.manifests import load_manifests
from pytest_stateful.workload.steps import BY_NAME

STS = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec:\n  serviceName: web\n"
SVC = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: None}\n"
BASE = "manifests: [sts.yaml]\nexpect: [pod_dns]\n"  # two lines: what a case appends is on line 3
# Seconds one load may take: far above what any input needs now, far below the 40-86 s seen before.
BOUND = 5.0


def laughs(levels: int, width: int = 10, key: str = "x-lol") -> str:
    """A billion-laughs chain: each level is a list of `width` aliases of the level below."""
    out = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    out += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(out) + f"\n{key}: *l{levels}\n"


def deep_block(levels: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + f"{'  ' * levels}leaf\n"


@dataclass(frozen=True)
class Bad:
    """A malformed input: `text` is the spec file (or, with manifest=True, the manifest sts.yaml
    that a valid spec names); its error must be at `line` (None: anywhere in the file) and match `says`."""

    id: str
    text: bytes
    line: int | None
    says: str
    manifest: bool = False


def _b(text: str) -> bytes:
    return text.encode()


SPEC_CASES: list[Bad] = [
    # text that is not UTF-8
    Bad(
        "non_utf8",
        b"name: caf\xe9\n" + _b(BASE),
        1,
        r"not UTF-8 text \(byte 0xe9 at column 10\): save the file as UTF-8",
    ),
    Bad("utf16", ("\ufeff" + BASE).encode("utf-16"), 1, r"not UTF-8 text"),
    Bad("non_utf8_line_3", _b(BASE) + b"name: \xff\xfe\n", 3, r"not UTF-8 text"),
    # characters YAML does not allow
    Bad("control_character", _b(BASE + "name: a\x07b\n"), 3, r"the character U\+0007 at column 8 is not allowed"),
    Bad("nul_character", _b(BASE + "name: a\x00b\n"), 3, r"U\+0000"),
    Bad(
        "surrogate_escape",
        _b(BASE + 'name: "\\ud83d"\n'),
        3,
        r"invalid Unicode character escape|name holds the escape \\ud83d, half of a character",
    ),
    # tags: only plain data is built
    Bad("binary_tag", _b(BASE + "name: !!binary aGVsbG8=\n"), 3, r"name has the YAML tag !!binary, which a spec does"),
    Bad("timestamp_tag", _b(BASE + "name: !!timestamp 2024-01-01\n"), 3, r"YAML tag !!timestamp"),
    Bad("python_apply", _b(BASE + "name: !!python/object/apply:os.system ['true']\n"), 3, r"!!python/object/apply"),
    Bad("python_object_doc", _b("!python/object:os.system\n" + BASE), 1, r"the document has the YAML tag !python/obj"),
    Bad("python_name_key", _b(BASE + "!!python/name:os.system : 1\n"), 3, r"a key of the document has the YAML tag"),
    Bad("local_tag", _b(BASE + "name: !secret x\n"), 3, r"name has the YAML tag !secret"),
    Bad("set_tag", _b(BASE + "name: !!set {a, b}\n"), 3, r"!!set"),
    Bad("omap_tag", _b(BASE + "steps: !!omap [{scale: 1}]\n"), 3, r"steps has the YAML tag !!omap"),
    Bad("int_tag_on_text", _b(BASE + "timeout: !!int abc\n"), 3, r"timeout: 'abc' is not a valid !!int"),
    Bad("bool_tag_on_text", _b(BASE + "timeout: !!bool maybe\n"), 3, r"'maybe' is not a valid !!bool"),
    Bad(
        "step_after_delete_statefulset",
        _b(BASE + "steps:\n  - delete_statefulset: true\n  - scale: 2\n"),
        5,
        r"scale comes after delete_statefulset, which must be the last step: the StatefulSet is gone",
    ),
    # keys
    Bad("complex_key_list", _b(BASE + "? [a, b]\n: 1\n"), 3, r"the document has a list as a key"),
    Bad("complex_key_map", _b(BASE + "? {a: 1}\n: 1\n"), 3, r"has a mapping as a key"),
    Bad("duplicate_key", _b(BASE + "expect: [stable_identity]\n"), 3, r"the key 'expect' twice \(first at line 2\)"),
    Bad("merge_of_scalar", _b("<<: 1\n" + BASE), 1, r"`<<` merges a mapping or a list of mappings"),
    # nesting
    Bad("deep_flow_500", _b(BASE + "steps: " + "[" * 500 + "]" * 500 + "\n"), 3, r"nested more than 64 levels"),
    Bad("deep_flow_100000", _b(BASE + "steps: " + "[" * 100_000 + "]" * 100_000 + "\n"), 3, r"nested more than 64"),
    Bad(
        "65_levels",
        _b("chart: {path: chart, values: {a: " + "[" * 62 + "]" * 62 + "}}\nexpect: [pod_dns]\n"),
        1,
        r"nested more than 64 levels",
    ),
    Bad("deep_block_300", _b(BASE + deep_block(300)), None, r"nested more than 64 levels deep, the limit for a spec"),
    Bad(
        "deep_through_aliases",
        _b(BASE + "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n"),
        4,
        r"nested more than 64 levels",
    ),
    # aliases that expand without bound, and aliases that cannot work
    # l4 (line 7) is the first level past the budget: its aliases are where the values come from.
    Bad("billion_laughs_7", _b(BASE + laughs(7)), 7, r"more than 100000 values \(the alias at line 7 is copied"),
    Bad("billion_laughs_9", _b(BASE + laughs(9)), None, r"more than 100000 values"),
    Bad(
        "wide_alias",
        _b(BASE + "a: &a [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n"),
        4,
        r"more than 100000 values",
    ),
    Bad(
        "laughs_through_merges",
        _b(
            BASE
            + "m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}\n"
            + "".join(
                f"m{i}: &m{i} [" + ", ".join([f"{{<<: *m{i - 1}}}"] * 10) + "]\n"
                if i == 1
                else f"m{i}: &m{i} [" + ", ".join([f"*m{i - 1}"] * 10) + "]\n"
                for i in range(1, 7)
            )
        ),
        None,
        r"more than 100000 values",
    ),
    Bad("recursive_alias", _b(BASE + "x: &a [*a]\n"), 3, r"the alias \*a is inside the value it names"),
    Bad("undefined_alias", _b(BASE + "name: *nope\n"), 3, r"not valid YAML: the alias \*nope has no anchor &nope"),
    # numbers the schema takes but a run cannot
    Bad("int_5001_digits", _b(BASE + "timeout: " + "1" * 5001 + "\n"), 3, r"timeout is an integer of 5001 characters"),
    Bad("int_over_64_bits", _b(BASE + "timeout: 9223372036854775808\n"), 3, r"more than 64 bits"),
    Bad("timeout_nan", _b(BASE + "timeout: .nan\n"), 3, r"timeout is \.nan, not a finite number: give a finite"),
    Bad("timeout_inf", _b(BASE + "timeout: .inf\n"), 3, r"timeout is \.inf, not a finite number"),
    Bad("timeout_minus_inf", _b(BASE + "timeout: -.inf\n"), 3, r"not a finite number"),
    Bad("timeout_overflow", _b(BASE + "timeout: 1.0e+400\n"), 3, r"not a finite number"),
    Bad("sleep_nan", _b(BASE + "steps: [{sleep: .nan}]\n"), 3, r"steps\[0\]\.sleep is \.nan, not a finite number"),
    Bad("step_timeout_nan", _b(BASE + "steps: [{scale: 1, timeout: .NaN}]\n"), 3, r"steps\[0\]\.timeout is \.NaN"),
    Bad("step_timeout_inf", _b(BASE + "steps: [{scale: 1, timeout: .inf}]\n"), 3, r"not a finite number"),
    Bad(
        "chart_value_nan", _b("chart: {path: chart, values: {x: .nan}}\nexpect: [pod_dns]\n"), 1, r"chart\.values\.x is"
    ),
    Bad(
        "scale_int32",
        _b(BASE + "steps: [{scale: 2147483648}]\n"),
        3,
        r"steps\[0\]\.scale must be <= 2147483647, got 2147483648",
    ),
    Bad("partition_int32", _b(BASE + "steps: [{partition: 2147483648}]\n"), 3, r"partition must be <= 2147483647"),
    Bad("ordinal_int32", _b(BASE + "steps: [{delete_pod: 4294967296}]\n"), 3, r"delete_pod must be <= 2147483647"),
    Bad(
        "scale_float", _b(BASE + "steps: [{scale: 3.0}]\n"), 3, r"steps\[0\]\.scale must be an integer, got float 3\.0"
    ),
    Bad(
        "ordinal_float", _b(BASE + "steps: [{delete_pod: 1.0}]\n"), 3, r"delete_pod must be an integer, got float 1\.0"
    ),
    Bad("scale_true", _b(BASE + "steps: [{scale: true}]\n"), 3, r"steps\[0\]\.scale must be an integer, got bool true"),
    Bad("ordinal_false", _b(BASE + "steps: [{delete_pod: false}]\n"), 3, r"must be an integer, got bool false"),
    Bad("timeout_true", _b(BASE + "timeout: true\n"), 3, r"timeout must be a number, got bool true"),
    Bad("sleep_yes", _b(BASE + "steps: [{sleep: yes}]\n"), 3, r"sleep must be a number, got bool true"),
    Bad("timeout_over_a_day", _b(BASE + "timeout: 86401\n"), 3, r"timeout must be <= 86400 \(one day\), got 86401"),
    Bad("timeout_1e300", _b(BASE + "timeout: 1.0e+300\n"), 3, r"timeout must be <= 86400"),
    Bad("step_timeout_over_a_day", _b(BASE + "steps: [{scale: 1, timeout: 86401}]\n"), 3, r"timeout must be <= 86400"),
    Bad("sleep_over_an_hour", _b(BASE + "steps: [{sleep: 3601}]\n"), 3, r"sleep must be <= 3600"),
    Bad(
        "timestamp_as_number", _b(BASE + "timeout: 2024-01-01\n"), 3, r'timeout must be a number, got str "2024-01-01"'
    ),
    # marks and names pytest cannot take
    Bad("mark_underscore", _b(BASE + "marks: [_]\n"), 3, r'marks\[0\] must be a pytest mark name .*got "_"'),
    Bad("mark_leading_underscore", _b(BASE + "marks: [_slow]\n"), 3, r"must be a pytest mark name"),
    Bad("mark_trailing_newline", _b(BASE + 'marks: ["slow\\n"]\n'), 3, r"must be a pytest mark name"),
    Bad("mark_space", _b(BASE + "marks: [a b]\n"), 3, r"must be a pytest mark name"),
    Bad("mark_operator", _b(BASE + "marks: [slow, not]\n"), 3, r"marks\[1\]: 'not' cannot be a mark"),
    Bad("mark_number", _b(BASE + "marks: [1]\n"), 3, r"marks\[0\] must be a string, got int 1"),
    Bad("name_newline", _b(BASE + 'name: "a\\nb"\n'), 3, r"name must be one line of text"),
    # files without a spec
    Bad("empty_file", b"", 1, r"no spec document in this file: write one"),
    Bad("comment_only", b"# nothing here yet\n", 1, r"no spec document in this file"),
    Bad("separators_only", b"---\n---\n...\n", 1, r"no spec document in this file"),
    Bad("blank_lines_only", b"\n\n   \n", 1, r"no spec document in this file"),
    Bad("null_document", _b(BASE + "---\n~\n"), 4, r"a spec document must be a mapping of keys, not null"),
    Bad("list_document", b"- a\n- b\n", 1, r"must be a mapping of keys, not a list"),
    Bad("string_document", b"hello\n", 1, r"must be a mapping of keys, not a string"),
    # size and count limits
    Bad(
        "over_one_mib", b"# " + b"x" * (1 << 20) + b"\n" + _b(BASE), 1, r"larger than 1 MiB, the limit for a spec file"
    ),
    Bad("twenty_thousand_documents", _b((BASE + f"name: {'x' * 200}\n---\n") * 20_000), 1, r"larger than 1 MiB"),
    Bad("101_documents", _b((BASE + "---\n") * 101), 300, r"more than 100 YAML documents in one spec file"),
    Bad("many_values", _b(BASE + "x: [" + ", ".join(["1"] * 100_001) + "]\n"), 3, r"more than 100000 values"),
    # paths the system cannot look up
    Bad(
        "manifest_nul", _b('manifests: ["sts\\0.yaml"]\nexpect: [pod_dns]\n'), 1, r'manifest file "sts\\u0000.yaml" not'
    ),
    Bad("manifest_too_long", _b("manifests: [" + "a" * 5000 + "]\nexpect: [pod_dns]\n"), 1, r"not found"),
    Bad("manifest_directory", _b("manifests: [.]\nexpect: [pod_dns]\n"), 1, r"manifest file \. not found"),
    # syntax
    Bad("unclosed_flow", _b("manifests: [sts.yaml]\nexpect: [pod_dns\n"), None, r"not valid YAML: "),
    Bad("tab_indent", _b("manifests: [sts.yaml]\nexpect:\n\t- pod_dns\n"), 3, r"not valid YAML: "),
    Bad("directive_twice", _b("%YAML 1.1\n%YAML 1.1\n---\n" + BASE), 2, r"not valid YAML: "),
]

MANIFEST_CASES: list[Bad] = [
    Bad("m_non_utf8", _b(STS) + b"  x: \xff\n", 6, r"not UTF-8 text", manifest=True),
    Bad(
        "m_metadata_list",
        b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: [1]\n",
        3,
        r"metadata must be a mapping, got a list",
        True,
    ),
    Bad(
        "m_metadata_null",
        b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n",
        3,
        r"metadata must be a mapping, got nothing",
        True,
    ),
    Bad(
        "m_name_list",
        b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: [a]}\n",
        3,
        r"metadata\.name must be a string",
        True,
    ),
    Bad(
        "m_no_name",
        b"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {labels: {a: b}}\n",
        3,
        r"the StatefulSet has no metadata\.name",
        True,
    ),
    Bad(
        "m_labels_list",
        _b(STS) + b"---\napiVersion: v1\nkind: Service\nmetadata: {name: s, labels: [a]}\n",
        9,
        r"metadata\.labels must be a mapping",
        True,
    ),
    Bad(
        "m_kind_list",
        b"apiVersion: apps/v1\nkind: [StatefulSet]\nmetadata: {name: web}\n",
        2,
        r"kind must be a non-empty string, got a list",
        True,
    ),
    Bad(
        "m_api_version_int",
        b"apiVersion: 1\nkind: StatefulSet\nmetadata: {name: web}\n",
        1,
        r"apiVersion must be a non-empty string, got int 1",
        True,
    ),
    Bad(
        "m_spec_list",
        _b(STS.replace("spec:\n  serviceName: web\n", "spec: [1]\n")),
        4,
        r"spec must be a mapping, got a list",
        True,
    ),
    Bad("m_template_string", _b(STS + "  template: x\n"), 6, r"spec\.template must be a mapping", True),
    Bad(
        "m_containers_strings",
        _b(STS + "  template: {spec: {containers: [nginx]}}\n"),
        6,
        r"containers must be a list of containers",
        True,
    ),
    Bad(
        "m_list_items_string",
        b"apiVersion: v1\nkind: List\nitems: x\n",
        3,
        r"items of a List must be a list of objects",
        True,
    ),
    Bad(
        "m_list_item_bad",
        b"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: StatefulSet, metadata: [1]}\n",
        4,
        r"items\[0\]\.metadata must be a mapping",
        True,
    ),
    Bad(
        "m_python_tag",
        _b(STS + "  x: !!python/object/apply:os.system [id]\n"),
        6,
        r"spec\.x has the YAML tag !!python/object/apply:os.system, which a manifest",
        True,
    ),
    Bad("m_binary", _b(STS + "  x: !!binary aGk=\n"), 6, r"!!binary", True),
    Bad("m_billion_laughs", _b(STS + laughs(7)), 11, r"more than 250000 values \(the alias at line 11", True),
    Bad(
        "m_deep",
        _b(STS + "x: " + "[" * 500 + "]" * 500 + "\n"),
        6,
        r"nested more than 64 levels deep, the limit for a manifest",
        True,
    ),
    Bad("m_nan", _b(STS + "  replicas: .nan\n"), 6, r"spec\.replicas is \.nan, not a finite number", True),
    Bad("m_int_5001", _b(STS + "  replicas: " + "9" * 5001 + "\n"), 6, r"integer of 5001 characters", True),
    Bad(
        "m_no_kind",
        b"just: a mapping\n",
        1,
        r"every document needs apiVersion and kind.*: this document has no apiVersion and kind",
        True,
    ),
    Bad("m_scalar_document", b"hello\n", 1, r"every document needs apiVersion and kind.*: this document is str", True),
    Bad("m_duplicate_key", _b(STS + "kind: Service\n"), 6, r"the key 'kind' twice \(first at line 2\)", True),
    Bad("m_complex_key", _b(STS + "? [a]\n: b\n"), 6, r"a list as a key", True),
    Bad(
        "m_over_10_mib",
        b"# " + b"x" * (10 << 20) + b"\n" + _b(STS),
        1,
        r"larger than 10 MiB, the limit for a manifest file",
        True,
    ),
    Bad("m_1001_documents", _b((STS + "---\n") * 1001), 6000, r"more than 1000 YAML documents", True),
    Bad("m_unclosed_flow", b"kind: [\n", 2, r"not valid YAML", True),
]


GOOD_CASES: list[tuple[str, str, list[str]]] = [
    ("trailing_separator", BASE + "---\n", ["app"]),
    ("separators_between_and_after", "---\n" + BASE + "---\n---\n" + BASE + "...\n---\n", ["app[0]", "app[1]"]),
    ("comment_then_separator", "# a comment\n---\n" + BASE, ["app"]),
    ("byte_order_mark", "\ufeff" + BASE, ["app"]),
    ("unquoted_date_is_a_string", BASE + "name: 2024-01-01\n", ["2024-01-01"]),
    ("explicit_str_tag", BASE + "name: !!str 123\n", ["123"]),
    ("number_as_json_writes_it", BASE + "timeout: 1e3\n", ["app"]),
    ("merge_key", "<<: {manifests: [sts.yaml]}\nexpect: [pod_dns]\nname: merged\n", ["merged"]),
    ("merge_list_first_wins", "<<: [{name: first}, {name: second}]\n" + BASE, ["first"]),
    ("explicit_key_beats_merge", "<<: {name: merged}\nname: own\n" + BASE, ["own"]),
    ("anchors_and_aliases", BASE + "steps:\n  - &s {scale: 2}\n  - *s\n  - {<<: *s, timeout: 30}\n", ["app"]),
    ("exactly_100_documents", (BASE + "---\n") * 100, [f"app[{i}]" for i in range(100)]),
    # The document, chart, values, then 61 lists: 64 levels.
    (
        "exactly_64_levels",
        "chart: {path: chart, values: {a: " + "[" * 61 + "]" * 61 + "}}\nexpect: [pod_dns]\n",
        ["app"],
    ),
]


def _project(tmp_path: Path) -> Path:
    (tmp_path / "sts.yaml").write_text(STS)
    (tmp_path / "svc.yaml").write_text(SVC)
    (tmp_path / "chart").mkdir(exist_ok=True)
    (tmp_path / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: chart\nversion: 0.1.0\n")
    (tmp_path / "values.yaml").write_text("{}\n")
    return tmp_path


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail (rather than hang) when the block runs longer than `seconds`."""

    def stop(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - started < seconds


# What YAML counts as a line break (a lone CR too, as editors do).
LINE_BREAK = re.compile(rb"\r\n|\r|\n|\xc2\x85|\xe2\x80[\xa8\xa9]")


def assert_located(exc: BaseException, files: dict[Path, bytes]) -> None:
    """One sentence that starts with one of `files` and a line inside it (the end counts: an
    unclosed bracket is reported at the line after the last)."""
    text = str(exc)
    assert "\n" not in text, text
    match = re.match(r"(.+?):(\d+): \S", text)
    assert match, f"not located: {text}"
    named = Path(match[1]).resolve()
    sizes = {p.resolve(): len(LINE_BREAK.findall(content)) + 2 for p, content in files.items()}
    assert named in sizes, f"names {named}, not one of {list(sizes)}: {text}"
    assert 1 <= int(match[2]) <= sizes[named], text


def load_outcome(path: Path) -> list[Any] | SpecError:
    """The specs, or the SpecError. Anything else (a traceback) fails the test here."""
    try:
        return load_file(path)
    except SpecError as exc:
        return exc


# -- the corpus --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SPEC_CASES + MANIFEST_CASES, ids=lambda c: c.id)
def test_each_malformed_input_gets_one_located_sentence(case: Bad, tmp_path: Path) -> None:
    check_refused(case, tmp_path)


@pytest.mark.parametrize("case", [c for c in SPEC_CASES + MANIFEST_CASES if c.id != "many_values"], ids=lambda c: c.id)
def test_without_libyaml_the_errors_are_the_same(case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PyYAML without its C parser (built from source without libyaml) parses in Python; the
    # limits must hold there too. (many_values: the same, but 100,000 values take it 6 s.)
    from pytest_stateful import yaml_input

    monkeypatch.setattr(yaml_input, "_LOADER", yaml_input._PyLoader)
    check_refused(case, tmp_path)


def check_refused(case: Bad, tmp_path: Path) -> None:
    _project(tmp_path)
    spec = tmp_path / "app.stateful.yaml"
    bad = tmp_path / "sts.yaml" if case.manifest else spec
    if case.manifest:
        spec.write_text(BASE)
    bad.write_bytes(case.text)
    with bounded(BOUND):
        outcome = load_outcome(spec)
    assert isinstance(outcome, SpecError), f"accepted: {outcome}"
    assert_located(outcome, {spec: spec.read_bytes(), bad: case.text})
    assert outcome.path.resolve() == bad.resolve()
    if case.line is not None:
        assert outcome.line == case.line, str(outcome)
    assert re.search(case.says, outcome.message), str(outcome)
    if case.manifest:
        # The same file given to the Python API: a ManifestError that names it and the line.
        with bounded(BOUND), pytest.raises(ManifestError) as raised:
            load_manifests([bad])
        message = str(raised.value)
        assert message.startswith(str(bad)) and f"{outcome.line}" in message, message
        assert re.search(case.says, message), message


@pytest.mark.parametrize(("name", "text", "names"), GOOD_CASES, ids=[c[0] for c in GOOD_CASES])
def test_good_inputs_still_load(name: str, text: str, names: list[str], tmp_path: Path) -> None:
    _project(tmp_path)
    spec = tmp_path / "app.stateful.yaml"
    spec.write_text(text)
    with bounded(BOUND):
        specs = load_file(spec)
    assert [s.name for s in specs] == names


def test_dates_and_exponents_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    # YAML 1.2 (JSON, kubectl): an unquoted date is a string, 1e3 is a number.
    _project(tmp_path)
    spec = tmp_path / "app.stateful.yaml"
    spec.write_text(BASE + "name: 2024-01-01\ntimeout: 1e3\n")
    (loaded,) = load_file(spec)
    assert (loaded.name, loaded.timeout) == ("2024-01-01", 1000.0)


def test_merged_step_options_and_aliases_load_as_written(tmp_path: Path) -> None:
    _project(tmp_path)
    spec = tmp_path / "app.stateful.yaml"
    spec.write_text(BASE + "steps:\n  - &s {scale: 2}\n  - *s\n  - {<<: *s, timeout: 30}\n")
    steps = load_file(spec)[0].steps
    assert [(s.action, s.value, s.timeout) for s in steps] == [("scale", 2, None), ("scale", 2, None), ("scale", 2, 30)]
    # An alias's line is where it is used.
    assert [s.line for s in steps] == [4, 5, 6]


def test_good_manifests_still_load(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {built: 2024-01-01}}\n"
        f"data: {{big: {json.dumps('x' * (2 << 20))}}}\n---\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"
    )
    docs = load_manifests([path, "<<: {apiVersion: v1, kind: Service}\nmetadata: {name: merged}\n"])
    assert [d["metadata"]["name"] for d in docs] == ["c", "s", "merged"]
    assert docs[0]["metadata"]["annotations"]["built"] == "2024-01-01"  # a string, as kubectl sends it
    with pytest.raises(ManifestError, match=r"^inline YAML:3: metadata must be a mapping"):
        load_manifests(["apiVersion: v1\nkind: Service\nmetadata: [x]\n"])
    with pytest.raises(ManifestError, match=r"^manifest 1 \(a mapping\): metadata must be a mapping"):
        load_manifests([{"apiVersion": "v1", "kind": "Service", "metadata": [1]}])


def test_the_limits_are_the_documented_ones() -> None:
    from pytest_stateful.yaml_input import MANIFEST_LIMITS, SPEC_LIMITS

    assert (SPEC_LIMITS.max_bytes, SPEC_LIMITS.max_documents, SPEC_LIMITS.max_depth, SPEC_LIMITS.max_nodes) == (
        1 << 20,
        100,
        64,
        100_000,
    )
    assert (MANIFEST_LIMITS.max_bytes, MANIFEST_LIMITS.max_documents, MANIFEST_LIMITS.max_depth) == (10 << 20, 1000, 64)
    assert MANIFEST_LIMITS.max_nodes == 250_000
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    for fact in ("1 MiB", "10 MiB", "100 documents", "1000 documents", "64 levels", "100,000 values", "250,000"):
        assert fact in docs, fact


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"timeout": float("nan")}, r"timeout is nan, not a finite number"),
        ({"timeout": float("inf")}, r"timeout is inf, not a finite number"),
        ({"timeout": 10**5000}, r"timeout is an integer of 16610 bits"),
        ({"steps": [{"scale": 2**40}]}, r"steps\[0\]\.scale must be <= 2147483647"),
        ({"steps": [{"sleep": float("nan")}]}, r"steps\[0\]\.sleep is nan"),
        ({"name": __import__("datetime").date(2024, 1, 1)}, r"name must be a string, got date"),
        ({"timeout": True}, r"timeout must be a number, got bool true"),
    ],
)
def test_the_marker_is_held_to_the_same_rules(data: dict[str, Any], says: str, tmp_path: Path) -> None:
    _project(tmp_path)
    with pytest.raises(SpecError, match=says):
        spec_from_mapping({"manifests": ["sts.yaml"], "expect": ["pod_dns"], **data}, tmp_path / "t.py", 7, "t")


def test_a_marker_spec_that_contains_itself_is_refused(tmp_path: Path) -> None:
    _project(tmp_path)
    values: dict[str, Any] = {}
    values["self"] = values
    with pytest.raises(SpecError, match=r"t\.py:7: chart\.values(\.self)+ is nested more than 64 levels deep"):
        spec_from_mapping(
            {"chart": {"path": "chart", "values": values}, "expect": ["pod_dns"]}, tmp_path / "t.py", 7, "t"
        )


# -- documents generated from the schema ---------------------------------------------------------

# How many examples each property runs (docs/reliability.md records what they found).
POOL, VALID, MUTATIONS, MANIFEST_MUTATIONS, NASTY = 300, 800, 2500, 1000, 500

SCHEMA = schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CENSUS: Counter[str] = Counter()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for the keywords the spec schema uses; the document is validated after (the
    generator does not model dependentSchemas, the validator does)."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        return st.deferred(lambda: from_schema(SCHEMA["$defs"][name]))
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum")
        ints = st.integers(min_value=low, max_value=high)
        if "exclusiveMinimum" in node:
            ints = ints.filter(lambda n: n > node["exclusiveMinimum"])
        if kind == "integer":
            return ints
        floats = st.floats(
            min_value=low, max_value=high, exclude_min="exclusiveMinimum" in node, allow_nan=False, allow_infinity=False
        )
        return ints | floats
    if kind == "string":
        pattern = node.get("pattern")
        if pattern and "(?" not in pattern:
            return st.from_regex(pattern, fullmatch=True)
        text = st.text(min_size=node.get("minLength", 0), max_size=12)
        return text.filter(lambda s: re.search(pattern, s) is not None) if pattern else text
    if kind == "array":
        items = from_schema(node.get("items", {}))
        unique = bool(node.get("uniqueItems"))
        return st.lists(
            items, min_size=node.get("minItems", 0), max_size=4, unique_by=(lambda v: json.dumps(v)) if unique else None
        )
    if kind == "object":
        properties = node.get("properties")
        if not properties:
            return st.dictionaries(st.text(max_size=6), json_values, max_size=3)
        required = node.get("required", [])
        optional = [k for k in properties if k not in required]
        if not optional:
            return st.fixed_dictionaries({k: from_schema(properties[k]) for k in required})
        return st.sets(st.sampled_from(optional), max_size=4).flatmap(
            lambda keys: st.fixed_dictionaries({k: from_schema(properties[k]) for k in [*required, *sorted(keys)]})
        )
    return json_values


documents = from_schema(SCHEMA)


def ground(doc: dict[str, Any]) -> dict[str, Any]:
    """The generated document, with its files pointing at files that exist and each step taking
    one action (what the loader checks beyond the schema), so a valid one can load."""
    doc = dict(doc)
    if "chart" in doc and "manifests" not in doc:
        chart = dict(doc["chart"])
        chart["path"] = "chart"
        if "values_files" in chart:
            chart["values_files"] = ["values.yaml"] * len(chart["values_files"])
        doc["chart"] = chart
        doc.pop("statefulset", None)
    else:
        doc.pop("chart", None)
        doc["manifests"] = ["sts.yaml", "svc.yaml"][: max(1, len(doc.get("manifests", [])))]
        if "statefulset" in doc:
            doc["statefulset"] = "web"
    steps = []
    for step in doc.get("steps", []):
        actions = [k for k in step if k in BY_NAME]
        if not actions:
            steps.append({"delete_pods": "all"})
            continue
        kind = BY_NAME[actions[0]]
        kept = {k: v for k, v in step.items() if k == kind.name or k in kind.options}
        if kind.name == "helm_upgrade" and isinstance(kept[kind.name], dict):
            # Its chart and values files are files too.
            value = dict(kept[kind.name])
            if "chart" in value:
                value["chart"] = "chart"
            if "values_files" in value:
                value["values_files"] = ["values.yaml"] * len(value["values_files"])
            kept[kind.name] = value
        steps.append(kept)
    if "steps" in doc:
        doc["steps"] = steps
    return doc


def refused_by_the_loader(doc: dict[str, Any]) -> bool:
    """What a valid document may still be refused for, by a rule beyond the schema."""

    def ints(value: Any) -> Iterator[int]:
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from ints(v)
        elif isinstance(value, list):
            for v in value:
                yield from ints(v)

    return (
        doc.get("timeout", 0) > 86400
        or any(m in ("and", "or", "not") for m in doc.get("marks", []))
        or any(n.bit_length() >= 64 for n in ints(doc))
        # A step that must be the last one (delete_statefulset) with another after it.
        or any(BY_NAME[k].last for step in doc.get("steps", [])[:-1] for k in step if k in BY_NAME)
    )


def dump(doc: dict[str, Any], style: int) -> str:
    """One document as YAML, in one of several shapes a person might write."""
    # PyYAML writes NEL and the Unicode line and paragraph separators unescaped, and YAML then reads
    # them as line breaks: escape everything for such a document.
    plain = not re.search("[\x85\u2028\u2029]", json.dumps(doc, ensure_ascii=False))
    if style == 0:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=plain)
    if style == 1:
        return yaml.safe_dump(doc, default_flow_style=True, width=60, allow_unicode=plain)
    if style == 2:
        text = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
        # JSON is YAML, except for the characters YAML does not allow unescaped (C1 controls).
        return text if text.isprintable() or not re.search("[\x80-\x9f]", text) else dump(doc, 0)
    return "# generated\n---\n" + yaml.safe_dump(doc, sort_keys=False) + "---\n"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def run_property(test: Callable[[], None], name: str, minimum: int) -> None:
    started = time.perf_counter()
    test()
    took = time.perf_counter() - started
    print(f"\n[census] {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(CENSUS.items()) if k.startswith(name)))
    print(f"[census] {name}: {took:.1f} s")
    assert CENSUS[f"{name}.documents"] >= minimum, CENSUS


def test_valid_documents_from_the_schema_load(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = _project(tmp_path_factory.mktemp("valid"))
    spec = root / "gen.stateful.yaml"

    @_settings(VALID)
    @given(doc=documents, style=st.integers(0, 3), copies=st.integers(1, 3))
    def valid(doc: dict[str, Any], style: int, copies: int) -> None:
        doc = ground(doc)
        assume(VALIDATOR.is_valid(doc))
        text = "---\n".join([dump(doc, style)] * copies)
        spec.write_text(text)
        CENSUS["valid.documents"] += copies
        with bounded(BOUND):
            outcome = load_outcome(spec)
        if refused_by_the_loader(doc):
            assert isinstance(outcome, SpecError), doc
            assert_located(outcome, {spec: spec.read_bytes()})
            CENSUS["valid.refused beyond the schema"] += 1
            return
        assert not isinstance(outcome, SpecError), f"{outcome}\n{text}"
        assert len(outcome) == copies
        loaded = outcome[0]
        assert loaded.expect == tuple(doc["expect"])
        assert len(loaded.steps) == len(doc.get("steps", []))
        assert loaded.timeout == doc.get("timeout")
        if "name" in doc:
            assert loaded.name == doc["name"]
        CENSUS["valid.loaded"] += copies

    run_property(valid, "valid", VALID)


# -- mutations: bytes and tokens ----------------------------------------------------------------

TOKENS = [
    "!!python/object/apply:os.system ['true'] ",
    "!!python/name:os.system ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!custom ",
    "!<tag:example.com,2000:x> ",
    "&a ",
    "*a ",
    "*b ",
    "<<: *a\n",
    "? ",
    ": ",
    "- ",
    "[" * 70,
    "{" * 70,
    "]",
    "}",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:example.com,2000:\n",
    ".nan",
    ".inf",
    "-.inf",
    "1" * 5001,
    "0x" + "f" * 40,
    "2024-01-01",
    "2147483648",
    "true",
    "~",
    "\t",
    "\r",
    "\x00",
    "\x07",
    "\u2028",
    "\ufeff",
    '"\\ud83d"',
    "'",
    '"',
    "#",
    "|\n",
    ">-\n",
    "\n  ",
]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["byte", "insert", "delete", "token", "duplicate"]))
        if how == "byte" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif how == "token":
            data[at:at] = draw(st.sampled_from(TOKENS)).encode()
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


@pytest.fixture(scope="module")
def pool() -> list[tuple[dict[str, Any], str]]:
    """Valid documents from the schema, each with its YAML: what the mutations start from.
    Drawn once (drawing from the schema costs milliseconds, a mutation of a drawn one far less)."""
    found: list[tuple[dict[str, Any], str]] = []

    @_settings(POOL)
    @given(doc=documents, style=st.integers(0, 3))
    def collect(doc: dict[str, Any], style: int) -> None:
        doc = ground(doc)
        if VALIDATOR.is_valid(doc):
            found.append((doc, dump(doc, style)))

    collect()
    assert len(found) >= POOL // 2
    return found


def test_mutated_specs_never_raise_a_traceback(
    tmp_path_factory: pytest.TempPathFactory, pool: list[tuple[dict[str, Any], str]]
) -> None:
    root = _project(tmp_path_factory.mktemp("mutated"))
    spec = root / "gen.stateful.yaml"

    @_settings(MUTATIONS)
    @given(data=mutated(st.sampled_from([text.encode() for _, text in pool])))
    def mutations(data: bytes) -> None:
        spec.write_bytes(data)
        CENSUS["mutations.documents"] += 1
        with bounded(BOUND):
            outcome = load_outcome(spec)
        if isinstance(outcome, SpecError):
            assert_located(outcome, {spec: data, root / "sts.yaml": STS.encode(), root / "svc.yaml": SVC.encode()})
            CENSUS["mutations.refused"] += 1
        else:
            CENSUS["mutations.loaded"] += 1

    run_property(mutations, "mutations", MUTATIONS * 9 // 10)


def test_mutated_manifests_never_raise_a_traceback(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = _project(tmp_path_factory.mktemp("manifests"))
    spec = root / "gen.stateful.yaml"
    spec.write_text("manifests: [m.yaml]\nexpect: [pod_dns]\n")
    manifest = root / "m.yaml"
    sources = st.sampled_from(
        [STS, STS + "---\n" + SVC, "apiVersion: v1\nkind: List\nitems:\n- " + SVC.replace("\n", ", ")]
    )

    @_settings(MANIFEST_MUTATIONS)
    @given(data=mutated(sources.map(str.encode)))
    def manifests(data: bytes) -> None:
        manifest.write_bytes(data)
        CENSUS["manifests.documents"] += 1
        files = {spec: spec.read_bytes(), manifest: data}
        with bounded(BOUND):
            outcome = load_outcome(spec)
            try:
                load_manifests([manifest])
            except ManifestError as exc:
                assert str(exc).startswith(str(manifest)), exc
                assert "\n" not in str(exc), exc
        if isinstance(outcome, SpecError):
            assert_located(outcome, files)
            CENSUS["manifests.refused"] += 1

    run_property(manifests, "manifests", MANIFEST_MUTATIONS * 9 // 10)


# -- tags, alias bombs, deep nesting --------------------------------------------------------------

FOREIGN_TAGS = [
    "!!python/object:os.system",
    "!!python/object/apply:os.system",
    "!!python/name:os.system",
    "!!python/tuple",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!custom",
    "!<tag:example.com,2000:x>",
]


@st.composite
def nasty(draw: st.DrawFn, docs: list[dict[str, Any]]) -> tuple[str, str, str | None]:
    """(what, the YAML of a spec file, what its error must say: None when it may load) built to hit
    one limit or refusal."""
    doc = dict(draw(st.sampled_from(docs)))
    # A bomb costs the whole value budget (about 0.1 s) to refuse: one draw in nine, to keep the time.
    what = draw(st.sampled_from(["tag", "deep_flow", "deep_block", "many_documents"] * 2 + ["bomb"]))
    if what == "tag":
        key = draw(st.sampled_from(["name", "timeout", "steps", "marks", "x"]))
        value = draw(st.sampled_from(['"web"', "1", "[1, 2]", "{a: 1}", "aGk="]))
        tag = draw(st.sampled_from(FOREIGN_TAGS))
        doc.pop(key, None)
        return what, f"{key}: {tag} {value}\n" + yaml.safe_dump(doc, sort_keys=False), "YAML tag"
    base = yaml.safe_dump(doc, sort_keys=False)
    if what == "bomb":
        levels, width = draw(st.integers(1, 9)), draw(st.integers(2, 12))
        # laughs() expands to more than width ** (levels + 1) values.
        return (
            what,
            base + laughs(levels, width),
            "more than 100000 values" if width ** (levels + 1) > 100_000 else None,
        )
    if what == "deep_flow":
        n = draw(st.integers(1, 3000))
        opener = draw(st.sampled_from(["[", "{a: "]))
        closer = "]" if opener == "[" else "}"
        # n collections under the document's own mapping.
        return what, base + "x: " + opener * n + "1" + closer * n + "\n", "nested more than 64" if n + 1 > 64 else None
    if what == "deep_block":
        n = draw(st.integers(1, 200))
        return what, base + deep_block(n), "nested more than 64" if n > 64 else None
    n = draw(st.integers(1, 150))
    return what, "---\n".join([base] * n), "more than 100 YAML documents" if n > 100 else None


def test_tags_bombs_and_deep_nesting_are_refused_in_bounded_time(
    tmp_path_factory: pytest.TempPathFactory, pool: list[tuple[dict[str, Any], str]]
) -> None:
    root = _project(tmp_path_factory.mktemp("nasty"))
    spec = root / "gen.stateful.yaml"

    @_settings(NASTY)
    # Only documents that load on their own: the error must be the limit's, not an earlier refusal.
    @given(case=nasty([doc for doc, _ in pool if not refused_by_the_loader(doc)]))
    def nasty_documents(case: tuple[str, str, str | None]) -> None:
        what, text, says = case
        spec.write_text(text)
        CENSUS["nasty.documents"] += 1
        CENSUS[f"nasty.{what}"] += 1
        with bounded(BOUND):
            outcome = load_outcome(spec)
        if isinstance(outcome, SpecError):
            assert_located(outcome, {spec: text.encode()})
        if says is not None:
            assert isinstance(outcome, SpecError) and says in outcome.message, outcome

    run_property(nasty_documents, "nasty", NASTY * 9 // 10)
