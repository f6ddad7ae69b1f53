"""The sandbox's child program: runs untrusted skill code (and its unit test) under limits, answers in JSON.

Started as ``python -I harness.py`` by `sandbox`, with one JSON request on stdin; the last line of its
stdout is the JSON answer. Protection is layered, from the operating system up: address-space, CPU-time,
file-size and file-descriptor limits (no new file or socket can be opened); then file, process and socket
functions of ``os``/``socket``/``io`` replaced by ones that refuse; then the untrusted code runs with its own
builtins (no ``open``/``exec``/``eval``/``compile``/``input``) and an import allow-list. Anything refused is
recorded, so code that catches the refusal still fails. This guards against a fallible model's code, not a
determined attacker (run the whole tool in a container for that).

Only the standard library is imported before the limits, plus the project's view types (for the test).
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import json
import linecache
import os
import resource
import signal
import sys
import traceback

ALLOWED_IMPORTS = ("math", "re", "collections", "itertools", "functools", "dataclasses", "typing")
VIEW_MODULE = "motif_jax.skills.view"
REMOVED_BUILTINS = ("open", "exec", "eval", "compile", "input", "breakpoint", "help", "exit", "quit")
# Module functions that touch files, processes or the network; replaced in `os`, `posix` and `socket`.
BLOCKED_OS = (
    "system", "popen", "fork", "forkpty", "vfork", "kill", "killpg", "open", "openpty", "pipe", "listdir",
    "scandir", "walk", "remove", "unlink", "rmdir", "removedirs", "rename", "renames", "replace", "mkdir",
    "makedirs", "mkfifo", "mknod", "chmod", "chown", "lchown", "link", "symlink", "truncate", "chdir", "chroot",
    "putenv", "unsetenv", "setuid", "setgid", "execl", "execle", "execlp", "execlpe", "execv", "execve",
    "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
    "spawnvpe", "posix_spawn", "posix_spawnp", "startfile", "utime",
)  # fmt: skip
BLOCKED_SOCKET = ("socket", "socketpair", "create_connection", "create_server", "fromfd")
OUTPUT_CHARS = 4000  # of printed output and tracebacks kept in the answer
CODE_FILE, TEST_FILE = "<skill code>", "<unit test>"
READY = "motif-sandbox-ready\n"  # the line that tells the parent the untrusted part begins


class Refused(PermissionError):
    """Raised (and recorded) when untrusted code asks for something it may not have."""


REFUSALS: list[str] = []


def refuse(what: str) -> Refused:
    if what not in REFUSALS:
        REFUSALS.append(what)
    return Refused(f"{what} is not allowed in skill code")


def _refusing(what: str):
    def refused(*args, **kwargs):
        raise refuse(what)

    return refused


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` for untrusted code: the allow-list, and the view types by ``from ... import``."""
    allowed = name.partition(".")[0] in ALLOWED_IMPORTS or (name == VIEW_MODULE and fromlist)
    if level or not allowed:
        refused = refuse(f"import of {name!r}")
        raise ImportError(f"{refused} (allowed: {', '.join(ALLOWED_IMPORTS)})")
    return builtins.__import__(name, globals, locals, fromlist, level)


def safe_builtins() -> dict:
    table = {key: value for key, value in vars(builtins).items() if key not in REMOVED_BUILTINS}
    table["__import__"] = guarded_import
    for name in ("open", "exec", "eval", "compile", "input"):
        table[name] = _refusing(f"{name}()")
    return table


def set_limits(seconds: float, memory_bytes: int) -> None:
    """Operating-system limits of this process (the parent also kills it at the wall-clock limit)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the size limit fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new process (ignored for root; `os` is guarded too)
    highest = max(_open_fds())
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))  # no new file or socket


def _open_fds() -> list[int]:
    fds = []
    for fd in range(64):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds


def lock_down() -> None:
    """Replace the file, process and socket functions reachable through any loaded module."""
    import posix
    import socket

    for module in (os, posix):
        for name in BLOCKED_OS:
            if hasattr(module, name):
                setattr(module, name, _refusing(f"os.{name}"))
    for name in BLOCKED_SOCKET:
        refused = _refusing(f"socket.{name}")
        setattr(socket, name, refused)
        setattr(sys.modules["_socket"], name, refused)
    io.open = builtins.open = _refusing("open()")


def view_types():
    from motif_jax.skills.view import Started, View

    return View, Started


def build_view(View, fields: dict):
    """A View from a mapping (JSON lists become the frozenset/tuple fields); unknown keys are an error."""
    known = {field.name: field for field in dataclasses.fields(View)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise TypeError(f"View has no field(s) {', '.join(unknown)}; fields: {', '.join(known)}")
    values = {}
    for name, value in fields.items():
        default = known[name].default
        if isinstance(default, frozenset) and not isinstance(value, (str, bytes)):
            value = frozenset(value)
        elif isinstance(default, tuple) and not isinstance(value, (str, bytes)):
            value = tuple(value)
        values[name] = value
    return View(**values)


def code_namespace() -> dict:
    """What untrusted code runs in: the guarded builtins only, as under the trusted loader in training
    (so code that leans on the test helpers fails here rather than later)."""
    return {"__builtins__": safe_builtins(), "__name__": "skill_code"}


def test_namespace(code_ns: dict, View, Started) -> dict:
    """What the test runs in: the code's names, plus the view types and ``make_view``."""

    def make_view(**fields):
        """A View with these fields and defaults for the rest (sets and lists are converted)."""
        return build_view(View, fields)

    return {**code_ns, "__name__": "skill_test", "View": View, "Started": Started, "make_view": make_view}


def execute(source: str, filename: str, ns: dict) -> None:
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show lines
    exec(compile(source, filename, "exec"), ns)


def describe_error(error: BaseException) -> str:
    """The traceback through the untrusted code only (the harness's own frames left out)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in (CODE_FILE, TEST_FILE)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "".join(lines)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    line = next(
        (f"{f.filename} line {f.lineno}" for f in reversed(traceback.extract_tb(error.__traceback__))
         if f.filename in (CODE_FILE, TEST_FILE)),
        None,
    )  # fmt: skip
    return f"{type(error).__name__}{': ' + text if text else ''}{' (' + line + ')' if line else ''}"


class Capture:
    """Route the untrusted code's prints into a buffer (the real stdout carries only the answer)."""

    def __enter__(self):
        self.buffer = io.StringIO()
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.buffer
        return self.buffer

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved
        return False


def run_test(request: dict, ns: dict, View, Started) -> dict:
    """Load the code, check it defines the functions asked for, load the test, call ``test()``."""
    with Capture() as printed:
        answer = _test_steps(request, ns, View, Started)
    answer["output"] = (printed.getvalue() + answer.get("output", ""))[-OUTPUT_CHARS:]
    return answer


def _test_steps(request: dict, ns: dict, View, Started) -> dict:
    try:
        execute(request["code"], CODE_FILE, ns)
    except BaseException as e:  # noqa: BLE001 - anything the code does is its own failure
        return _failed(f"the code did not load: {one_line(e)}", e)
    missing = [name for name in request.get("required", ()) if not callable(ns.get(name))]
    if missing:
        return {"ok": False, "reason": f"the code defines no function {', '.join(missing)}"}
    test_ns = test_namespace(ns, View, Started)
    try:
        execute(request["test"], TEST_FILE, test_ns)
    except BaseException as e:  # noqa: BLE001
        return _failed(f"the test did not load: {one_line(e)}", e)
    if not callable(test_ns.get("test")):
        return {"ok": False, "reason": "the unit test defines no function test()"}
    # A test block that also defines the functions under test (small models send code and test together)
    # would check its own copies: the test always calls the code's functions.
    test_ns.update({name: ns[name] for name in request.get("required", ())})
    try:
        test_ns["test"]()
    except AssertionError as e:
        return _failed(f"the test failed: {one_line(e)}", e)
    except BaseException as e:  # noqa: BLE001
        return _failed(f"the test raised {one_line(e)}", e)
    return {"ok": True, "reason": "the test passed"}


def _failed(reason: str, error: BaseException) -> dict:
    return {"ok": False, "reason": reason, "output": describe_error(error)}


def run_replay(request: dict, ns: dict, View, Started) -> dict:
    """Call the code's functions on recorded inputs; an exception in one call is that call's answer."""
    with Capture():
        try:
            execute(request["code"], CODE_FILE, ns)
        except BaseException as e:  # noqa: BLE001
            return _failed(f"the code did not load: {one_line(e)}", e)
        views = [build_view(View, fields) for fields in request["views"]]
        results, memory = [], {}
        for call in request["calls"]:
            results.append(_replay_call(call, ns, views, Started, memory))
    return {"ok": True, "reason": "replayed", "results": results}


def _replay_call(call: list, ns: dict, views: list, Started, memory: dict):
    """``["initiation", v]``, ``["termination", v, start_v, turns, steps]``, ``["policy", v, new_episode]``."""
    kind = call[0]
    try:
        if kind == "initiation":
            value = ns["initiation"](views[call[1]])
        elif kind == "termination":
            value = ns["termination"](views[call[1]], Started(call[3], call[4], views[call[2]]))
        else:
            if call[2]:
                memory.clear()
            value = ns["policy_over_skills"](views[call[1]], memory)
    except BaseException as e:  # noqa: BLE001
        return {"error": one_line(e)}
    return value if isinstance(value, (bool, str, int, float)) or value is None else repr(value)[:80]


def main() -> None:
    out = sys.stdout
    request = json.loads(sys.stdin.read())
    sys.path.insert(0, request["package_root"])  # -I leaves the project off sys.path
    View, Started = view_types()
    for name in ALLOWED_IMPORTS + ("collections.abc",):
        __import__(name)  # loaded now: once file descriptors are limited, no module file can be opened
    set_limits(request["seconds"], request["memory_bytes"])
    lock_down()
    ns = code_namespace()
    out.write(READY)  # the parent's clock starts now
    out.flush()
    try:
        if request["mode"] == "test":
            answer = run_test(request, ns, View, Started)
        else:
            answer = run_replay(request, ns, View, Started)
    except MemoryError:
        answer = {"ok": False, "reason": "the code ran out of memory"}
    if REFUSALS:
        hint = f" (skill code may import only {', '.join(ALLOWED_IMPORTS)})" if "import" in str(REFUSALS) else ""
        answer.update(ok=False, reason=f"refused: {', '.join(REFUSALS)}{hint}")
    out.write("\n" + json.dumps(answer, default=repr) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
