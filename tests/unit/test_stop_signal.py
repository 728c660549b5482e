"""A stop signal is handled whichever thread the kernel hands it to.

CPython runs a Python signal handler on the main thread at its next bytecode; a signal
delivered to another thread (gRPC's threads do not block SIGTERM) only sets a flag. A main
thread in an untimed `Event.wait()` then never runs the handler: the server ignored that
SIGTERM for good (stop 33's flaky e2e test). `signal.pthread_kill` aims the signal at a
chosen thread, so this reproduces the delivery the kernel chose only sometimes."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import signal, threading, time
    from services.common import server

    stop = server.catch_stop_signals()

    def aim_at_this_thread():
        time.sleep(1.0)  # the main thread is in its wait by then
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=aim_at_this_thread).start()
    server.wait_for_stop(stop)
    print("stopped")
    """
)


def test_a_sigterm_delivered_to_another_thread_stops_the_wait():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "stopped"


def test_a_sigterm_sent_while_starting_is_kept_for_the_wait():
    """Installed before the server starts: a signal that arrives during start-up is not
    the default action (death mid-start) but a stop the wait sees at once."""
    early = SCRIPT.replace(
        "threading.Thread(target=aim_at_this_thread).start()",
        "signal.raise_signal(signal.SIGTERM)",
    )
    done = subprocess.run([sys.executable, "-c", early], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "stopped"
