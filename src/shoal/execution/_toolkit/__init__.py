"""The toolkit: the non-shell operations of a workflow (git, tarball, artifacts, services, parallel, execute).

Run as ``python -m shoal.execution._toolkit <kind> <ref>`` by the init program; see README.md.
"""

from ._context import PathMap, ToolkitError, ToolkitRun, format_marker, load_run

__all__ = ["PathMap", "ToolkitError", "ToolkitRun", "format_marker", "load_run"]
