#!/usr/bin/env bash
# Regenerates the Rust types in src/generated/ from the upstream CRDs in crds/.
# Needs kopium 0.24 (`cargo install kopium --version 0.24.1 --locked`).
# Optional nested structs are boxed (box-optional-structs.pl): the watch caches
# hold thousands of these objects, and inline they cost kilobytes each even empty.
# The CRDs are copies of ../shared/crds (see crds/README.md for their sources).
set -euo pipefail
cd "$(dirname "$0")"
generate() {
  local crd=$1 version=$2 out=$3
  kopium -f "crds/$crd" --api-version "$version" --no-condition \
    --derive Default --derive PartialEq --smart-derive-elision | ./box-optional-structs.pl > "src/generated/$out"
}
generate kubevirt.io_virtualmachines.yaml v1 virtualmachines.rs
generate kubevirt.io_virtualmachineinstances.yaml v1 virtualmachineinstances.rs
generate kubevirt.io_virtualmachineinstancemigrations.yaml v1 virtualmachineinstancemigrations.rs
generate cdi.kubevirt.io_datavolumes.yaml v1beta1 datavolumes.rs
generate k8s.cni.cncf.io_network-attachment-definitions.yaml v1 network_attachment_definitions.rs
