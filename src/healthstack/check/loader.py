"""Read manifests from files, folders, stdin or a rendered Kustomize folder, keeping positions.

Each document's start line comes from the YAML composer (``node.start_mark``) so SARIF results
and text output can point at the object in its file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from healthstack.check.model import K8sObject
from healthstack.errors import HealthstackError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_SUFFIXES = (".yaml", ".yml")
ORIGIN = "config.kubernetes.io/origin"


def parse_stream(text: str, source: str) -> list[K8sObject]:
    """Every Kubernetes object in a multi-document YAML text; ``List`` kinds are flattened."""
    loader = _Loader(text)
    objects: list[K8sObject] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = loader.construct_document(node)
            objects.extend(_objects_of(doc, source, node.start_mark.line + 1))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise HealthstackError(f"{where}: malformed YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise HealthstackError(f"{source}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    return objects


def _objects_of(doc: Any, source: str, line: int) -> Iterator[K8sObject]:
    if doc is None:
        return
    if not isinstance(doc, dict) or "kind" not in doc:
        raise HealthstackError(f"{source}:{line}: not a Kubernetes object (no 'kind' mapping)")
    if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
        for item in doc.get("items") or []:
            yield from _objects_of(item, source, line)
        return
    yield K8sObject(doc=doc, file=source, line=line)


def load_paths(paths: Iterable[str]) -> list[K8sObject]:
    """Objects from files, folders (recursively, ``*.yaml``/``*.yml`` in name order) and ``-``."""
    objects: list[K8sObject] = []
    for raw in paths:
        if raw == "-":
            objects.extend(parse_stream(sys.stdin.read(), "<stdin>"))
            continue
        for file in _yaml_files(Path(raw)):
            objects.extend(parse_stream(_read(file), str(file)))
    return objects


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        # kustomization.yaml is build input, not an object to check.
        return sorted(
            p
            for p in path.rglob("*")
            if p.suffix in YAML_SUFFIXES
            and p.is_file()
            and p.name not in ("kustomization.yaml", "kustomization.yml")
        )
    if path.is_file():
        return [path]
    raise HealthstackError(f"{path}: no such file or folder")


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HealthstackError(f"{file}: cannot read: {exc}") from None


def kubectl() -> str:
    """The ``kubectl`` next to this interpreter (the dev venv ships one) or on ``PATH``."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise HealthstackError("--kustomize needs kubectl (not found in the venv nor on PATH)")
    return found


def render_kustomize(folder: str) -> str:
    """The YAML stream ``kubectl kustomize FOLDER`` prints."""
    if (
        not Path(folder, "kustomization.yaml").is_file()
        and not Path(folder, "kustomization.yml").is_file()
    ):
        raise HealthstackError(f"{folder}: no kustomization.yaml in this folder")
    proc = subprocess.run(
        [kubectl(), "kustomize", folder], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise HealthstackError(f"{folder}: kubectl kustomize failed: {detail}")
    return proc.stdout


def load_kustomize(folder: str) -> list[K8sObject]:
    """Objects of a rendered Kustomize folder, each positioned in the base or component file
    that produced it (kustomize's origin annotations); objects without a readable origin keep
    their line in the rendered stream."""
    label = f"{folder.rstrip('/')}/kustomization.yaml"
    with tempfile.TemporaryDirectory(prefix="healthstack-origin-") as wrapper:
        text = _render_with_origins(folder, Path(wrapper))
        if text is None:
            return parse_stream(render_kustomize(folder), label)
        sources: dict[Path, list[K8sObject]] = {}
        return [_at_origin(o, Path(wrapper), sources) for o in parse_stream(text, label)]


def _render_with_origins(folder: str, wrapper: Path) -> str | None:
    """Render ``folder`` through a wrapper kustomization that asks for origin annotations
    (kustomize has no flag for them); None when that fails, so the plain render reports why."""
    if (
        not Path(folder, "kustomization.yaml").is_file()
        and not Path(folder, "kustomization.yml").is_file()
    ):
        return None
    target = os.path.relpath(Path(folder).resolve(), wrapper.resolve())
    (wrapper / "kustomization.yaml").write_text(
        f"resources:\n  - {json.dumps(target)}\nbuildMetadata: [originAnnotations]\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [kubectl(), "kustomize", str(wrapper)], capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def _at_origin(obj: K8sObject, wrapper: Path, sources: dict[Path, list[K8sObject]]) -> K8sObject:
    annotations = dict(obj.metadata.get("annotations") or {})
    raw = annotations.pop(ORIGIN, None)
    metadata = {k: v for k, v in obj.metadata.items() if k != "annotations"}
    if annotations:
        metadata["annotations"] = annotations
    doc = {**obj.doc, "metadata": metadata}
    try:
        origin = yaml.safe_load(str(raw)) if raw else None
    except yaml.YAMLError:
        origin = None
    path = origin.get("path") if isinstance(origin, dict) else None
    source = (wrapper.resolve() / str(path)).resolve() if path else None
    if source is None or not source.is_file():
        return K8sObject(doc, obj.file, obj.line)
    if source not in sources:
        try:
            sources[source] = parse_stream(_read(source), str(source))
        except HealthstackError:
            sources[source] = []
    line = _line_in(sources[source], obj)
    return K8sObject(doc, _display(source), line)


def _line_in(candidates: list[K8sObject], obj: K8sObject) -> int:
    same_kind = [c for c in candidates if c.kind == obj.kind]
    named = [c for c in same_kind if c.name == obj.name]
    return (named or same_kind or [K8sObject({}, "", 1)])[0].line


def _display(path: Path) -> str:
    """Relative to the working directory (the repository root in CI) when inside it."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
