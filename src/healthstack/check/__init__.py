"""``healthstack check``: offline verification of Kubernetes manifests for a PHI-safe deployment.

Layers, bottom-up: :mod:`.loader` reads YAML with file/line positions, :mod:`.schema` validates
objects against Kubernetes 1.31 and CRDs, :mod:`.inventory` indexes a set of objects for cross-object
questions, :mod:`.reachability` evaluates NetworkPolicies, :mod:`.policies` holds one check per
module behind an explicit registry, and :mod:`.engine` runs them, applying config and suppressions.
"""
