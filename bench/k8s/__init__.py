"""Spindle's operator beside KubeRay's on the same kind cluster (``python -m bench --k8s``).

Both operators run at once in one kind cluster built on this machine (scripts/kind-up.sh); the Ray image
is built from PyPI wheels on the same Debian base as Spindle's (bench/k8s/build-images.sh), and KubeRay's
operator from its Go module. Each repetition measures both, alternating which goes first.
"""
