#!/usr/bin/env bash
# The Pulumi toolchain for machines that cannot download Pulumi's plugins, built from Go modules: the CLI, the Python
# language host and the provider plugins, at the versions the pinned SDKs in .venv name, or as close as the Go module
# proxy allows (README: "The Pulumi toolchain on offline machines"). What was built from what is recorded in
# $SCI_CACHE/bin/TOOLCHAIN.txt. Sourced by scripts/bootstrap once .venv is installed (it uses bootstrap's warn).
MANIFEST="$SCI_CACHE/bin/TOOLCHAIN.txt"

# The versions everything else is derived from: the pinned SDKs and the plugins they name.
sdk_version() { "$SCI_ROOT/.venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
plugin_version() {
  "$SCI_ROOT/.venv/bin/python" - "$1" <<'PY'
import json, sys, importlib.util, pathlib
spec = importlib.util.find_spec(sys.argv[1])
print(json.loads((pathlib.Path(spec.origin).parent / "pulumi-plugin.json").read_text())["version"])
PY
}
PULUMI_SDK_VERSION="$(sdk_version pulumi)"

# The smallest published version of MODULE that is >= WANT (same major), for when WANT itself is missing.
nearest_version_at_least() {
  "$GO" list -m -versions -json "$1" 2>/dev/null | python3 -c '
import json, sys
want = tuple(int(x) for x in sys.argv[1].split("."))
vs = []
for v in json.load(sys.stdin).get("Versions") or []:
    core = v.lstrip("v").split("-")[0].split("+")[0]
    if "-" in v: continue
    try: t = tuple(int(x) for x in core.split("."))
    except ValueError: continue
    if t[0] == want[0] and t >= want: vs.append((t, v))
print(min(vs)[1] if vs else "")' "$2"
}

manifest() {  # NAME WANTED SOURCE
  grep -v "^$1 " "$MANIFEST" 2>/dev/null > "$MANIFEST.tmp" || true
  printf '%s wanted=%s built-from=%s\n' "$1" "$2" "$3" >> "$MANIFEST.tmp"
  sort -o "$MANIFEST" "$MANIFEST.tmp"; rm -f "$MANIFEST.tmp"
}

# Resolves MODULE at the wanted version, else falls back; prints "MODULE VERSION" or nothing.
# Cached in $SCI_CACHE/build/resolved so a warm run asks the proxy nothing.
resolve() {  # KEY MODULE WANT [FALLBACK_MODULE@VERSION | nearest]
  local key="$1" module="$2" want="$3" fallback="${4:-}" cache="$SCI_CACHE/build/resolved" line v
  line="$(grep "^$key $want " "$cache" 2>/dev/null | cut -d' ' -f3- || true)"
  if [[ -n "$line" ]]; then echo "$line"; return 0; fi
  if go_mod_dir "$module@v$want" >/dev/null; then
    line="$module v$want"
  elif [[ "$fallback" == nearest ]] && v="$(nearest_version_at_least "$module" "$want")" && [[ -n "$v" ]]; then
    line="$module $v"
  elif [[ -n "$fallback" && "$fallback" != nearest ]] && go_mod_dir "$fallback" >/dev/null; then
    line="${fallback%@*} ${fallback#*@}"
  else
    return 1
  fi
  echo "$key $want $line" >> "$cache"
  echo "$line"
}

# a. The Pulumi CLI: at the SDK's version if the proxy has it, else the nearest newer release (the CLI
#    is backward compatible with older SDKs, not the other way round).
if read -r cli_mod cli_ver < <(resolve cli github.com/pulumi/pulumi/pkg/v3 "$PULUMI_SDK_VERSION" nearest); then
  [[ "$cli_ver" == "v$PULUMI_SDK_VERSION" ]] || warn "pulumi CLI: v$PULUMI_SDK_VERSION is not on the Go module proxy; building $cli_ver"
  go_program pulumi "$SCI_CACHE/bin/pulumi" "$cli_mod" "$cli_ver" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_ver" || warn "pulumi CLI: not built"
  manifest pulumi "$PULUMI_SDK_VERSION" "$cli_mod@$cli_ver"
else
  warn "pulumi CLI: no github.com/pulumi/pulumi/pkg/v3 >= $PULUMI_SDK_VERSION on the Go module proxy"
fi

# b. The Python language host. Since v3.7x it is its own module; older ones live inside sdk/v3. The
#    proxy here serves no version of the new module, so fall back to the newest sdk/v3 that still has it.
LANGHOST_FALLBACK="${SCI_LANGHOST_FALLBACK:-github.com/pulumi/pulumi/sdk/v3@v3.68.0}"
if read -r lh_mod lh_ver < <(resolve langhost github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 \
     "$PULUMI_SDK_VERSION" "$LANGHOST_FALLBACK"); then
  if [[ "$lh_mod" == github.com/pulumi/pulumi/sdk/v3 ]]; then
    lh_pkg=github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python
    warn "python language host: v$PULUMI_SDK_VERSION is not on the Go module proxy; building $lh_mod@$lh_ver"
  else
    lh_pkg="$lh_mod"
  fi
  go_program pulumi-language-python "$SCI_CACHE/bin/pulumi-language-python" "$lh_mod" "$lh_ver" "$lh_pkg" \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$lh_ver" || warn "python language host: not built"
  manifest pulumi-language-python "$PULUMI_SDK_VERSION" "$lh_mod@$lh_ver"
  # The host runs programs through the exec shim that sits beside it (shipped in the same module).
  lh_dir="$(go_mod_dir "$lh_mod@$lh_ver")"
  for f in "$lh_dir"/python/cmd/pulumi-language-python-exec "$lh_dir"/cmd/pulumi-language-python-exec \
           "$lh_dir"/pulumi-language-python-exec; do
    [[ -f "$f" ]] && { cmp -s "$f" "$SCI_CACHE/bin/pulumi-language-python-exec" || install -m 0755 "$f" "$SCI_CACHE/bin/"; break; }
  done
else
  warn "python language host: not obtainable from the Go module proxy"
fi

# c. Scripts for Python dynamic providers and policy packs, from sdk/v3 at exactly the SDK's version.
if sdk_dir="$(go_mod_dir "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_SDK_VERSION")"; then
  for f in pulumi-resource-pulumi-python pulumi-analyzer-policy-python; do
    [[ -f "$sdk_dir/python/dist/$f" ]] || continue
    cmp -s "$sdk_dir/python/dist/$f" "$SCI_CACHE/bin/$f" || install -m 0755 "$sdk_dir/python/dist/$f" "$SCI_CACHE/bin/"
  done
fi

# d. Provider plugins, each at the version its Python SDK names in pulumi-plugin.json. The providers tag
#    their repository root (vX.Y.Z), so the provider/ Go module only exists as pseudo-versions; the proxy
#    is asked for vX.Y.Z first and then for a known pseudo-version (SCI_<NAME>_PROVIDER_SOURCE).
k8s_generate() {  # the provider embeds its schema, versioned, produced by go generate
  (cd "$1/src/cmd/pulumi-resource-kubernetes" && VERSION="$K8S_VERSION" "$GO" run generate.go)
}
# The provider's hook: its schema, then upstream's fix of its StatefulSet await (pulumi-kubernetes pull request 4094,
# merged 2026-01-23, after the commit the proxy serves): a StatefulSet is not ready while its status describes an
# older spec (status.observedGeneration below metadata.generation). Without it, `pulumi up` could return before an
# in-place rolling update had begun (seen with the distributed deployment's node pods after keyRotation). Rename the
# function when the patch changes, so that the provider's stamp no longer matches.
k8s_hook_1() {
  k8s_generate "$1"
  python3 - "$1/src/pkg/await/statefulset.go" <<'PY'
import sys
path, anchor = sys.argv[1], "\t// Set current and target replica counts for logging purposes.\n"
s = open(path).read()
if s.count(anchor) != 1:
    sys.exit(f"{path}: expected the anchor once, found {s.count(anchor)}")
fix = ("\t// Not ready while the status describes an older spec (pulumi-kubernetes pull request 4094).\n"
       "\tif observed, ok := openapi.Pluck(statefulset.Object, \"status\", \"observedGeneration\"); !ok ||\n"
       "\t\tobserved.(int64) < sia.currentGeneration {\n"
       "\t\tsia.revisionReady, sia.replicasReady = false, false\n"
       "\t}\n\n")
open(path, "w").write(s.replace(anchor, fix + anchor))
PY
}
install_plugin() {  # NAME VERSION BINARY
  local dest="$PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1"
  if [[ -x "$dest" ]] && cmp -s "$3" "$dest"; then return 0; fi
  pulumi plugin install resource "$1" "$2" --file "$3" --reinstall >/dev/null
  log "plugin: registered resource $1 v$2"
}
# Stand-ins: toolchain/providers/NAME (a Go module in this repository, see its README.md) builds a small
# replacement for a provider whose module the proxy refuses, covering only what this program uses. Its
# stamp names the hash of its sources; while it matches, the proxy is not asked again (set
# SCI_REBUILD=1, or delete the stamp, to look for the official module again).
STANDINS="$SCI_ROOT/toolchain/providers"
standin_spec() {  # NAME VERSION
  local src
  src="$(cd "$STANDINS" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort \
         | xargs sha256sum | sha256sum | cut -c1-16)"
  echo "standin $1 v$2 src=$src"
}
standin() {  # NAME VERSION
  local name="$1" want="$2" out="$SCI_CACHE/providers/pulumi-resource-$1"
  # -mod=readonly: the committed go.mod/go.sum are complete; the build never edits the checkout.
  GOFLAGS="-mod=readonly -buildvcs=false" go_build "$out" "$(standin_spec "$name" "$want")" "$STANDINS" "./$name" \
    || { warn "provider $name: building the stand-in from toolchain/providers/$name failed"; return 0; }
  log "provider $name v$want: the official plugin is not obtainable here; using the stand-in from toolchain/providers/$name"
  manifest "pulumi-resource-$name" "$want" "stand-in:toolchain/providers/$name"
  [[ -x "$SCI_CACHE/bin/pulumi" ]] && install_plugin "$name" "$want" "$out"
  return 0
}
provider() {  # NAME PYMODULE GOMODULE VERSIONPKG FALLBACK [HOOK]
  local name="$1" pymod="$2" gomod="$3" verpkg="$4" fallback="$5" hook="${6:-}" want pm pv out
  want="$(plugin_version "$pymod")"
  out="$SCI_CACHE/providers/pulumi-resource-$name"
  if [[ -d "$STANDINS/$name" ]] && go_fresh "$out" "$(standin_spec "$name" "$want")"; then standin "$name" "$want"; return 0; fi
  if ! read -r pm pv < <(resolve "provider-$name" "$gomod" "$want" "$fallback"); then
    if [[ -d "$STANDINS/$name" ]]; then standin "$name" "$want"; return 0; fi
    warn "provider $name v$want: $gomod is not on the Go module proxy (neither v$want nor a fallback); not installed"
    return 0
  fi
  [[ "$pv" == "v$want" ]] || warn "provider $name: v$want is not on the Go module proxy; building $pm@$pv and registering it as v$want"
  [[ "$name" == kubernetes ]] && K8S_VERSION="$want"
  # Not in $SCI_CACHE/bin: Pulumi prefers a pulumi-resource-* found on PATH over the registered plugin.
  rm -f "$SCI_CACHE/bin/pulumi-resource-$name" "$SCI_CACHE/bin/pulumi-resource-$name.stamp"
  go_program "provider-$name" "$out" "$pm" "$pv" "$pm/cmd/pulumi-resource-$name" "-X $verpkg.Version=$want" "$hook" \
    || { warn "provider $name: not built"; return 0; }
  manifest "pulumi-resource-$name" "$want" "$pm@$pv"
  [[ -x "$SCI_CACHE/bin/pulumi" ]] && install_plugin "$name" "$want" "$out"
}
provider kubernetes pulumi_kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4 \
  github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version \
  "${SCI_KUBERNETES_PROVIDER_SOURCE:-github.com/pulumi/pulumi-kubernetes/provider/v4@v4.0.0-20260115033456-f47bc2d6f199}" \
  k8s_hook_1
provider random pulumi_random github.com/pulumi/pulumi-random/provider/v4 \
  github.com/pulumi/pulumi-random/provider/v4/pkg/version "${SCI_RANDOM_PROVIDER_SOURCE:-}"
provider docker pulumi_docker github.com/pulumi/pulumi-docker/provider/v5 \
  github.com/pulumi/pulumi-docker/provider/v5/pkg/version "${SCI_DOCKER_PROVIDER_SOURCE:-}"
