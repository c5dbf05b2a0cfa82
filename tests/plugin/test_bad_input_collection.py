"""Issue 11, bad input, as users meet it: collecting a directory of malformed spec files reports
each file's error as one located sentence, never an internal error or a traceback, and the good
files beside them still collect."""

from __future__ import annotations

import time

import pytest

STS = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec: {serviceName: web}\n"
BASE = "manifests: [sts.yaml]\nexpect: [pod_dns]\n"

# file name -> (content, what its error line must match after "invalid spec: ")
BAD: dict[str, tuple[bytes, str]] = {
    "non_utf8": (
        b"name: caf\xe9\n" + BASE.encode(),
        "*non_utf8.stateful.yaml:1: not UTF-8 text*save the file as UTF-8",
    ),
    "empty": (b"", "*empty.stateful.yaml:1: no spec document in this file*"),
    "comment_only": (b"# later\n", "*comment_only.stateful.yaml:1: no spec document in this file*"),
    "binary": (BASE.encode() + b"name: !!binary aGk=\n", "*binary.stateful.yaml:3: name has the YAML tag !!binary*"),
    "python_tag": (b"!!python/object/apply:os.system ['true']\n", "*python_tag.stateful.yaml:1: *YAML tag !!python*"),
    "complex_key": (
        BASE.encode() + b"? [a, b]\n: 1\n",
        "*complex_key.stateful.yaml:3: the document has a list as a key*",
    ),
    "deep": (BASE.encode() + b"x: " + b"[" * 500 + b"]" * 500 + b"\n", "*deep.stateful.yaml:3: nested more than 64*"),
    "bomb": (
        BASE.encode()
        + b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n".encode() for p, c in zip("abcdef", "bcdefg", strict=True)
        ),
        "*bomb.stateful.yaml:*: more than 100000 values*",
    ),
    "many_documents": (
        (BASE + "---\n").encode() * 101,
        "*many_documents.stateful.yaml:300: more than 100 YAML documents*",
    ),
    "big_int": (
        BASE.encode() + b"timeout: " + b"7" * 5001 + b"\n",
        "*big_int.stateful.yaml:3: timeout is an integer of 5001*",
    ),
    "nan": (
        BASE.encode() + b"steps: [{sleep: .nan}]\n",
        "*nan.stateful.yaml:3: steps[[]0[]].sleep is .nan, not a finite*",
    ),
    "int32": (
        BASE.encode() + b"steps: [{scale: 2147483648}]\n",
        "*int32.stateful.yaml:3: *scale must be <= 2147483647*",
    ),
    "bool": (
        BASE.encode() + b"steps: [{scale: true}]\n",
        "*bool.stateful.yaml:3: *scale must be an integer, got bool true",
    ),
    "mark": (BASE.encode() + b"marks: [_]\n", "*mark.stateful.yaml:3: marks[[]0[]] must be a pytest mark name*"),
    "manifest": (
        b"manifests: [meta.yaml]\nexpect: [pod_dns]\n",
        "*meta.yaml:3: metadata must be a mapping, got a list*",
    ),
}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", sts=STS, meta="apiVersion: apps/v1\nkind: StatefulSet\nmetadata: [1]\n")
    # Collection must not touch a cluster: point the provider at one that cannot exist.
    pytester.makeini("[pytest]\nstateful_cluster = existing\n")
    return pytester


def test_a_directory_of_bad_files_reports_each_one_and_collects_the_good(project: pytest.Pytester) -> None:
    for name, (content, _) in BAD.items():
        (project.path / f"{name}.stateful.yaml").write_bytes(content)
    (project.path / "good.stateful.yaml").write_text(BASE + "---\n")  # a trailing --- is fine
    result = project.runpytest("--collect-only", "-q")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, out
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    result.stdout.fnmatch_lines(["good.stateful.yaml::good"])
    for _, says in BAD.values():
        result.stdout.fnmatch_lines([f"invalid spec: {says}"])
    result.stdout.fnmatch_lines([f"*1 test collected, {len(BAD)} errors*"])


def test_an_empty_spec_file_is_an_error(project: pytest.Pytester) -> None:
    project.makefile(".stateful.yaml", empty="\n# nothing yet\n")
    result = project.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["invalid spec: *empty.stateful.yaml:1: no spec document in this file*"])


def test_collection_of_bad_files_is_quick(project: pytest.Pytester) -> None:
    # The worst of them (a bomb, 100,000-level nesting, 5 MB of documents) together, well under the
    # minute each one took before.
    (project.path / "deep.stateful.yaml").write_bytes(BASE.encode() + b"x: " + b"[" * 100_000 + b"]" * 100_000)
    (project.path / "docs.stateful.yaml").write_bytes((BASE + f"name: {'x' * 200}\n---\n").encode() * 20_000)
    (project.path / "bomb.stateful.yaml").write_bytes(BAD["bomb"][0])
    started = time.perf_counter()
    result = project.runpytest("--collect-only", "-q")
    assert time.perf_counter() - started < 30
    result.stdout.fnmatch_lines(
        ["*deep.stateful.yaml:3: nested more than 64*", "*docs.stateful.yaml:1: the file is larger than 1 MiB*"]
    )
    assert "INTERNALERROR" not in result.stdout.str()
