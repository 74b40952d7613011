"""Runs the Pulumi program against Pulumi's mocks and records the resource graph it registers.

Mocks stand in for the engine and the providers only: the program code under test is the real one.
`run_stack(values)` parses the raw stack config values exactly as `pulumi preview` would, runs
`components.stack.build`, and returns every registered resource with its parent chain, its inputs
(secret-marked where the program marked them) and the stack outputs.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc, settings

SECRET_SIG = rpc._special_secret_sig  # how a secret value travels in resource inputs
SIG_KEY = rpc._special_sig_key


def fake_bytes(name: str, length: int) -> bytes:
    """Deterministic stand-in for random bytes, distinct per resource name."""
    out, block = b"", name.encode()
    while len(out) < length:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:length]


class Mocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs; fill in what real providers compute (random bytes, names, digests).
    `previous_outputs`: what a StackReference (to the stack itself: its last update) reads."""

    def __init__(self, previous_outputs: dict | None = None):
        super().__init__()
        self.previous_outputs = previous_outputs or {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomBytes:RandomBytes":
            raw = fake_bytes(args.name, int(args.inputs["length"]))
            outputs |= {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = base64.b32encode(fake_bytes(args.name, 20)).decode().lower()
        elif args.typ == "docker:index/image:Image":
            repo = args.inputs["imageName"].rsplit(":", 1)[0]
            outputs["repoDigest"] = f"{repo}@sha256:{hashlib.sha256(args.name.encode()).hexdigest()}"
        elif args.typ == "pulumi:pulumi:StackReference":
            outputs |= {"outputs": self.previous_outputs, "secretOutputNames": []}
        elif args.typ.startswith("kubernetes:") and isinstance(outputs.get("metadata"), dict):
            metadata = dict(outputs["metadata"])
            metadata.setdefault("name", f"{args.name}-0a1b2c3d")  # Pulumi's auto-naming
            outputs["metadata"] = metadata
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@dataclass
class Resource:
    urn: str
    typ: str
    name: str
    inputs: dict  # secret values appear as {SIG_KEY: SECRET_SIG, "value": ...}
    aliases: list[str] = field(default_factory=list)  # the URNs it was known by before
    dependencies: list[str] = field(default_factory=list)  # URNs of what it depends on (deleted after it)

    @property
    def parents(self) -> list[str]:
        """Type tokens of the parent chain, outermost first (from the URN)."""
        qualified = self.urn.split("::")[2]
        return qualified.split("$")[:-1]

    @property
    def parent(self) -> str | None:
        return self.parents[-1] if self.parents else None

    @property
    def plain(self) -> dict:
        return unsecret(self.inputs)


@dataclass
class Result:
    resources: list[Resource]
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)  # name -> (value, is_secret)

    def of_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def unsecret(value: Any) -> Any:
    if is_secret(value):
        return unsecret(value["value"])
    if isinstance(value, dict):
        return {k: unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsecret(v) for v in value]
    return value


def alias_urn(alias, urn: str) -> str:
    """The URN an alias of the resource `urn` names, as the mocks make URNs (qualified by the parent's own type
    only). The SDK sends a changed parent as a spec."""
    if alias.urn:
        return alias.urn
    stack, project, qualified, name = urn.split("::")
    spec = alias.spec
    parent = spec.parentUrn.split("::")[2].split("$")[-1] + "$" if spec.parentUrn else ""
    return f"{stack}::{project}::{parent}{spec.type or qualified.split('$')[-1]}::{spec.name or name}"


def run_stack(values: dict[str, Any], secret_keys: set[str] = frozenset(), project_dir: str = ".",
              previous_outputs: dict | None = None) -> Result:
    """Parse `values` (raw stack config without the project prefix) and run the program under mocks;
    `previous_outputs`: the stack's outputs of its last update (none: a first update)."""
    from components.config import parse
    from components.stack import build

    mocks = Mocks(previous_outputs)
    pulumi.runtime.set_mocks(mocks, project="slurm-cloud-integration", stack="test", preview=False,
                             organization="organization")  # what a diy backend (ours: a local file) calls it
    cfg = parse(values, set(secret_keys), project_dir)
    collected: dict[str, tuple[Any, bool]] = {}
    monitor = settings.get_monitor()
    aliases: dict[str, list[str]] = {}
    dependencies: dict[str, list[str]] = {}
    register = monitor.RegisterResource

    def register_recording(request):
        response = register(request)
        aliases[response.urn] = [alias_urn(a, response.urn) for a in request.aliases]
        dependencies[response.urn] = list(request.dependencies)
        return response
    monitor.RegisterResource = register_recording

    @pulumi.runtime.test
    def program():
        outputs = build(cfg)
        pending = []
        for key, value in outputs.items():
            out = pulumi.Output.from_input(value)
            pending.append(pulumi.Output.all(out, out.is_secret()).apply(
                lambda pair, key=key: collected.__setitem__(key, (pair[0], pair[1]))))
        return pulumi.Output.all(*pending)

    program()
    resources = [
        Resource(urn=urn, typ=urn.split("::")[2].split("$")[-1], name=urn.split("::")[3], inputs=reg.state,
                 aliases=aliases.get(urn, []), dependencies=dependencies.get(urn, []))
        for urn, reg in monitor.resources.items()
    ]
    return Result(resources=resources, outputs=collected)
