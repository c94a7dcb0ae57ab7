#!/usr/bin/env bash
# Builds the tools the real-engine deploy tests need, from the Go module proxy, into a cache
# outside the repo keyed by version (each is skipped when present):
#   - the Pulumi CLI (pulumi)
#   - the Kubernetes provider plugin (pulumi-resource-kubernetes)
#   - kube-apiserver and kube-controller-manager (an API-only cluster; etcd is Debian's)
# Each builds in a throw-away wrapper module in a temp dir, into DIR.partial, renamed to DIR
# when the build succeeded. Versions: scripts/tools/versions.env.
# Usage: scripts/tools/build.sh [all|pulumi|provider|kubernetes]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# shellcheck source=scripts/tools/versions.env
source scripts/tools/versions.env
which_tools="${1:-all}"
case "$which_tools" in all|pulumi|provider|kubernetes) ;; *) echo "usage: $0 [all|pulumi|provider|kubernetes]" >&2; exit 2 ;; esac

tools="${BACKBONE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/backbone/tools}"
pulumi_dir="$tools/pulumi-${PULUMI_VERSION}"
provider_dir="$tools/pulumi-resource-kubernetes-v${PULUMI_KUBERNETES_VERSION}"
kubernetes_dir="$tools/kubernetes-${KUBERNETES_VERSION}"

# the official Go distribution's place, for a PATH that lacks it (CI runners, sudo)
[ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"
# pulumi/pkg v3.276.0 declares go 1.26.6, k8s.io/kubernetes v1.37.2 go 1.26.0
if ! command -v go >/dev/null || ! go version | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])'; then
  echo "error: building the deploy tools needs Go 1.26.6 or newer with access to the Go module proxy" \
       "(found: $(go version 2>/dev/null || echo 'no go on PATH'))" >&2
  exit 2
fi

# build_into DIR WHAT MINUTES FUNCTION: run FUNCTION WORKDIR OUTDIR with progress, then publish
# OUTDIR as DIR. MINUTES: what a cold build took on a loaded 2-core machine (docs/ci.md).
build_into() {
  local dir="$1" what="$2" minutes="$3" fn="$4" work started=$SECONDS
  say "building ${what} into ${dir} (cold: about ${minutes} minutes on 2 cores)"
  work=$(mktemp -d)
  rm -rf "${dir}.partial" && mkdir -p "${dir}.partial/bin"
  logged "$work/build.log" "$fn" "$work" "${dir}.partial" || failed "$work/build.log" "${what} build"
  rm -rf "$dir" && mv "${dir}.partial" "$dir"
  rm -rf "$work"
  say "built ${what} in $((SECONDS - started)) s"
}

# The CLI's main package lives in pkg/v3/cmd/pulumi; the wrapper copies its non-test files in
# and repeats the one replace pkg/v3's go.mod makes that matters outside its repo.
build_pulumi() (
  local work="$1" out="$2" src
  cd "$work" && mkdir cli && cd cli
  go mod init backbone.build/pulumi-cli
  src=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@${PULUMI_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/cmd/pulumi" ] || { echo "pkg/v3@${PULUMI_VERSION} has no cmd/pulumi"; exit 1; }
  for f in "$src"/cmd/pulumi/*.go; do
    case "$f" in *_test.go) ;; *) grep -q '^package main' "$f" && cp "$f" . ;; esac
  done
  chmod u+w ./*.go
  go mod edit -require="github.com/pulumi/pulumi/pkg/v3@${PULUMI_VERSION}" \
              -require="github.com/pulumi/pulumi/sdk/v3@${PULUMI_VERSION}" \
              -replace=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
  go mod tidy
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${PULUMI_VERSION}" \
    -o "$out/bin/pulumi" .
  "$out/bin/pulumi" version
)

# The provider's main package embeds schema-embed.json and terraform-mapping-embed.json, which
# its generate.go writes from the shipped schema.json with the release version set. Its go.mod
# replaces the sdk/v4 module by a sibling directory, which only works inside its repo: the
# wrapper requires that release of sdk/v4 instead.
build_provider() (
  local work="$1" out="$2" src module=github.com/pulumi/pulumi-kubernetes/provider/v4
  cd "$work" && mkdir provider && cd provider
  go mod init backbone.build/pulumi-resource-kubernetes
  src=$(go mod download -json "${module}@${PULUMI_KUBERNETES_MODULE}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  cp "$src"/cmd/pulumi-resource-kubernetes/{main.go,generate.go,schema.json,terraform-mapping.json} .
  chmod u+w ./*
  go mod edit -require="${module}@${PULUMI_KUBERNETES_MODULE}" \
              -require="github.com/pulumi/pulumi-kubernetes/sdk/v4@v${PULUMI_KUBERNETES_VERSION}"
  go mod tidy
  VERSION="v${PULUMI_KUBERNETES_VERSION}" go run generate.go
  go build -v -trimpath \
    -ldflags "-s -w -X ${module}/pkg/version.Version=v${PULUMI_KUBERNETES_VERSION}" \
    -o "$out/bin/pulumi-resource-kubernetes" .
)

# k8s.io/kubernetes replaces each staging module (k8s.io/api, k8s.io/apiserver, ...) by a
# directory of its repo; the wrapper replaces each by its published v0.<minor>.<patch>.
build_kubernetes() (
  local work="$1" out="$2" src staging="v0${KUBERNETES_VERSION#v1}" ldflags="-s -w" key value
  cd "$work" && mkdir kubernetes && cd kubernetes
  go mod init backbone.build/kubernetes
  src=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  go mod edit -require="k8s.io/kubernetes@${KUBERNETES_VERSION}"
  for module in $(sed -n 's:^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*:\1:p' "$src/go.mod"); do
    go mod edit -replace="${module}=${module}@${staging}"
  done
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  go mod tidy
  # What hack/lib/version.sh sets: the API server reports it, and derives its emulated
  # version from it (without it the binary claims v0.0.0-master).
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  for pair in "gitVersion=${KUBERNETES_VERSION}" gitMajor=1 "gitMinor=${minor}" gitTreeState=clean \
              "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    key="${pair%%=*}" value="${pair#*=}"
    ldflags+=" -X k8s.io/component-base/version.${key}=${value} -X k8s.io/client-go/pkg/version.${key}=${value}"
  done
  go build -v -trimpath -ldflags "$ldflags" -o "$out/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  "$out/bin/kube-apiserver" --version
)

# All in one function: bash has read it whole before it runs, so editing this file meanwhile
# cannot derail a build that is under way.
main() {
  if [ "$which_tools" = all ] || [ "$which_tools" = pulumi ]; then
    if [ ! -x "$pulumi_dir/bin/pulumi" ]; then
      build_into "$pulumi_dir" "the Pulumi CLI ${PULUMI_VERSION}" 6 build_pulumi
    fi
  fi
  if [ "$which_tools" = all ] || [ "$which_tools" = provider ]; then
    if [ ! -x "$provider_dir/bin/pulumi-resource-kubernetes" ]; then
      build_into "$provider_dir" "the Kubernetes provider v${PULUMI_KUBERNETES_VERSION}" 25 build_provider
    fi
  fi
  if [ "$which_tools" = all ] || [ "$which_tools" = kubernetes ]; then
    if [ ! -x "$kubernetes_dir/bin/kube-apiserver" ] || [ ! -x "$kubernetes_dir/bin/kube-controller-manager" ]; then
      build_into "$kubernetes_dir" "kube-apiserver and kube-controller-manager ${KUBERNETES_VERSION}" 15 build_kubernetes
    fi
  fi
}
main
