"""Every documented way of starting Cortex Core, each driven end to end with scripts/chat.py."""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.system.support.harness import REPO, Process, ServiceProcess, free_port, popen, run
from tests.system.support.polling import wait_until
from tests.system.support.sse_reader import StreamReader


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=1).json().get("status") == "healthy"
    except (requests.RequestException, ValueError):
        return False


def chat_argv(url: str) -> list[str]:
    return [sys.executable, "scripts/chat.py", "--url", url, "--email", f"chat-{uuid.uuid4().hex[:8]}@example.com",
            "--password", "password-123", "--register", "--timeout", "20"]


def chat(url: str, *messages: str) -> subprocess.CompletedProcess:
    argv = chat_argv(url)
    for message in messages:
        argv += ["-m", message]
    return run(argv)


def assert_conversation_works(url: str) -> None:
    done = chat(url, "I keep bees in Ghent", "Where do I keep bees?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "you: I keep bees in Ghent" and lines[1].startswith("assistant: ")
    assert lines[3].startswith("assistant: ") and "I keep bees in Ghent" in lines[3]


def distributed_env(tmp_path) -> dict[str, str]:
    memory, cognition = free_port(), free_port()
    return {"MEMORY_SERVICE_PORT": str(memory), "COGNITION_SERVICE_PORT": str(cognition),
            "MEMORY_SERVICE_URL": f"http://127.0.0.1:{memory}", "COGNITION_SERVICE_URL": f"http://127.0.0.1:{cognition}",
            "DATABASE_URL": f"sqlite:///{tmp_path}/memory.db", "JWT_SECRET": "run-modes-secret-0123456789abcdefgh",
            "SSE_HEARTBEAT_SECONDS": "15", "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}


def test_honcho_start_runs_the_stack_and_stops_within_five_seconds(tmp_path):
    env = distributed_env(tmp_path)
    web = free_port()
    # honcho lets a .env file's PORT beat `-p`, so the base port goes in an env file of the test's own.
    (tmp_path / "test.env").write_text(f"PORT={web}\n")
    honcho = Process([sys.executable, "-m", "honcho", "-e", str(tmp_path / "test.env"), "start"], env,
                     tmp_path / "honcho.log").start()
    url = f"http://127.0.0.1:{web}"
    try:
        wait_until(lambda: healthy(url), 30, interval=0.2, message="honcho's stack to be healthy")
        assert_conversation_works(url)
        # An open stream must end cleanly on shutdown rather than hold it up for the graceful timeout.
        token = requests.post(f"{url}/v1/auth/register", json={"email": "s@example.com", "name": "S",
                                                              "password": "password-123"}, timeout=5)
        assert token.status_code == 201
        login = requests.post(f"{url}/v1/auth/login", json={"email": "s@example.com", "password": "password-123"},
                              timeout=5).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        ws = requests.post(f"{url}/v1/workspace", json={"name": "W"}, headers=headers, timeout=5).json()["workspace"]
        conv = requests.post(f"{url}/v1/conversation", json={"workspace_id": ws["id"], "topic": "T"},
                             headers=headers, timeout=5).json()["conversation"]
        reader = StreamReader(f"{url}/v1/conversation/{conv['id']}/messages/stream", token=login["access_token"])
        reader.wait_for("connected")
    finally:
        elapsed = honcho.shut_down(signal.SIGINT)
    assert elapsed < 5.0, elapsed
    # A clean end of stream (the chunked terminator), not a cut connection.
    assert reader.ended.wait(5) and reader.error is None, reader.error


def test_run_distributed_starts_waits_and_stops(tmp_path):
    env = {**distributed_env(tmp_path), "PORT": str(free_port())}
    runner = Process([sys.executable, "scripts/run_distributed.py"], env, tmp_path / "run.log").start()
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until(lambda: "Cortex Core is up" in (tmp_path / "run.log").read_text(), 45, interval=0.2,
                   message="run_distributed to report the stack up")
        log = (tmp_path / "run.log").read_text()
        assert url in log and env["MEMORY_SERVICE_URL"] in log
        assert_conversation_works(url)
        assert "memory    | " in (tmp_path / "run.log").read_text()
    finally:
        runner.shut_down(signal.SIGINT)
    assert runner.returncode == 0


def test_run_distributed_names_the_process_that_fails(tmp_path):
    env = {**distributed_env(tmp_path), "PORT": str(free_port()), "DATABASE_URL": "postgres://nowhere/db"}
    runner = Process([sys.executable, "scripts/run_distributed.py"], env, tmp_path / "run.log").start()
    assert runner.wait(30) == 1
    log = (tmp_path / "run.log").read_text()
    assert "memory failed to start" in log and "DATABASE_URL" in log
    wait_until(lambda: not runner.session_alive(), 5, message="nothing left behind")


@contextmanager
def impostor(body: dict) -> Iterator[int]:
    """Another program's HTTP server on a free port, answering every GET with `body` and 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_run_distributed_refuses_a_port_another_program_holds(tmp_path):
    """It used to wait for /health, get this other program's 200, say "Cortex Core is up" and die 5 s later."""
    with impostor({"status": "healthy", "service": "core"}) as port:
        env = {**distributed_env(tmp_path), "PORT": str(port)}
        runner = Process([sys.executable, "scripts/run_distributed.py"], env, tmp_path / "run.log").start()
        try:
            assert runner.wait(30) == 1
        finally:
            if runner.running():
                runner.shut_down()
    log = (tmp_path / "run.log").read_text()
    assert "Cortex Core is up" not in log
    problems = [line for line in log.splitlines() if line.startswith("run_distributed:")]
    assert len(problems) == 1 and f"PORT {port} is already in use" in problems[0], log
    wait_until(lambda: not runner.session_alive(), 5, message="nothing left behind")


def load_run_distributed():
    spec = importlib.util.spec_from_file_location("run_distributed", REPO / "scripts" / "run_distributed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("answer,problem", [
    # The port was free when checked, then another program answered on it in the service's place.
    ({"status": "healthy", "service": "cognition"}, "another program answers on {url} (MEMORY_SERVICE_PORT), "
     "not the memory service"),
    ({"status": "ok"}, "another program answers on {url} (MEMORY_SERVICE_PORT)"),
])
def test_run_distributed_trusts_only_its_own_service(answer, problem):
    run_distributed = load_run_distributed()
    with impostor(answer) as port:
        runner = run_distributed.Runner({**os.environ, "MEMORY_SERVICE_PORT": str(port)})
        runner.start("memory", "sleep 30")  # alive, but not what answers
        try:
            found = runner.wait_healthy("memory", timeout=10)
        finally:
            runner.stop_all()
    assert found is not None and found.startswith(problem.format(url=f"http://127.0.0.1:{port}")), found


def test_run_distributed_wants_its_own_child_alive():
    """Even a Cortex Memory answering as "memory" is someone else's once the child it started is gone."""
    run_distributed = load_run_distributed()
    with impostor({"status": "healthy", "service": "memory"}) as port:
        runner = run_distributed.Runner({**os.environ, "MEMORY_SERVICE_PORT": str(port)})
        runner.start("memory", "exit 4")
        runner.procs["memory"].wait(5)
        assert runner.wait_healthy("memory", timeout=10) == "exited with status 4"


def test_single_process_core_runs_everything(tmp_path):
    port = free_port()
    env = {"PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path}/one.db", "CORTEX_DISTRIBUTED_MODE": "",
           "JWT_SECRET": "single-process-secret-0123456789abcd"}
    core = Process([sys.executable, "-m", "core_app"], env, tmp_path / "core.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url), 30, interval=0.2, message="the single process to be healthy")
        # Straight after start, Cognition must already reach Memory in-process (no network, no open circuit).
        email = f"early-{uuid.uuid4().hex[:8]}@example.com"
        requests.post(f"{url}/v1/auth/register", json={"email": email, "name": "E", "password": "password-123"},
                      timeout=10)
        login = requests.post(f"{url}/v1/auth/login", json={"email": email, "password": "password-123"}, timeout=10)
        search = requests.post(f"{url}/v1/search", json={"query": "anything"}, timeout=10,
                               headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert search.status_code == 200, search.text
        assert "Retrying" not in (tmp_path / "core.log").read_text()
        assert_conversation_works(url)
        page = requests.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    finally:
        core.shut_down()


def test_manual_launch_of_each_service(tmp_path):
    env = distributed_env(tmp_path)
    core_port = free_port()
    procs = [Process([sys.executable, "-m", "memory_service"], env, tmp_path / "memory.log").start(),
             Process([sys.executable, "-m", "cognition_service"], env, tmp_path / "cognition.log").start(),
             Process([sys.executable, "-m", "core_app"], {**env, "CORTEX_DISTRIBUTED_MODE": "true",
                                                           "PORT": str(core_port)}, tmp_path / "core.log").start()]
    url = f"http://127.0.0.1:{core_port}"
    try:
        wait_until(lambda: healthy(url), 30, interval=0.2, message="the manually launched stack")
        assert_conversation_works(url)
    finally:
        for proc in procs:
            proc.shut_down()


PORT_VARIABLES = {"core_app": "PORT", "memory_service": "MEMORY_SERVICE_PORT",
                  "cognition_service": "COGNITION_SERVICE_PORT"}


def run_until_exit(module: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """`python -m module` on free ports and a database of the test's own, with `env` on top."""
    base = {variable: str(free_port()) for variable in PORT_VARIABLES.values()}
    base["DATABASE_URL"] = f"sqlite:///{tmp_path}/run.db"
    return run([sys.executable, "-m", module], {**base, **env}, timeout=30)


def assert_one_line_naming(done: subprocess.CompletedProcess, variable: str) -> None:
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("cortex: "), lines


@pytest.mark.parametrize("module,env,variable", [
    ("core_app", {"LLM_PROVIDER": "telepathy"}, "LLM_PROVIDER"),
    ("core_app", {"PORT": "eighty"}, "PORT"),
    ("core_app", {"CORTEX_ENV": "production", "JWT_SECRET": ""}, "JWT_SECRET"),
    ("memory_service", {"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    ("cognition_service", {"MEMORY_SERVICE_URL": "not a url"}, "MEMORY_SERVICE_URL"),
    # gunicorn parses WEB_CONCURRENCY with a bare int() as it is imported: it used to be a traceback.
    ("core_app", {"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
    ("memory_service", {"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ("cognition_service", {"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
    ("cognition_service", {"WORKER_CONNECTIONS": "lots"}, "WORKER_CONNECTIONS"),
    # 0 would lift gunicorn's only bound on how long request headers may take to arrive.
    ("memory_service", {"GUNICORN_KEEPALIVE": "0"}, "GUNICORN_KEEPALIVE"),
    # A database that cannot be opened used to be a worker's 40-57-line traceback; the single process
    # opens Memory's database too.
    ("memory_service", {"DATABASE_URL": "sqlite:///{tmp}/a-file/memory.db"}, "DATABASE_URL"),
    ("memory_service", {"DATABASE_URL": "sqlite:///{tmp}/not-a-database.db"}, "DATABASE_URL"),
    ("core_app", {"DATABASE_URL": "sqlite:///{tmp}"}, "DATABASE_URL"),
    ("core_app", {"DATABASE_URL": "sqlite:///{tmp}/a-file/memory.db"}, "DATABASE_URL"),
])
def test_bad_configuration_stops_with_one_line(module, env, variable, tmp_path):
    (tmp_path / "a-file").write_text("a file, not a directory\n")
    (tmp_path / "not-a-database.db").write_text("plain text, not SQLite\n" * 10)
    done = run_until_exit(module, {name: value.format(tmp=tmp_path) for name, value in env.items()}, tmp_path)
    assert_one_line_naming(done, variable)


@pytest.mark.parametrize("module", sorted(PORT_VARIABLES))
def test_port_in_use_stops_with_one_line_naming_the_variable(module, tmp_path):
    """It used to be gunicorn's eleven lines of retries that never named the variable."""
    variable = PORT_VARIABLES[module]
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        done = run_until_exit(module, {variable: str(port)}, tmp_path)
    assert_one_line_naming(done, variable)
    assert f"{variable} {port} is already in use" in done.stderr


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The whole system in one process, shared by the chat tests below."""
    tmp = tmp_path_factory.mktemp("chat")
    core = ServiceProcess("core_app.app:create_app()", {
        "CORTEX_DISTRIBUTED_MODE": "", "DATABASE_URL": f"sqlite:///{tmp}/chat.db",
        "JWT_SECRET": "chat-tests-secret-0123456789abcdefghij"}, tmp / "core.log")
    core.start()
    yield core.url
    core.stop()


def test_chat_says_in_one_line_that_nothing_answers():
    """It used to print requests' raw HTTPConnectionPool(...) error."""
    url = f"http://127.0.0.1:{free_port()}"
    done = run(chat_argv(url), timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"chat: cannot reach Cortex Core at {url} (Connection refused): is it running? "
                                        "Start it with `python -m core_app`, or pass --url"], done.stderr


def test_chat_sends_piped_lines_and_shows_each_once(one_process):
    done = run(chat_argv(one_process), input="I keep bees in Ghent\n\nWhere do I keep bees?\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.partition(": ")[0] for line in lines] == ["you", "assistant", "you", "assistant"], done.stdout
    assert lines[0] == "you: I keep bees in Ghent" and lines[2] == "you: Where do I keep bees?"
    assert "I keep bees in Ghent" in lines[3]


class Terminal:
    """The other end of a pseudo-terminal: what a person at it would see, with a deadline on every wait."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.screen = ""

    def wait_for(self, predicate, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; the terminal shows {self.screen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the program closed the terminal
                    data = b""
                assert data, f"the program left; the terminal shows {self.screen!r}"
                self.screen += data.decode(errors="replace").replace("\r\n", "\n")
        return self.screen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


def test_chat_prompts_at_a_terminal_and_shows_each_line_once(one_process):
    """It used to wait at a terminal with no prompt, then print each typed line a second time."""
    master, slave = pty.openpty()
    proc = popen(chat_argv(one_process), stdin=slave, stdout=slave, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    terminal = Terminal(master)
    try:
        terminal.wait_for(lambda screen: screen.endswith("you: "))
        terminal.type("I keep bees in Ghent\n")
        screen = terminal.wait_for(lambda screen: screen.count("you: ") == 2 and screen.endswith("you: "))
        terminal.type("\x04")  # Ctrl-D: end of input
        assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    lines = screen.splitlines()
    # The terminal echoes what was typed after the prompt; chat.py must not print it again.
    assert lines[0] == "you: I keep bees in Ghent" and lines[1].startswith("assistant: "), screen
    assert lines[2:] == ["you: "], screen  # the next prompt, and nothing typed shown twice
    assert "Ctrl-D" in (proc.stderr.read() if proc.stderr else "")
