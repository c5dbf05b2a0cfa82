"""Issue 4: *.stateful.yaml collection and validation; no cluster is contacted at collection."""

from __future__ import annotations

import textwrap

import pytest

SVC = """
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec: {clusterIP: None, selector: {app: nginx}, ports: [{port: 80}]}
"""
STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: NAME}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: nginx, image: nginx}]}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", svc=SVC, sts=STS.replace("NAME", "web"))
    # Collection must not touch a cluster: point the provider at one that cannot exist.
    pytester.makeini("[pytest]\nstateful_cluster = existing\n")
    return pytester


def spec(pytester: pytest.Pytester, text: str, name: str = "app") -> None:
    pytester.makefile(".stateful.yaml", **{name: textwrap.dedent(text)})


def collection_error(pytester: pytest.Pytester) -> str:
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    return result.stdout.str()


def test_one_item_per_document_with_default_names(project: pytest.Pytester) -> None:
    spec(
        project,
        "manifests: [svc.yaml, sts.yaml]\nexpect: [pod_dns]\n"
        "---\nname: second\nmanifests: [sts.yaml]\nexpect: [stable_identity]\n",
    )
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["app.stateful.yaml::app[[]0[]]", "app.stateful.yaml::second", "2 tests collected*"])


def test_pattern_is_configurable(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nstateful_cluster = existing\nstateful_patterns = *.sts.yml\n")
    project.makefile(".sts.yml", gate="manifests: [svc.yaml, sts.yaml]\nexpect: [pod_dns]\n")
    project.runpytest("--collect-only", "-q").stdout.fnmatch_lines(["gate.sts.yml::gate", "1 test collected*"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "manifests: [svc.yaml, sts.yaml]\nexpect: [pod_dns]\nstep:\n  - scale: 3\n",
            "app.stateful.yaml:3: unknown key 'step' (did you mean 'steps'?); valid: name, manifests, chart,*",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nexpect:\n  - pod_dns\n  - ordered_creaton\n",
            "app.stateful.yaml:4: unknown guarantee 'ordered_creaton' (did you mean 'ordered_creation'?);*",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nsteps:\n  - scale: 3\n  - delet_pod: 0\nexpect: [pod_dns]\n",
            "app.stateful.yaml:4: unknown step key 'delet_pod' (did you mean 'delete_pod'?)*",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nsteps:\n  - scale: three\nexpect: [pod_dns]\n",
            'app.stateful.yaml:3: steps[[]0[]].scale must be an integer, got str "three"',
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\ntimeout: -1\nexpect: [pod_dns]\n",
            "app.stateful.yaml:2: timeout must be > 0, got -1",
        ),
        (
            "manifests: [svc.yaml, missing.yaml]\nexpect: [pod_dns]\n",
            "app.stateful.yaml:1: manifest file missing.yaml not found (looked in *)",
        ),
        (
            "manifests: [svc.yaml]\nexpect: [pod_dns]\n",
            "app.stateful.yaml:1: the manifests hold no StatefulSet: there is nothing to judge",
        ),
        (
            "manifests: [svc.yaml, sts.yaml, sts2.yaml]\nexpect: [pod_dns]\n",
            "app.stateful.yaml:1: the manifests hold several StatefulSets (web, db): add `statefulset:`*",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nstatefulset: wbe\nexpect: [pod_dns]\n",
            "app.stateful.yaml:2: statefulset: 'wbe' is not in the manifests (they hold web)",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nsteps:\n  - scale: 3\n    delete_pod: 0\nexpect: [pod_dns]\n",
            "app.stateful.yaml:3: step 1 needs exactly one action of delete_pod, *(it has scale, delete_pod)",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\n",
            "app.stateful.yaml:1: the document: 'expect' is required",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nexpect: [pod_dns\n",
            "app.stateful.yaml:*: not valid YAML: *",
        ),
        (
            "manifests: [svc.yaml, sts.yaml]\nchart: {path: charts/x}\nexpect: [pod_dns]\n",
            "app.stateful.yaml:1: give either `manifests:` or `chart:` (exactly one of them)",
        ),
    ],
)
def test_invalid_spec_fails_collection_with_file_line_and_reason(
    project: pytest.Pytester, text: str, message: str
) -> None:
    project.makefile(".yaml", sts2=STS.replace("NAME", "db"))
    spec(project, text)
    output = collection_error(project)
    assert "invalid spec:" in output
    assert "Traceback" not in output
    project.runpytest("--collect-only", "-q").stdout.fnmatch_lines([f"*{message}"])


def test_traceback_option_brings_the_traceback_back(project: pytest.Pytester) -> None:
    spec(project, "manifests: [svc.yaml, sts.yaml]\nexpect: [nope]\n")
    result = project.runpytest("--collect-only", "--stateful-traceback")
    result.stdout.fnmatch_lines(["*SpecError*unknown guarantee 'nope'*"])


def test_marks_are_applied(project: pytest.Pytester) -> None:
    spec(project, "manifests: [svc.yaml, sts.yaml]\nmarks: [slow]\nexpect: [pod_dns]\n")
    project.makeini("[pytest]\nstateful_cluster = existing\nmarkers = slow: slow tests\n")
    result = project.runpytest("--collect-only", "-q", "-m", "not slow")
    result.stdout.fnmatch_lines(["*1 deselected*"])


def test_schema_ships_with_the_package() -> None:
    from importlib import resources

    import jsonschema

    from pytest_stateful.spec import schema

    text = resources.files("pytest_stateful.spec").joinpath("schema.json").read_text()
    assert '"$schema"' in text
    jsonschema.Draft202012Validator.check_schema(schema())


def test_many_spec_files_collect_without_a_cluster(project: pytest.Pytester) -> None:
    for i in range(200):
        spec(
            project,
            "manifests: [svc.yaml, sts.yaml]\nsteps: [{scale: 3}]\nexpect: [pod_dns, stable_identity]\n",
            name=f"s{i}",
        )
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["200 tests collected*"])
