#!/usr/bin/env bash
# Builds Kahuna.Client (C#) with Mono's mcs and tests it against a real 3-node cluster:
# NUnit 2.6 on Mono, then a smoke program on the .NET Core 3.1 runtime (pip wheel
# dotnetcore2), the samples, and the NuGet package layout. Needs the cargo workspace
# built first (scripts/test.sh does it). Exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/env.sh
export DEBIAN_FRONTEND=noninteractive
CACHE="${KAHUNA_CACHE_DIR:-$HOME/.cache/kahuna}"
NUNIT_FW=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll
CSC=(mcs -langversion:experimental -debug -nowarn:1691)
# The package's sources (subfolders such as RateLimiting/ included) and the NUnit tests.
mapfile -t SRC < <(find dotnet/src -name '*.cs' | sort)
mapfile -t TESTS < <(find dotnet/tests -name '*.cs' ! -name Smoke.cs ! -name SeedTls.cs | sort)
step() { printf '\n=== dotnet: %s\n' "$*"; }

# --- tools (apt, and a venv with the .NET Core runtime outside the clone) ----------
pkgs=()
command -v mcs >/dev/null 2>&1 || pkgs+=(mono-mcs mono-devel)
[ -f /usr/lib/mono/4.5/System.Web.Extensions.dll ] || pkgs+=(mono-devel)
command -v nunit-console >/dev/null 2>&1 || pkgs+=(nunit-console)
[ -f "$NUNIT_FW" ] || pkgs+=(libnunit-cil-dev)
command -v zip >/dev/null 2>&1 || pkgs+=(zip)
command -v unzip >/dev/null 2>&1 || pkgs+=(unzip)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || pkgs+=(python3-venv)
if [ ${#pkgs[@]} -gt 0 ]; then
  step "apt-get install ${pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
VENV="$CACHE/dotnet-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import dotnetcore2' >/dev/null 2>&1; then
  step "pip install dotnetcore2==3.1.23 into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q dotnetcore2==3.1.23
fi
DN="$("$VENV/bin/python" -c 'import os, dotnetcore2; print(os.path.join(os.path.dirname(dotnetcore2.__file__), "bin"))')"
R="$(ls -d "$DN"/shared/Microsoft.NETCore.App/3.1.* | head -1)"

SO="$KAHUNA_BIN/libkahuna_ffi.so"
if [ ! -f "$SO" ] || [ ! -x "$KAHUNA_BIN/kahuna-server" ] || [ ! -x "$KAHUNA_BIN/examples/bench_get" ] ||
  [ ! -x "$KAHUNA_BIN/kahuna-dev-certs" ]; then
  step "cargo build"
  build_workspace
fi
export KAHUNA_BIN

B="$(mktemp -d /tmp/kahuna-dotnet.XXXXXX)"
M="$B/mono"; C="$B/coreclr"; mkdir -p "$M" "$C"
cluster_dir="$B/cluster"
tls_dir="$B/tls-cluster"
cleanup() {
  bash "$root/dotnet/tests/cluster.sh" "$cluster_dir" down >/dev/null 2>&1 || true
  bash "$root/dotnet/tests/cluster.sh" "$tls_dir-seed" down >/dev/null 2>&1 || true
  bash "$root/dotnet/tests/cluster.sh" "$tls_dir-auth" down >/dev/null 2>&1 || true
  [ -n "${KAHUNA_KEEP_BUILD:-}" ] || rm -rf "$B"
}
trap cleanup EXIT

step "porting guide: the counts match its tables"
python3 dotnet/tests/porting_counts.py dotnet/PORTING.md

# --- Mono build -----------------------------------------------------------------------
step "mcs (Mono) into $M"
cp "$SO" "$M/"
"${CSC[@]}" -unsafe -target:library -doc:"$M/Kahuna.Client.xml" -out:"$M/Kahuna.Client.dll" "${SRC[@]}"
# System.Web.Extensions (mono-devel): the JSON reader of the conformance runner (ConformanceTests.cs).
"${CSC[@]}" -target:library -r:"$M/Kahuna.Client.dll" -r:"$NUNIT_FW" -r:System.Web.Extensions \
  -out:"$M/Kahuna.Client.Tests.dll" "${TESTS[@]}"
"${CSC[@]}" -r:"$M/Kahuna.Client.dll" -out:"$M/Smoke.exe" dotnet/tests/Smoke.cs

# --- cluster ----------------------------------------------------------------------------
step "3-node cluster"
endpoints=$(bash dotnet/tests/cluster.sh "$cluster_dir" up)
echo "endpoints: $endpoints"
export KAHUNA_TEST_CLUSTER="$cluster_dir" KAHUNA_CLUSTER_SCRIPT="$root/dotnet/tests/cluster.sh"

# --- NUnit on Mono ------------------------------------------------------------------------
step "NUnit (Mono)"
set +e
(cd "$M" && MONO_ENV_OPTIONS=--debug timeout 600 nunit-console Kahuna.Client.Tests.dll -nologo -result="$M/TestResult.xml") \
  | tee "$M/nunit.log"
rc=${PIPESTATUS[0]}
set -e
summary=$(grep -m1 '^Tests run:' "$M/nunit.log" || true)
if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then echo "dotnet: NUnit FAILED (exit $rc)"; exit 1; fi
read -r run err fail <<<"$(sed -E 's/^Tests run: ([0-9]+), Errors: ([0-9]+), Failures: ([0-9]+).*/\1 \2 \3/' <<<"$summary")"
[ "$run" -ge 10 ] || { echo "dotnet: NUnit ran only $run tests"; exit 1; }

step "runner sanity: a failing test gives a non-zero exit"
set +e
(cd "$M" && KAHUNA_FORCE_FAIL=1 timeout 120 nunit-console Kahuna.Client.Tests.dll -nologo -noresult \
  -run=Kahuna.Client.Tests.KahunaClientTests.DeliberateFailureWhenRequested >"$M/nunit-fail.log" 2>&1)
frc=$?
set -e
[ "$frc" -ne 0 ] || { echo "dotnet: expected a non-zero exit from a failing test"; exit 1; }

# --- smoke and per-call cost ---------------------------------------------------------------
step "smoke on Mono"
(cd "$M" && timeout 120 mono --debug Smoke.exe "$endpoints" 2000)

step "CoreCLR 3.1: compile against the runtime's own assemblies"
cp "$SO" "$C/"
CORE_REFS=(-nostdlib -noconfig)
for f in "$R"/*.dll; do
  case "$f" in *WindowsRuntime*) continue ;; esac
  CORE_REFS+=("-r:$f")
done
"${CSC[@]}" "${CORE_REFS[@]}" -unsafe -target:library -out:"$C/Kahuna.Client.dll" "${SRC[@]}"
"${CSC[@]}" "${CORE_REFS[@]}" -r:"$C/Kahuna.Client.dll" -out:"$C/Smoke.exe" dotnet/tests/Smoke.cs
cat >"$C/Smoke.runtimeconfig.json" <<'JSON'
{"runtimeOptions":{"tfm":"netcoreapp3.1",
  "framework":{"name":"Microsoft.NETCore.App","version":"3.1.0"},
  "configProperties":{"System.Globalization.Invariant":true}}}
JSON
step "smoke on CoreCLR 3.1"
(cd "$C" && timeout 120 "$DN/dotnet" Smoke.exe "$endpoints" 2000)

step "samples (Mono)"
"${CSC[@]}" -r:"$M/Kahuna.Client.dll" -out:"$M/Samples.exe" samples/dotnet/*.cs
(cd "$M" && timeout 120 mono --debug Samples.exe "$endpoints")

step "NuGet package: assemble, check the layout, run the smoke program from it on CoreCLR"
"${CSC[@]}" "${CORE_REFS[@]}" -unsafe -target:library -doc:"$C/Kahuna.Client.xml" -out:"$C/Kahuna.Client.dll" "${SRC[@]}"
pkg=$(bash dotnet/pack.sh "$B/pkg" "$C/Kahuna.Client.dll" "$SO" "$C/Kahuna.Client.xml")
listing=$(unzip -Z1 "$pkg")
for entry in Kahuna.Client.nuspec lib/netstandard2.1/Kahuna.Client.dll lib/netstandard2.1/Kahuna.Client.xml \
  runtimes/linux-x64/native/libkahuna_ffi.so README.md LICENSE.txt '[Content_Types].xml' _rels/.rels; do
  grep -qxF "$entry" <<<"$listing" || { echo "dotnet: $pkg lacks $entry"; exit 1; }
done
unzip -p "$pkg" Kahuna.Client.nuspec | grep -q '<id>Kahuna.Client</id>' || { echo "dotnet: bad nuspec"; exit 1; }
case "$pkg" in */Kahuna.Client.[0-9]*.nupkg) ;; *) echo "dotnet: bad package name $pkg"; exit 1 ;; esac
P="$B/from-package"; mkdir -p "$P/x"
(cd "$P/x" && unzip -q "$pkg")
cp "$P/x/lib/netstandard2.1/Kahuna.Client.dll" "$P/x/runtimes/linux-x64/native/libkahuna_ffi.so" "$P/"
"${CSC[@]}" "${CORE_REFS[@]}" -r:"$P/Kahuna.Client.dll" -out:"$P/Smoke.exe" dotnet/tests/Smoke.cs
cp "$C/Smoke.runtimeconfig.json" "$P/"
(cd "$P" && timeout 120 "$DN/dotnet" Smoke.exe "$endpoints" 200)
echo "package ok: $pkg"

step "the same gets from the Rust core client"
timeout 120 "$KAHUNA_BIN/examples/bench_get" "$endpoints" 2000

step "TLS: the seed's snippet over https:// (no tokens), then trust by CA and pin and tokens (Mono, CoreCLR)"
bash dotnet/tests/cluster.sh "$cluster_dir" down
"${CSC[@]}" -r:"$M/Kahuna.Client.dll" -out:"$M/SeedTls.exe" dotnet/tests/SeedTls.cs
"${CSC[@]}" "${CORE_REFS[@]}" -r:"$C/Kahuna.Client.dll" -out:"$C/SeedTls.exe" dotnet/tests/SeedTls.cs
cp "$C/Smoke.runtimeconfig.json" "$C/SeedTls.runtimeconfig.json"
for mode in seed auth; do
  d="$tls_dir-$mode"
  if [ "$mode" = auth ]; then
    tls_endpoints=$(KAHUNA_TLS=1 KAHUNA_AUTH=1 bash dotnet/tests/cluster.sh "$d" up)
  else
    tls_endpoints=$(KAHUNA_TLS=1 bash dotnet/tests/cluster.sh "$d" up)
  fi
  echo "endpoints: $tls_endpoints"
  (cd "$M" && SSL_CERT_FILE="$d/pki/ca.pem" timeout 120 mono --debug SeedTls.exe "$tls_endpoints" "$d" "$mode")
  (cd "$C" && SSL_CERT_FILE="$d/pki/ca.pem" timeout 120 "$DN/dotnet" SeedTls.exe "$tls_endpoints" "$d" "$mode")
  bash dotnet/tests/cluster.sh "$d" down
done

echo
echo "dotnet: $((run - err - fail)) passed, $((err + fail)) failed"
