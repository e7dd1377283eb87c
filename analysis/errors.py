"""The one error base of the toolkit (``probes`` re-exports it).

A ``ProbesError`` is bad input or an environment problem the user can fix: its message is one
line that names the problem (the file, line, key or flag) and the fix. The CLI prints it as
``probes COMMAND: error: MESSAGE`` and exits with 2. Any other exception is a bug: the CLI shows
its traceback and asks for a report. It lives here, in the torch-free package, so that
``analysis``'s own errors share it without importing ``probes``.
"""

from __future__ import annotations


class ProbesError(Exception):
    """Bad input or an environment problem, with a one-line message that says how to fix it."""
