"""Stop signals: the request to stop is made from a thread, never from the signal handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The main thread holds the stop event's lock when the signal comes, as it does inside the
# event's own clear() or wait(): a handler that set the event itself would wait for that
# lock for ever (the process hangs); done from a thread, the stop waits for the lock.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    from spooler.core.serve import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop.set)
    with stop._cond:
        os.kill(os.getpid(), signal.{name})
        for _ in range(100_000):  # bytecodes: a Python handler runs in here
            pass
        print("handler returned", flush=True)
    print("stopped" if stop.wait(20) else "not stopped", flush=True)
    """
)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_the_main_thread_holds_the_events_lock(name: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["handler returned", "stopped"]


def test_other_signals_do_not_ask_for_a_stop() -> None:
    script = (
        SCRIPT.format(name="SIGUSR1")
        .replace(
            "stop_on_signals(stop.set)",
            "stop_on_signals(stop.set); signal.signal(signal.SIGUSR1, lambda *a: None)",
        )
        .replace("stop.wait(20)", "stop.wait(1)")
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["handler returned", "not stopped"]


def test_a_forked_childs_signals_do_not_stop_its_parent() -> None:
    script = textwrap.dedent(
        """
        import os, signal, threading
        from spooler.core.serve import stop_on_signals

        stop = threading.Event()
        stop_on_signals(stop.set)
        child = os.fork()
        if child == 0:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
            os._exit(0)
        os.waitpid(child, 0)
        print("stopped" if stop.wait(1) else "not stopped", flush=True)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "not stopped"
