"""The TaskJob CustomResourceDefinition, generated from the pydantic models (one source of truth).

`python -m taskjobs.crd` prints the CRD as YAML; `python -m taskjobs.crd --write` rewrites
crds/taskjob.dev_taskjobs.yaml. A unit test fails when the checked-in file drifts from the models.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .core.models import TaskJob, TaskJobSpec, TaskJobStatus

GROUP = "taskjob.dev"
VERSION = "v1alpha1"
KIND = "TaskJob"
PLURAL = "taskjobs"
SINGULAR = "taskjob"
CRD_NAME = f"{PLURAL}.{GROUP}"
CATEGORY = "taskjob-all"  # `kubectl get taskjob-all`: TaskJobs and CronTaskJobs
CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / f"{GROUP}_{PLURAL}.yaml"
HEADER = (
    "# Generated from operator/taskjobs/models.py by operator/taskjobs/crd.py. Do not edit by hand:\n"
    "# change the models, then regenerate with `python -m taskjobs.crd --write`.\n"
)

# Rules at the root may read metadata.name and metadata.generateName (and apiVersion, kind). The
# server checks them after generateName has produced the name.
ROOT_RULES: list[dict[str, str]] = [
    {
        "rule": "self.metadata.name.size() <= 63",
        "message": "must be at most 63 characters: the TaskJob name is used in Job names and label values",
        "fieldPath": ".metadata.name",
    },
    {
        # The server already checks the DNS-subdomain format; a DNS-1123 label additionally has no dots.
        "rule": "!self.metadata.name.contains('.')",
        "message": "must be a DNS-1123 label (no '.'): the TaskJob name is used in Job names and label values",
        "fieldPath": ".metadata.name",
    },
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase of the TaskJob."},
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progress",
        "description": "Succeeded tasks / total tasks.",
    },
    {"name": "Running", "type": "integer", "jsonPath": ".status.running", "description": "Tasks running now."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Message",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
        "description": "One human sentence on the state.",
    },
]

# Key order in the generated YAML: what a reader looks for first comes first.
_KEY_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "additionalProperties",
    "items",
]
_RULE_ORDER = ["rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf"]
# JSON Schema keys the CRD's OpenAPI v3 subset does not take, or that we do not want (defaults are
# resolved in code so stored objects stay as the user wrote them).
_DROP = {"title", "default", "$defs"}


class SchemaError(ValueError):
    """The models use a construct the generator cannot express as a structural CRD schema."""


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the model's structural OpenAPI v3 schema as Kubernetes wants it in a CRD."""
    source = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(source, source.get("$defs", {}), model.__name__)


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = dict(node)
    if "$ref" in out:
        target = defs[out.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside the $ref (the field's own description) win over the model's (its docstring).
        out = {**_convert(target, defs, where), **out}
    if "anyOf" in out:
        members = [m for m in out.pop("anyOf") if m != {"type": "null"}]
        if len(members) != 1:
            raise SchemaError(f"{where}: only `X | None` unions can be expressed in a structural schema")
        out = {**_convert(members[0], defs, where), **out}
    for key in _DROP:
        out.pop(key, None)
    extra = out.get("additionalProperties")
    if extra is False or (extra is True and out.get("x-kubernetes-preserve-unknown-fields")):
        # Unknown fields are pruned or, with kubectl's strict field validation, rejected by the server;
        # a structural schema may not say additionalProperties: false.
        del out["additionalProperties"]
    elif isinstance(extra, Mapping):
        out["additionalProperties"] = _convert(extra, defs, f"{where}[*]")
    if "properties" in out:
        out["properties"] = {k: _convert(v, defs, f"{where}.{k}") for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = _convert(out["items"], defs, f"{where}[]")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        # Only a node that keeps anything (x-kubernetes-preserve-unknown-fields) may go without one.
        raise SchemaError(f"{where}: every node of a structural schema needs a type")
    return _ordered(out)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    if "x-kubernetes-validations" in node:
        node["x-kubernetes-validations"] = [_sorted(r, _RULE_ORDER) for r in node["x-kubernetes-validations"]]
    return _sorted(node, _KEY_ORDER)


def _sorted(node: Mapping[str, Any], order: list[str]) -> dict[str, Any]:
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(node.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


class _Dumper(yaml.SafeDumper):
    """Writes repeated sub-schemas out in full: anchors and aliases would only puzzle a reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def root_schema(
    description: str | None, spec: dict[str, Any], status: dict[str, Any], rules: list[dict[str, str]]
) -> dict[str, Any]:
    """Return the openAPIV3Schema of a kind: its spec and status schemas, and CEL rules on the whole object."""
    return {
        "description": description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {"description": "Kind is a string value representing the REST resource.", "type": "string"},
            # Declared only so the rules may point their fieldPath at metadata.name.
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [_sorted(r, _RULE_ORDER) for r in rules],
    }


def _root_schema() -> dict[str, Any]:
    return root_schema(TaskJob.__doc__, openapi_schema(TaskJobSpec), openapi_schema(TaskJobStatus), ROOT_RULES)


def crd_document(
    kind: str, plural: str, singular: str, short_name: str, columns: list[dict[str, Any]], schema: dict[str, Any]
) -> dict[str, Any]:
    """Return a namespaced, single-version CustomResourceDefinition of taskjob.dev with a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": [short_name],
                # Not "taskjob": a category named like a resource makes `kubectl get taskjob NAME` expand
                # to every kind in it ("you must specify only one resource").
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def build_crd() -> dict[str, Any]:
    """Return the CustomResourceDefinition for TaskJob as a dict."""
    return crd_document(KIND, PLURAL, SINGULAR, "tj", PRINTER_COLUMNS, _root_schema())


def render_yaml(crd: dict[str, Any], header: str) -> str:
    """Return a CRD as the YAML text checked in under crds/, header comment included."""
    return header + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def render() -> str:
    """Return the CRD as the YAML text checked in under crds/, header comment included."""
    return render_yaml(build_crd(), HEADER)


def write_or_print(prog: str, description: str, path: Path, text: str, argv: list[str] | None) -> int:
    """Print a generated CRD, or write it to `path` with --write; return the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--write", action="store_true", help=f"write {path.name} under crds/ instead of printing")
    parser.add_argument("--output", type=Path, default=path, help="file --write writes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the CRD, or write it to crds/ with --write; return the exit status."""
    return write_or_print("python -m taskjobs.crd", __doc__.splitlines()[0], CRD_PATH, render(), argv)


if __name__ == "__main__":
    sys.exit(main())
