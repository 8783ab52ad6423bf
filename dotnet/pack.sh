#!/usr/bin/env bash
# Assembles Kahuna.Client.<version>.nupkg with zip, for machines without a .NET SDK:
#   dotnet/pack.sh OUT_DIR ASSEMBLY_DLL NATIVE_SO [XML_DOC]
# ASSEMBLY_DLL is Kahuna.Client.dll compiled by mcs against the .NET Core 3.1 runtime's own
# assemblies (dotnet/test.sh does this): it loads on .NET Core 3.1 and later (.NET 8
# included). Where a .NET SDK exists, `dotnet pack dotnet/Kahuna.Client.csproj` builds the
# same sources for netstandard2.1 and net8.0 instead.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$1"; dll="$2"; so="$3"; xml="${4:-}"
version=$(sed -nE 's/^version = "([^"]+)".*/\1/p' "$here/../Cargo.toml" | head -1)
[ -n "$version" ] || { echo "pack.sh: no workspace version in Cargo.toml" >&2; exit 1; }
stage="$(mktemp -d /tmp/kahuna-nupkg.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib/netstandard2.1" "$stage/runtimes/linux-x64/native" "$stage/_rels"
cp "$dll" "$stage/lib/netstandard2.1/Kahuna.Client.dll"
[ -z "$xml" ] || cp "$xml" "$stage/lib/netstandard2.1/Kahuna.Client.xml"
cp "$so" "$stage/runtimes/linux-x64/native/libkahuna_ffi.so"
cp "$here/README.md" "$here/LICENSE.txt" "$stage/"
cat >"$stage/Kahuna.Client.nuspec" <<XML
<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata>
    <id>Kahuna.Client</id>
    <version>$version</version>
    <authors>Kahuna</authors>
    <license type="expression">Apache-2.0</license>
    <readme>README.md</readme>
    <description>Kahuna distributed coordination client: locks with fencing tokens, key/value with compare-and-set, transactions and sequences, over Kahuna's Rust core client.</description>
    <tags>kahuna lock distributed-lock raft coordination</tags>
    <dependencies>
      <group targetFramework=".NETStandard2.1" />
    </dependencies>
  </metadata>
</package>
XML
cat >"$stage/[Content_Types].xml" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
  <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml" />
  <Default Extension="nuspec" ContentType="application/octet" />
  <Default Extension="dll" ContentType="application/octet" />
  <Default Extension="xml" ContentType="application/octet" />
  <Default Extension="so" ContentType="application/octet" />
  <Default Extension="md" ContentType="application/octet" />
  <Default Extension="txt" ContentType="application/octet" />
</Types>
XML
cat >"$stage/_rels/.rels" <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
  <Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest" Target="/Kahuna.Client.nuspec" Id="R1" />
</Relationships>
XML
mkdir -p "$out"
pkg="$(cd "$out" && pwd)/Kahuna.Client.$version.nupkg"
rm -f "$pkg"
(cd "$stage" && zip -q -X -r "$pkg" .)
echo "$pkg"
