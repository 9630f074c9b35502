"""Running user code where it cannot reach anything: bubblewrap namespaces, a seccomp filter, resource limits
and a fresh scratch folder per call (see ``sandbox.executor``)."""
