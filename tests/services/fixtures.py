"""Pytest plugin: REAL PostgreSQL and HDFS for the tests, no mocks.

Load it from tests/conftest.py with ``pytest_plugins = ["tests.services.fixtures"]``
(or on the command line: ``-p tests.services.fixtures``).

Fixtures
--------
``postgres_server`` (session)
    A throwaway PostgreSQL cluster made with Debian's ``initdb``/``pg_ctl`` on a free port of 127.0.0.1, trust auth,
    fsync off. When the tests run as root, the server runs as the ``postgres`` system user (created if missing).
    Attributes/methods: ``url`` (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``), ``host``, ``port``,
    ``stop()``, ``start()``, ``is_running()``, ``create_database(name) -> url``, ``drop_database(name)``,
    ``log_tail()``.
``postgres_url`` (function)
    A fresh, uniquely named database for one test; returns its SQLAlchemy URL. The database is dropped afterwards,
    and the server is started again if the test left it stopped.
``hdfs_cluster`` (session)
    A real Hadoop MiniDFSCluster (1 NameNode + 1 DataNode, WebHDFS on), built from Maven Central artifacts
    (tests/services/hdfs/, cached under ``~/.cache/airflow-amml/hdfs``) and run with plain ``java``.
    Attributes/methods: ``namenode_url`` (``http://127.0.0.1:PORT``), ``host``, ``port``, ``rpc_port``, ``user``,
    ``client(user=None) -> hdfs.InsecureClient``, ``stop()`` (NameNode down: WebHDFS refuses connections),
    ``start()`` (NameNode back on the same ports, data kept), ``set_safemode(True/False)`` / ``in_safemode()``
    (namespace read-only: writes fail with SafeModeException), ``is_running()``, ``log_tail()``.
    Missing Java or Maven is an error, not a skip.
``hdfs_test_dir`` (function)
    A unique HDFS directory path for one test (not created); removed afterwards, and the cluster is put back up
    and out of safe mode if the test left it otherwise.

Helper: ``airflow_conn_env(hdfs_cluster, login=None) -> str`` gives the value for ``AIRFLOW_CONN_WEBHDFS_DEFAULT``
(JSON form, no ``schema`` so the WebHDFS URL gets no trailing path).

Every process started here is stopped at session end: fixture finalizers first, then an ``atexit`` hook (SIGTERM is
turned into KeyboardInterrupt so finalizers run), and as a last resort the processes notice that the pytest process
is gone (the JVM exits on end of its stdin; a tiny watchdog does ``pg_ctl stop -m immediate`` when its stdin closes).
The long-lived processes (JVM, watchdog, postmaster) are detached from the pytest process (re-parented to init), so
tests that inspect or kill their own child processes (``psutil.Process().children()``) never see them.

Environment knobs: ``AMML_TEST_CACHE`` (default ``~/.cache/airflow-amml``), ``AMML_HDFS_BUILD_TIMEOUT`` (s, default
600: first Maven download), ``AMML_HDFS_START_TIMEOUT`` (s, default 180), ``AMML_HDFS_JAVA`` (java binary; default
``$JAVA_HOME/bin/java`` or ``java`` on PATH), ``AMML_HDFS_XMX`` (default ``512m``), ``AMML_PG_BINDIR``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import pwd
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HDFS_PROJECT = HERE / "hdfs"
CACHE_ROOT = Path(os.environ.get("AMML_TEST_CACHE", "~/.cache/airflow-amml")).expanduser()
LOCALHOST = "127.0.0.1"


# --------------------------------------------------------------------------------------------------------------
# Shared helpers: free ports, log tails, clean-up safety net
# --------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 60) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class _Cleanups:
    """Last-resort clean-up: run registered callables at interpreter exit (and on SIGTERM via KeyboardInterrupt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[int, Callable[[], None]] = {}
        self._next = 0
        self._pid = os.getpid()
        atexit.register(self.run_all)

    def add(self, fn: Callable[[], None]) -> int:
        with self._lock:
            self._next += 1
            self._items[self._next] = fn
            return self._next

    def discard(self, key: int) -> None:
        with self._lock:
            self._items.pop(key, None)

    def run_all(self) -> None:
        if os.getpid() != self._pid:  # a forked child exiting normally must not stop the parent's servers
            return
        with self._lock:
            items = list(self._items.values())[::-1]
            self._items.clear()
        for fn in items:
            with contextlib.suppress(Exception):
                fn()


_CLEANUPS = _Cleanups()


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into KeyboardInterrupt so pytest runs the fixture finalizers (only if nobody handles it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    owner = os.getpid()

    def _on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != owner:  # a forked child (multiprocessing "fork"): die of SIGTERM as it would have
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _on_sigterm)


# Long-lived service processes are started DETACHED: a short-lived spawner starts them in a new session and exits,
# so they are re-parented to init and are not children of the pytest process. Tests that look at their own
# process tree (psutil.Process().children(), "no process is left" assertions, or killing "the second child") must
# not see, or kill, the session's JVM or watchdog. We still own them: we hold their stdin/stdout pipes, know their
# pid + start time (so a recycled pid is never signalled), and kill them by that pid / their own process group.
_SPAWNER = r"""
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["stderr"], "ab") if spec["stderr"] else open(os.devnull, "wb") as err:
    proc = subprocess.Popen(spec["argv"], stdin=spec["stdin"], stdout=spec["stdout"], stderr=err,
                            cwd=spec["cwd"], start_new_session=True)
print(proc.pid, flush=True)
"""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a pid from /proc, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


class _Detached:
    """A process we started through the spawner: not our child, so liveness comes from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        stat = _proc_stat(pid)
        self.start_time = stat[1] if stat else None

    def _same(self) -> tuple[str, int] | None:
        stat = _proc_stat(self.pid)
        if stat is None or self.start_time is None or stat[1] != self.start_time:
            return None
        return stat

    def alive(self) -> bool:
        stat = self._same()
        return stat is not None and stat[0] not in ("Z", "X", "x")

    def wait(self, timeout: float) -> bool:
        """True once it is gone (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def kill(self) -> None:
        """SIGKILL its process group (it leads its own session), only if the pid is still the one we started."""
        if self._same() is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(10)


def _spawn_detached(
    argv: list[str], *, stdin: int, stdout: int | None, stderr: Path | None, cwd: Path | str, env: dict[str, str]
) -> _Detached:
    """Start ``argv`` detached (new session, re-parented to init) with the given stdin/stdout fds."""
    devnull = None
    if stdout is None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        stdout = devnull
    try:
        spec = {"argv": argv, "stdin": stdin, "stdout": stdout, "stderr": str(stderr) if stderr else None}
        spec["cwd"] = str(cwd)
        result = subprocess.run(
            [sys.executable, "-c", _SPAWNER, json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            pass_fds=(stdin, stdout),
            timeout=60,
        )
    finally:
        if devnull is not None:
            os.close(devnull)
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise RuntimeError(f"could not start {argv[0]}: {result.stdout}{result.stderr}")
    return _Detached(int(result.stdout.strip()))


# A watchdog process: waits for EOF on stdin (the pytest process closed it or died), then runs commands and
# removes directories.
_WATCHDOG = r"""
import json, shutil, subprocess, sys
spec = json.loads(sys.argv[1])
try:
    while sys.stdin.buffer.read(65536):
        pass
except BaseException:
    pass
for cmd in spec["commands"]:
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
    except BaseException:
        pass
for path in spec["rmtree"]:
    shutil.rmtree(path, ignore_errors=True)
"""


class _Watchdog:
    """Detached; runs ``commands`` and removes ``rmtree`` when its stdin closes (we finish, or we die)."""

    def __init__(self, commands: list[list[str]], rmtree: list[str]) -> None:
        spec = json.dumps({"commands": commands, "rmtree": rmtree})
        read_end, self._write_end = os.pipe()
        try:
            argv = [sys.executable, "-c", _WATCHDOG, spec]
            self.proc = _spawn_detached(argv, stdin=read_end, stdout=None, stderr=None, cwd="/", env=dict(os.environ))
        except Exception:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def finish(self, timeout: float = 90) -> None:
        """Close its stdin: it runs its commands (harmless if already done) and exits; wait for that."""
        if self._write_end >= 0:
            with contextlib.suppress(OSError):
                os.close(self._write_end)
            self._write_end = -1
        if not self.proc.wait(timeout):
            self.proc.kill()


# --------------------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------------------


def find_pg_bindir() -> Path:
    """Directory with initdb/pg_ctl: $AMML_PG_BINDIR, newest /usr/lib/postgresql/*/bin, else PATH."""
    env = os.environ.get("AMML_PG_BINDIR")
    candidates = [Path(env)] if env else []

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file():
            return cand
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH; "
        "install the Debian package: apt-get install -y postgresql"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir. Not thread-safe; one per session."""

    def __init__(self, bindir: Path | None = None, start_timeout: float = 60) -> None:
        self.bindir = bindir or find_pg_bindir()
        self.host = LOCALHOST
        self.port = free_port()
        self.user = "postgres"  # the database superuser
        self.start_timeout = start_timeout
        self._running = False
        self._as_user: list[str] = []
        self._os_user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._os_user = self._ensure_os_user("postgres")
            self._as_user = self._runas_prefix(self._os_user.pw_name)
        base = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None  # postgres must traverse it
        self.base_dir = Path(tempfile.mkdtemp(prefix="amml-pg-", dir=base))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir
        self.log_path = self.base_dir / "postgres.log"
        if self._os_user is not None:
            os.chown(self.base_dir, self._os_user.pw_uid, self._os_user.pw_gid)
        os.chmod(self.base_dir, 0o700)
        self._cleanup_key = _CLEANUPS.add(self._emergency_stop)
        self._watchdog = _Watchdog(
            commands=[self._pg_ctl_cmd("stop", "-m", "immediate", "-w", "-t", "30")],
            rmtree=[str(self.base_dir)],
        )

    # -- public API ------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        """libpq/psycopg DSN (no SQLAlchemy driver prefix)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def init(self) -> None:
        result = self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.data_dir),
                "-U", self.user,
                "-A", "trust",
                "-E", "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "100",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
        }
        conf = self.data_dir / "postgresql.conf"
        with open(conf, "a", encoding="utf-8") as fh:
            fh.write("\n# airflow-amml test harness\n")
            fh.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Start the server (no-op if it runs) and wait until it accepts TCP connections."""
        if self.is_running():
            self._running = True
            return
        result = self._run(
            self._pg_ctl_cmd("start", "-w", "-t", str(int(self.start_timeout)), "-l", str(self.log_path)),
            timeout=self.start_timeout + 30,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}): {result.stdout}{result.stderr}\n"
                f"--- {self.log_path} ---\n{self.log_tail()}"
            )
        deadline = time.monotonic() + self.start_timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not listen on {self.host}:{self.port}\n{self.log_tail()}")
            time.sleep(0.1)
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart | fast | immediate); connections fail until ``start()``."""
        if not self.data_dir.exists():
            return
        result = self._run(self._pg_ctl_cmd("stop", "-m", mode, "-w", "-t", "60"), timeout=90)
        if result.returncode != 0 and self.is_running():
            raise RuntimeError(f"pg_ctl stop failed ({result.returncode}): {result.stdout}{result.stderr}")
        self._running = False

    def is_running(self) -> bool:
        if not self.data_dir.exists():
            return False
        result = self._run(self._pg_ctl_cmd("status"), timeout=30)
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; returns its SQLAlchemy URL."""
        self._admin(f'CREATE DATABASE "{_ident(name)}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{_ident(name)}" WITH (FORCE)')

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def close(self) -> None:
        """Stop immediately and delete everything (idempotent)."""
        try:
            with contextlib.suppress(Exception):
                self._run(self._pg_ctl_cmd("stop", "-m", "immediate", "-w", "-t", "30"), timeout=60)
            self._running = False
            self._kill_postmaster()
        finally:
            self._watchdog.finish()
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _CLEANUPS.discard(self._cleanup_key)

    # -- internals -------------------------------------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def _pg_ctl_cmd(self, *args: str) -> list[str]:
        """A pg_ctl command line, run as the server's OS user."""
        return [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args]

    def _run(self, cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` as the server's OS user (commands from _pg_ctl_cmd already carry the prefix)."""
        if self._as_user and cmd[: len(self._as_user)] != self._as_user:
            cmd = [*self._as_user, *cmd]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGDATA", None)
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.base_dir,
        )

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first.strip())
        except (OSError, ValueError, IndexError):
            return None

    def _kill_postmaster(self) -> None:
        """If the postmaster we started survived pg_ctl stop, SIGKILL it by its pid."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

    def _emergency_stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self._pg_ctl_cmd("stop", "-m", "immediate", "-w", "-t", "20"), timeout=30)
        self._kill_postmaster()
        self._watchdog.finish(timeout=30)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @staticmethod
    def _ensure_os_user(name: str) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", nologin, name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)

    @staticmethod
    def _runas_prefix(user: str) -> list[str]:
        runuser = shutil.which("runuser") or ("/sbin/runuser" if os.path.exists("/sbin/runuser") else None)
        if runuser:
            return [runuser, "-u", user, "--"]
        setpriv = shutil.which("setpriv")
        if setpriv:
            pw = pwd.getpwnam(user)
            return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        raise RuntimeError("running as root but neither runuser nor setpriv is available to drop to 'postgres'")


def _ident(name: str) -> str:
    if not name or '"' in name or "\x00" in name:
        raise ValueError(f"bad database name {name!r}")
    return name


# --------------------------------------------------------------------------------------------------------------
# HDFS (MiniDFSCluster from Maven Central)
# --------------------------------------------------------------------------------------------------------------

JPMS_OPTS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *(
        f"--add-opens=java.base/{pkg}=ALL-UNNAMED"
        for pkg in (
            "java.io",
            "java.lang",
            "java.lang.reflect",
            "java.math",
            "java.net",
            "java.text",
            "java.util",
            "java.util.concurrent",
            "java.util.zip",
            "sun.security.util",
            "sun.security.x509",
        )
    ),
]
MAIN_CLASS = "amml.minihdfs.MiniHdfs"


def find_java() -> str:
    for cand in (
        os.environ.get("AMML_HDFS_JAVA"),
        os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else None,
        shutil.which("java"),
    ):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError(
        "Java not found (AMML_HDFS_JAVA, $JAVA_HOME/bin/java, PATH): the HDFS test cluster needs a JDK 17+, "
        "e.g. apt-get install -y openjdk-17-jdk-headless maven"
    )


def find_maven() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError(
            "Maven (mvn) not found on PATH: the HDFS test cluster is built with it; apt-get install -y maven"
        )
    return mvn


def _project_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in HDFS_PROJECT.rglob("*") if p.is_file() and "target" not in p.parts):
        h.update(str(path.relative_to(HDFS_PROJECT)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


class MiniHdfsBuild:
    """The compiled launcher + the resolved runtime classpath, cached per source digest."""

    def __init__(self, classes_dir: Path, classpath: list[str], seconds: float, cached: bool) -> None:
        self.classes_dir = classes_dir
        self.classpath = classpath
        self.seconds = seconds
        self.cached = cached

    @property
    def java_classpath(self) -> str:
        return os.pathsep.join([str(self.classes_dir), *self.classpath])


def build_minihdfs(timeout: float | None = None) -> MiniHdfsBuild:
    """Compile tests/services/hdfs and resolve its classpath once (Maven, ~/.m2); later calls reuse the cache."""
    timeout = timeout or float(os.environ.get("AMML_HDFS_BUILD_TIMEOUT", "600"))
    started = time.monotonic()
    cache = CACHE_ROOT / "hdfs" / _project_digest()
    project = cache / "project"
    cp_file = cache / "classpath.txt"
    classes = project / "target" / "classes"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cp_file.is_file() and (classes / "amml" / "minihdfs" / "MiniHdfs.class").is_file():
            entries = [e for e in cp_file.read_text().strip().split(os.pathsep) if e]
            if entries and all(os.path.exists(e) for e in entries):
                return MiniHdfsBuild(classes, entries, time.monotonic() - started, cached=True)
        mvn = find_maven()
        find_java()
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(HDFS_PROJECT, project, ignore=shutil.ignore_patterns("target"))
        tmp_cp = cache / "classpath.txt.tmp"
        log = cache / "maven.log"
        cmd = [
            mvn,
            "-B",
            "-ntp",
            "-f",
            str(project / "pom.xml"),
            "compile",
            "dependency:build-classpath",
            f"-Dmdep.outputFile={tmp_cp}",
        ]
        with open(log, "wb") as out:
            try:
                proc = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=project
                )
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(
                    f"Maven build of the HDFS test cluster timed out after {timeout:.0f} s; log {log}:\n{tail(log)}"
                ) from exc
        if proc.returncode != 0 or not tmp_cp.is_file():
            raise RuntimeError(
                f"Maven build of the HDFS test cluster failed ({proc.returncode}); log {log}:\n{tail(log)}"
            )
        entries = [e for e in tmp_cp.read_text().strip().split(os.pathsep) if e]
        os.replace(tmp_cp, cp_file)
        return MiniHdfsBuild(classes, entries, time.monotonic() - started, cached=False)


class _LineReader:
    """Read protocol lines from a pipe with a timeout (no threads; raw fd + selector)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(fd, selectors.EVENT_READ)

    def readline(self, timeout: float, alive: Callable[[], bool]) -> str | None:
        """Next line, or None on EOF (the process exited); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready = self.sel.select(min(remaining, 1.0))
            if not ready and alive():
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                if alive():
                    continue
                chunk = b""
            if not chunk:
                line, self.buf = self.buf, b""
                return line.decode("utf-8", "replace").strip() or None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sel.close()


class HdfsClusterError(RuntimeError):
    pass


class HdfsCluster:
    """One MiniDFSCluster JVM, driven over stdin/stdout (see MiniHdfs.java for the protocol)."""

    host = LOCALHOST

    def __init__(
        self,
        build: MiniHdfsBuild | None = None,
        user: str = "amml",
        start_timeout: float | None = None,
        xmx: str | None = None,
    ) -> None:
        self.build = build or build_minihdfs()
        self.java = find_java()
        self.user = user
        self.start_timeout = start_timeout or float(os.environ.get("AMML_HDFS_START_TIMEOUT", "180"))
        self.xmx = xmx or os.environ.get("AMML_HDFS_XMX", "512m")
        self.base_dir = Path(tempfile.mkdtemp(prefix="amml-hdfs-"))
        self.log_path = self.base_dir / "minihdfs.log"
        self.port = 0
        self.rpc_port = 0
        self.jvm: _Detached | None = None
        self._stdin_fd = -1
        self._reader: _LineReader | None = None
        self._namenode_up = False
        self.startup_seconds = 0.0
        self._cleanup_key = _CLEANUPS.add(self._emergency_kill)

    # -- public API ------------------------------------------------------------------------------------------

    @property
    def namenode_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def webhdfs_url(self) -> str:
        return f"{self.namenode_url}/webhdfs/v1"

    def client(self, user: str | None = None, **kwargs: object):  # -> hdfs.InsecureClient
        from hdfs import InsecureClient

        return InsecureClient(self.namenode_url, user=user or self.user, **kwargs)

    def launch(self) -> None:
        """Start the JVM and wait until WebHDFS answers (retries once with new ports on a port clash)."""
        started = time.monotonic()
        for attempt in range(3):
            self.port, self.rpc_port = free_port(), free_port()
            while self.rpc_port == self.port:
                self.rpc_port = free_port()
            try:
                self._launch_once()
                break
            except HdfsClusterError as exc:
                clash = "BindException" in str(exc) or "Address already in use" in str(exc)
                self._kill_jvm()
                if not clash or attempt == 2:
                    raise
        self.startup_seconds = time.monotonic() - started

    def stop(self, timeout: float = 60) -> None:
        """Shut the NameNode down: WebHDFS/RPC refuse connections until ``start()``. The DataNode keeps its data."""
        if not self._namenode_up:
            return
        self._command("stop", timeout)
        self._namenode_up = False
        deadline = time.monotonic() + timeout
        while port_open(self.port):
            if time.monotonic() > deadline:
                raise HdfsClusterError(f"NameNode port {self.port} still open after stop\n{self.log_tail()}")
            time.sleep(0.1)

    def start(self, timeout: float = 120) -> None:
        """Restart the NameNode on the same ports and wait until WebHDFS answers and it is out of safe mode."""
        self._require_jvm()
        if self._namenode_up:
            return
        self._command("start", timeout)
        self._namenode_up = True
        self._wait_webhdfs(time.monotonic() + timeout)

    def set_safemode(self, on: bool, timeout: float = 30) -> None:
        """Manual safe mode: reads work, every namespace change (mkdir, create, rename, delete) fails."""
        answer = self._command("safemode enter" if on else "safemode leave", timeout)
        if answer != ("ON" if on else "OFF"):
            raise HdfsClusterError(f"safemode {'enter' if on else 'leave'} answered {answer!r}")

    def in_safemode(self) -> bool:
        return self._command("safemode get", 30) == "ON"

    def is_running(self) -> bool:
        """JVM alive and NameNode up."""
        return self._jvm_alive() and self._namenode_up

    def ping(self) -> bool:
        return self._command("ping", 10) == "pong"

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def close(self, timeout: float = 30) -> None:
        """Shut the cluster down, kill the JVM's process group if needed, delete the temp dir (idempotent)."""
        try:
            if self._jvm_alive():
                with contextlib.suppress(OSError):
                    self._send(b"exit\n")
                self._close_stdin()
                assert self.jvm is not None
                self.jvm.wait(timeout)
            self._kill_jvm()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            _CLEANUPS.discard(self._cleanup_key)

    # -- internals -------------------------------------------------------------------------------------------

    def _java_cmd(self) -> list[str]:
        classes = self.build.classes_dir
        return [
            self.java,
            f"-Xmx{self.xmx}",
            "-Xms64m",
            "-Xss512k",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            *JPMS_OPTS,
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j.configuration=file:{classes / 'log4j.properties'}",
            f"-Dminihdfs.baseDir={self.base_dir / 'dfs'}",
            f"-Dminihdfs.httpPort={self.port}",
            f"-Dminihdfs.rpcPort={self.rpc_port}",
            f"-Dminihdfs.deleteOnExit={self.base_dir}",
            "-cp",
            self.build.java_classpath,
            MAIN_CLASS,
        ]

    def _launch_once(self) -> None:
        shutil.rmtree(self.base_dir / "dfs", ignore_errors=True)
        env = {**os.environ, "MALLOC_ARENA_MAX": "4", "HADOOP_USER_NAME": self.user}
        env.pop("HADOOP_CONF_DIR", None)
        env.pop("JAVA_TOOL_OPTIONS", None)
        deadline = time.monotonic() + self.start_timeout
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(self._java_cmd()[:6])} ...\n".encode())
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        try:
            # Detached (not a child of pytest) and in its own process group; stdin EOF makes it shut down.
            self.jvm = _spawn_detached(
                self._java_cmd(), stdin=stdin_r, stdout=stdout_w, stderr=self.log_path, cwd=self.base_dir, env=env
            )
        except Exception:
            for fd in (stdin_w, stdout_r):
                os.close(fd)
            raise
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        self._stdin_fd = stdin_w
        os.set_blocking(stdout_r, False)
        self._reader = _LineReader(stdout_r)
        try:
            line = self._reader.readline(max(1.0, deadline - time.monotonic()), self._jvm_alive)
        except TimeoutError:
            raise HdfsClusterError(
                f"MiniDFSCluster did not become ready within {self.start_timeout:.0f} s; "
                f"log {self.log_path}:\n{self.log_tail()}"
            ) from None
        if line is None or not line.startswith("READY"):
            raise HdfsClusterError(
                f"MiniDFSCluster failed to start ({line or 'the JVM exited'}); log {self.log_path}:\n{self.log_tail()}"
            )
        self._namenode_up = True
        self._wait_webhdfs(deadline)

    def _wait_webhdfs(self, deadline: float) -> None:
        """Poll GET /webhdfs/v1/?op=LISTSTATUS until it answers 200."""
        url = f"{self.webhdfs_url}/?op=LISTSTATUS&user.name={self.user}"
        last: object = None
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        json.load(resp)
                        return
                    last = resp.status
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = exc
            if not self._jvm_alive():
                raise HdfsClusterError(f"the MiniDFSCluster JVM exited\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise HdfsClusterError(f"WebHDFS at {url} not ready ({last})\n{self.log_tail()}")
            time.sleep(0.2)

    def _command(self, cmd: str, timeout: float) -> str:
        self._require_jvm()
        assert self._reader is not None
        try:
            self._send(cmd.encode() + b"\n")
        except OSError as exc:
            raise HdfsClusterError(f"cannot talk to the MiniDFSCluster JVM: {exc}\n{self.log_tail()}") from exc
        try:
            line = self._reader.readline(timeout, self._jvm_alive)
        except TimeoutError:
            raise HdfsClusterError(
                f"MiniDFSCluster: no answer to {cmd!r} within {timeout:.0f} s\n{self.log_tail()}"
            ) from None
        if line is None:
            raise HdfsClusterError(f"MiniDFSCluster JVM exited during {cmd!r}\n{self.log_tail()}")
        status, _, detail = line.partition(" ")
        if status != "OK":
            raise HdfsClusterError(f"MiniDFSCluster {cmd!r} failed: {line}\n{self.log_tail()}")
        return detail

    def _send(self, data: bytes) -> None:
        if self._stdin_fd < 0:
            raise BrokenPipeError("stdin of the JVM is closed")
        view = memoryview(data)
        while view:
            view = view[os.write(self._stdin_fd, view) :]

    def _close_stdin(self) -> None:
        if self._stdin_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._stdin_fd)
            self._stdin_fd = -1

    def _jvm_alive(self) -> bool:
        return self.jvm is not None and self.jvm.alive()

    def _require_jvm(self) -> None:
        if not self._jvm_alive():
            raise HdfsClusterError(f"the MiniDFSCluster JVM is not running\n{self.log_tail()}")

    def _kill_jvm(self) -> None:
        if self.jvm is not None:
            self.jvm.kill()  # SIGKILL to the JVM's own process group, only if the pid is still ours
        self._close_stdin()
        if self._reader is not None:
            with contextlib.suppress(OSError):
                os.close(self._reader.fd)
            self._reader.close()
            self._reader = None
        self._namenode_up = False

    def _emergency_kill(self) -> None:
        self._kill_jvm()
        shutil.rmtree(self.base_dir, ignore_errors=True)


def airflow_conn_env(hdfs_cluster: HdfsCluster, login: str | None = None) -> str:
    """Value for ``AIRFLOW_CONN_WEBHDFS_DEFAULT`` (or any ``AIRFLOW_CONN_<ID>``) pointing WebHDFSHook at the cluster.

    JSON form without ``schema``: WebHDFSHook builds ``http://127.0.0.1:PORT`` with no trailing path, and uses
    ``login`` as the HDFS user."""
    return json.dumps(
        {
            "conn_type": "webhdfs",
            "host": hdfs_cluster.host,
            "port": hdfs_cluster.port,
            "login": login or hdfs_cluster.user,
        }
    )


# --------------------------------------------------------------------------------------------------------------
# Pytest hooks and fixtures
# --------------------------------------------------------------------------------------------------------------

_BUILD: dict[str, object] = {}


def _get_build() -> MiniHdfsBuild:
    if "error" in _BUILD:
        raise RuntimeError(f"building the HDFS test cluster failed: {_BUILD['error']}")
    if "build" not in _BUILD:
        _BUILD["build"] = build_minihdfs()
    return _BUILD["build"]  # type: ignore[return-value]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Run the (possibly long, first-time) Maven build before any test, outside pytest-timeout's per-test budget,
    but only if a collected test uses the HDFS cluster."""
    if session.config.option.collectonly:
        return
    if not any("hdfs_cluster" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    try:
        build = _get_build()
    except Exception as exc:  # reported by the fixture, so the tests that need HDFS fail loudly
        _BUILD["error"] = exc
        return
    if not build.cached:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"[services] built the MiniDFSCluster launcher in {build.seconds:.0f} s")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _install_sigterm_handler()
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for this test; returns its SQLAlchemy URL (psycopg 3)."""
    if not postgres_server.is_running():
        postgres_server.start()
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        if not postgres_server.is_running():  # the test stopped it (fault tests): bring it back for the next one
            postgres_server.start()
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def hdfs_cluster() -> Iterator[HdfsCluster]:
    _install_sigterm_handler()
    cluster = HdfsCluster(build=_get_build())
    try:
        cluster.launch()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def hdfs_test_dir(hdfs_cluster: HdfsCluster) -> Iterator[str]:
    """A unique HDFS path for this test (not created). Afterwards: cluster back up, safe mode off, path removed."""
    path = f"/tests/{uuid.uuid4().hex[:16]}"
    try:
        yield path
    finally:
        if not hdfs_cluster.is_running():
            hdfs_cluster.start()
        if hdfs_cluster.in_safemode():
            hdfs_cluster.set_safemode(False)
        hdfs_cluster.client().delete(path, recursive=True)
