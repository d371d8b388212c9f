"""The ``{{ }}`` expression engine of TestWorkflows: compile, partially resolve, render back.

``compile_expression`` parses an expression field (``condition``, ``retry.until``, ...);
``compile_template`` parses a template field (text with ``{{ }}`` islands). Both simplify what is
constant. ``Expression.resolve(*machines)`` substitutes what the machines know and keeps the
rest symbolic; ``source()`` / ``template()`` write the result back as expression / template text.

Names resolved only at run time, by convention: ``env``, ``file``, ``glob``, ``passed``,
``failed``, ``status``, ``self``, ``step``, ``output``, ``services``. Compile-time machines simply
do not know them, so they stay symbolic until the init program (or a runtime machine) resolves
them; with ``final=True`` an unknown name or function is an error (skipped inside ``any()``).

Deliberate differences from Testkube's engine: unary ``-`` binds tighter than every binary
operator (Testkube's applies to the rest of the expression); comparisons cannot be chained;
ternaries nest to the right; whole numbers print as integers (never ``1e+06``); ``len()`` counts
characters; ``relpath``/``abspath`` with a relative path stay symbolic until a machine provides
``workingDir`` (``filesystem_machine`` does); ``date()`` is never folded at compile time;
``tojson`` does not escape ``<``, ``>``, ``&``; ``(a).k`` on a plain name is the dotted name ``a.k``;
``any()`` skips unknown names at the final stage (as documented, unlike Testkube's code).
"""

from shoal.workflow._expressions._ast import (
    NONE,
    Accessor,
    Argument,
    Binary,
    Call,
    Expression,
    Literal,
    Property,
    Template,
    Ternary,
    Unary,
)
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._files import FileSystem, VirtualFileSystem, filesystem_machine
from shoal.workflow._expressions._gotime import format_go_time
from shoal.workflow._expressions._machine import Machine
from shoal.workflow._expressions._parse import compile_expression
from shoal.workflow._expressions._stdlib import STANDARD_FUNCTIONS
from shoal.workflow._expressions._template import (
    compile_template,
    expand_template_list,
    extract_pure_template_expression,
    is_wildcard_accessor_only,
)
from shoal.workflow._expressions._values import is_truthy, to_float, to_int, to_list, to_map, to_string

__all__ = [
    "NONE",
    "STANDARD_FUNCTIONS",
    "Accessor",
    "Argument",
    "Binary",
    "Call",
    "Expression",
    "ExpressionError",
    "FileSystem",
    "Literal",
    "Machine",
    "Property",
    "Template",
    "Ternary",
    "Unary",
    "VirtualFileSystem",
    "compile_expression",
    "compile_template",
    "expand_template_list",
    "extract_pure_template_expression",
    "filesystem_machine",
    "format_go_time",
    "is_truthy",
    "is_wildcard_accessor_only",
    "to_float",
    "to_int",
    "to_list",
    "to_map",
    "to_string",
]
