"""shoal: run Testkube-compatible TestWorkflows locally, on Kubernetes and across ephemeral clusters."""

__version__ = "0.1.0"
