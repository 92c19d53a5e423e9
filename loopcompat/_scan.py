"""`loopcompat scan`: needs inferred from the source with ast, without running it.

What counts as evidence:
- loop methods that are features (loopcompat._vocab.FEATURE_METHODS), called on anything:
  ``loop.subprocess_exec``, ``loop.add_reader``, ``loop.add_signal_handler`` ...;
- asyncio's helpers over them: ``asyncio.create_subprocess_exec/_shell``,
  ``asyncio.open_unix_connection``, ``asyncio.start_unix_server``;
- AF_UNIX given to a call (``socket.socket(socket.AF_UNIX)``, ``family=AF_UNIX``);
- a pipe or reader on a terminal (``sys.stdin``, a ``/dev/tty*`` path, a pty): char_devices;
- a number of sockets past the smallest limit the knowledge base knows (select()'s
  512 on Windows): ``resource.setrlimit(RLIMIT_NOFILE, (N, ...))``, ``backlog=N``,
  a connection-pool limit;
- libraries known to need a feature (loopcompat._libraries).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import tokenize
from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import _knowledge as kb
from ._errors import ConfigError
from ._findings import Declared, Evidence, report
from ._libraries import LIBRARIES, Library
from ._project import shown_path
from ._vocab import FEATURE_METHODS

# Loop methods -> need; remove_* only undo what an add_* (also found) did.
LOOP_METHODS: Dict[str, str] = {
    method: need for need, methods in FEATURE_METHODS.items() for method in methods if not method.startswith("remove_")
}
MODULE_CALLS: Dict[str, str] = {
    "asyncio.create_subprocess_exec": "subprocess",
    "asyncio.create_subprocess_shell": "subprocess",
    "asyncio.open_unix_connection": "unix_sockets",
    "asyncio.start_unix_server": "unix_sockets",
}
_SUBMODULES = ("asyncio.subprocess.", "asyncio.streams.")
_TERMINAL_STREAMS = ("stdin", "stdout", "stderr")
_TERMINAL_PATH = re.compile(r"^/dev/(tty|pts|console|cu\.)")
_TERMINAL_MAKERS = ("pty.openpty", "os.openpty", "pty.fork", "os.forkpty")
_POOL_LIMITS = {"TCPConnector": "limit", "Limits": "max_connections"}
SKIPPED_FOLDERS = {"__pycache__", "node_modules", "build", "dist", "site-packages", "venv", "env"}
TEST_FOLDERS = {"tests", "test", "testing"}


def smallest_socket_limit() -> int:
    """The lowest socket limit in the knowledge base: past it, some platform needs max_sockets planned."""
    return min(rule.limit for rule in kb.RULES if rule.limit)


class FileScan:
    """The evidence in one parsed file."""

    def __init__(self, path: str, tree: ast.AST) -> None:
        self.path, self.tree = path, tree
        self.aliases: Dict[str, str] = {}  # local name -> dotted name it was imported as
        self.imports: List[Tuple[str, int]] = []  # dotted module (or module.name) -> line
        self.star: List[str] = []
        self.names: Dict[str, int] = {}  # every name and attribute used -> first line
        self.strings: List[Tuple[str, int]] = []
        self.terminals: Set[str] = set()  # local names bound to terminals (pty.openpty(), open("/dev/tty"))
        self.found: List[Evidence] = []

    def run(self) -> List[Evidence]:
        self._collect()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._call(node)
        self._libraries()
        return self.found

    def _collect(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:  # import a.b as c: c is a.b
                        self.aliases[alias.asname] = alias.name
                    else:  # import a.b: binds a
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
                    self.imports.append((alias.name, node.lineno))
                    for part in alias.name.split("."):
                        self.names.setdefault(part, node.lineno)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                self.imports.append((node.module, node.lineno))
                for alias in node.names:
                    if alias.name == "*":
                        self.star.append(node.module)
                        continue
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    self.imports.append((f"{node.module}.{alias.name}", node.lineno))
                    self.names.setdefault(alias.name, node.lineno)
            elif isinstance(node, ast.Name):
                self.names.setdefault(node.id, node.lineno)
            elif isinstance(node, ast.Attribute):
                self.names.setdefault(node.attr, node.lineno)
            elif isinstance(node, ast.keyword) and node.arg:  # Channel(sock_state_cb=...)
                self.names.setdefault(node.arg, getattr(node.value, "lineno", 0))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.strings.append((node.value, node.lineno))
        for node in ast.walk(self.tree):
            self._bind_terminals(node)

    def _bind_terminals(self, node: ast.AST) -> None:
        targets: List[ast.AST] = []
        if isinstance(node, ast.Assign) and self._terminal(node.value):
            targets = list(node.targets)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None and self._terminal(node.context_expr):
            targets = [node.optional_vars]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    self.terminals.add(name.id)

    def resolve(self, node: ast.AST) -> Optional[str]:
        """The dotted name an expression refers to, through this file's imports."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if "asyncio" in self.star and f"asyncio.{node.id}" in MODULE_CALLS:  # from asyncio import *
                return f"asyncio.{node.id}"
            return node.id
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _terminal(self, node: ast.AST) -> bool:
        """Whether an expression is (or opens) a terminal: sys.stdin/stdout/stderr, /dev/tty*, a pty."""
        for part in ast.walk(node):
            if isinstance(part, ast.Attribute) and part.attr in _TERMINAL_STREAMS and self.resolve(part.value) == "sys":
                return True
            if isinstance(part, ast.Name) and part.id in self.terminals:
                return True
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and _TERMINAL_PATH.match(part.value):
                return True
            if isinstance(part, ast.Call) and self.resolve(part.func) in _TERMINAL_MAKERS:
                return True
        return False

    def _add(self, need: str, node: ast.AST, what: str, source: str = "", value: Optional[int] = None) -> None:
        self.found.append(Evidence(need, self.path, getattr(node, "lineno", 0), what, source, value))

    def _call(self, node: ast.Call) -> None:
        name = self.resolve(node.func)
        shown = f"{_callee(node.func)}(...)"
        for prefix in _SUBMODULES:
            if name and name.startswith(prefix):
                name = "asyncio." + name[len(prefix):]
        if name in MODULE_CALLS:
            self._add(MODULE_CALLS[name], node, shown)
        elif isinstance(node.func, ast.Attribute) and node.func.attr in LOOP_METHODS:
            need = LOOP_METHODS[node.func.attr]
            self._add(need, node, shown)
            target = node.args[-1 if need == "pipes" else 0] if node.args else None
            if need in ("pipes", "add_reader") and target is not None and self._terminal(target):
                self._add("char_devices", node, f"{shown} on a terminal (a character device)")
        if any(_is_af_unix(self, arg) for arg in [*node.args, *(k.value for k in node.keywords)]):
            self._add("unix_sockets", node, f"{shown} with AF_UNIX")
        self._socket_counts(node, name, shown)

    def _socket_counts(self, node: ast.Call, name: Optional[str], shown: str) -> None:
        limit = smallest_socket_limit()
        values: List[Tuple[int, str]] = []
        if name == "resource.setrlimit" and len(node.args) == 2 and _is_nofile(self, node.args[0]):
            soft = node.args[1].elts[0] if isinstance(node.args[1], (ast.Tuple, ast.List)) else None
            values.append((_int(soft), "file descriptor limit raised to"))
        short = (name or "").rsplit(".", 1)[-1]
        for keyword in node.keywords:
            if keyword.arg == "backlog":
                values.append((_int(keyword.value), "listen backlog"))
            elif _POOL_LIMITS.get(short) == keyword.arg:
                values.append((_int(keyword.value), "connection pool of"))
        for value, what in values:
            if value > limit:
                self._add("max_sockets", node, f"{shown}: {what} {value}", value=value)

    def _libraries(self) -> None:
        for library in LIBRARIES:
            line = self._library_line(library)
            if line:
                for need in library.needs:
                    self.found.append(Evidence(need, self.path, line, f"{library.name}: {library.reason}",
                                               library.source))

    def _library_line(self, library: Library) -> int:
        """The line showing ``library`` in use here (0: it is not)."""
        imported = [line for module, line in self.imports
                    if any(module == m or module.startswith(m + ".") for m in library.modules)]
        if not imported:
            return 0
        line = min(imported)
        if library.uses:
            used = [self.names[name] for name in library.uses if name in self.names]
            if not used:
                return 0
            line = min(used)
        if library.strings:
            matched = [at for text, at in self.strings for pattern in library.strings if re.search(pattern, text)]
            if not matched:
                return 0
            line = min(matched)
        return line


def _callee(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_callee(node.value)}.{node.attr}"
    return "..."


def _is_af_unix(scan: FileScan, node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "AF_UNIX"
    return isinstance(node, ast.Name) and (scan.resolve(node) or "").endswith("AF_UNIX")


def _is_nofile(scan: FileScan, node: ast.AST) -> bool:
    return (scan.resolve(node) or "").endswith("RLIMIT_NOFILE")


def _int(node: Optional[ast.AST]) -> int:
    value = node.value if isinstance(node, ast.Constant) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def python_files(paths: Sequence[str], tests: bool) -> Tuple[List[str], Set[str]]:
    """(the .py files under ``paths``, the test folders skipped).

    :raises ConfigError: for a path that does not exist.
    """
    files: List[str] = []
    skipped: Set[str] = set()
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
            continue
        if not os.path.isdir(path):
            raise ConfigError(f"{path}: no such file or folder")
        for folder, subfolders, names in os.walk(path):
            keep = []
            for sub in sorted(subfolders):
                full = os.path.join(folder, sub)
                if sub.startswith(".") or sub in SKIPPED_FOLDERS or os.path.isfile(os.path.join(full, "pyvenv.cfg")):
                    continue
                if sub in TEST_FOLDERS and not tests:
                    skipped.add(shown_path(full))
                    continue
                keep.append(sub)
            subfolders[:] = keep
            files += [os.path.normpath(os.path.join(folder, name)) for name in sorted(names) if name.endswith(".py")]
    return files, skipped


def scan_file(path: str) -> Tuple[List[Evidence], Optional[str]]:
    """(evidence, or a problem reading the file). Nothing in the file runs."""
    try:
        with tokenize.open(path) as f:  # honours a coding cookie, like the interpreter
            source = f.read()
        tree = ast.parse(source, filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return [], f"{path}{f':{line}' if line else ''}: not scanned ({type(exc).__name__}: {getattr(exc, 'msg', exc)})"
    return FileScan(path, tree).run(), None


def scan_paths(paths: Sequence[str], tests: bool = False) -> Tuple[List[Evidence], List[str], int, Set[str]]:
    """(evidence, files that could not be read, number of files, test folders skipped)."""
    files, skipped = python_files(paths, tests)
    evidence: List[Evidence] = []
    problems: List[str] = []
    for path in files:
        found, problem = scan_file(path)
        evidence += found
        if problem:
            problems.append(problem)
    return evidence, problems, len(files), skipped


def scan_command(paths: Sequence[str], *, write: bool, as_json: bool, tests: bool) -> int:
    """`loopcompat scan`: print the inferred needs with their evidence; write the missing ones when asked."""
    from ._startup import find_pyproject

    evidence, problems, count, skipped = scan_paths(paths, tests)
    first = paths[0] if os.path.isdir(paths[0]) else os.path.dirname(os.path.abspath(paths[0]))
    declared = Declared(find_pyproject(first))
    title = f"loopcompat scan: {count} Python file{'s' if count != 1 else ''} in {', '.join(paths)}"
    if skipped:
        title += f" ({', '.join(sorted(skipped))} skipped: --tests scans them)"
    for problem in problems:
        print(f"loopcompat scan: warning: {problem}", file=sys.stderr)
    hint = "Add it to pyproject.toml, or run `loopcompat scan --write`."
    return report(title, evidence, declared, write=write, as_json=as_json, write_hint=hint, out=sys.stdout)
