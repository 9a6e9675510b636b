"""Run one or several nodes until SIGINT / SIGTERM, then shut down cleanly (shared by every node's main()).

rclpy's own signal handler shuts the context down from inside the signal, which can interrupt the executor while
it builds a wait set; here the signals only set an event, the spin loop ends, nodes close (bags get their
metadata, worker threads finish) and only then the context shuts down.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.signals import SignalHandlerOptions

from reconphys_ros.ros.memory import limit_malloc_arenas
from reconphys_ros.ros.guarded_node import describe_exception
from reconphys_ros.ros.input_warnings import DroppedInputLog


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (call from the main thread)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def init_without_signal_handlers(args=None, context=None) -> None:
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


MAX_QUEUED_ERRORS = 100  # callback errors waiting for spin_once; later ones are dropped until it catches up
# On shutdown, how long a callback still running is waited for: a node with close() (bags, workers) must not be
# closed under a running callback; a node without one (segmentation of a 4000x3000 frame at native size takes
# seconds) is left to finish in its daemon thread, so that Ctrl-C ends the process within the promised 0.5 s.
CLOSE_CALLBACK_WAIT_S = 5.0
BUSY_CALLBACK_WAIT_S = 0.2


class IsolatedExecutor:
    """One executor per node, each spinning in its own thread (rclcpp's component_container_isolated, in Python).

    Why: several nodes in ONE rclpy MultiThreadedExecutor starve each other here. Measured with the simulation node
    and a subscriber of its 30 Hz point clouds sharing one: 2-5 physics frames/s at 100% CPU, against 30 frames/s
    at 23% CPU with an executor each (the shared executor keeps re-waiting on entities whose mutually exclusive
    group is busy, and every wake costs the GIL). A node whose class sets `executor_threads` > 1 (callbacks in
    several callback groups) gets a MultiThreadedExecutor of that size, the others a SingleThreadedExecutor.

    Drop-in for the calls our code makes on an executor: add_node, spin_once (waits: the nodes spin in their
    threads), shutdown and context."""

    def __init__(self, context=None):
        self.context = context if context is not None else rclpy.utilities.get_default_context()
        self._stop = threading.Event()
        self._executors: list = []
        self._errors: list[Exception] = []
        self._seen_errors: list[Exception] = []
        self._errors_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._nodes: list = []

    def add_node(self, node) -> None:
        threads = int(getattr(node, "executor_threads", 1))
        executor = (MultiThreadedExecutor(num_threads=threads, context=self.context) if threads > 1
                    else SingleThreadedExecutor(context=self.context))
        executor.add_node(node)
        thread = threading.Thread(target=self._spin, args=(executor,), name=f"spin-{node.get_name()}", daemon=True)
        self._executors.append(executor)
        self._threads.append(thread)
        self._nodes.append(node)
        thread.start()

    def _spin(self, executor) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except ExternalShutdownException:
                return
            except Exception as exc:  # a callback raised: hand it to the thread calling spin_once, as rclpy would
                if self._stop.is_set() or not self.context.ok():
                    return  # the context went down under us during teardown
                with self._errors_lock:
                    # rclpy may raise one error twice; a timer failing at its full rate must not grow the queue
                    if all(exc is not seen for seen in self._seen_errors) and len(self._errors) < MAX_QUEUED_ERRORS:
                        self._errors.append(exc)
                        self._seen_errors = (self._seen_errors + [exc])[-16:]

    def spin_once(self, timeout_sec: float | None = None) -> None:
        """Wait timeout_sec (the nodes spin in their own threads); raises the first exception a callback raised
        since the last call, like an executor's spin_once."""
        self._raise_callback_error()
        time.sleep(0.05 if timeout_sec is None else max(0.0, timeout_sec))
        self._raise_callback_error()

    def _raise_callback_error(self) -> None:
        with self._errors_lock:
            error = self._errors.pop(0) if self._errors else None
        if error is not None:
            raise error

    def stop_spinning(self, timeout_sec: float = 5.0, node_timeout: Callable[[object], float] | None = None) -> list:
        """Stop the spin threads and keep the executors: no callback starts after this returns. A callback still
        running is waited for up to timeout_sec, or node_timeout(node) for its node, all threads at once (the
        longest wait, not their sum). Returns the nodes whose callback is still running then; their daemon
        threads end after it, or with the process."""
        self._stop.set()
        start = time.monotonic()
        busy = []
        for node, thread in zip(self._nodes, self._threads):
            limit = timeout_sec if node_timeout is None else node_timeout(node)
            thread.join(timeout=max(0.0, start + limit - time.monotonic()))
            if thread.is_alive():
                busy.append(node)
        return busy

    def shutdown(self, timeout_sec: float = 5.0) -> None:
        if not self._stop.is_set():  # after stop_spinning, its waits (and what it gave up on) stand
            self.stop_spinning(timeout_sec)
        for executor in self._executors:
            executor.shutdown()
        self._threads.clear()
        self._executors.clear()
        self._nodes.clear()


class CallbackErrorLog(DroppedInputLog):
    """Callback errors that reached the spin loop (timers; subscriptions and services are guarded in
    GuardedNode): each distinct error logged once, repeats summarised."""

    message_format = "uncaught exception in a {kind}, the node goes on: {reason}"


def spin_nodes(nodes: list, executor, stop: threading.Event | None = None) -> None:
    """Spin until `stop` is set, Ctrl-C or shutdown, then close() (when a node has one) and destroy every node.

    A callback that raises is logged and spinning goes on: an error in one node must not stop the others that
    share the process (reconphys-launch runs them all in one)."""
    errors = CallbackErrorLog(get_logger("reconphys_ros.spin"))
    for node in nodes:
        executor.add_node(node)
    try:
        while executor.context.ok() and not (stop is not None and stop.is_set()):
            try:
                executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                raise
            except Exception as exc:
                errors.drop("callback", describe_exception(exc))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown_nodes(nodes, executor)


def shutdown_nodes(nodes: list, executor) -> None:
    """close() every node that has one (workers, bags), stop the executor, then destroy the nodes.

    Best effort: a node whose close() raises (a full disk under the bag recorder) is logged and the others are
    still closed and destroyed."""
    stop_spinning = getattr(executor, "stop_spinning", None)
    if stop_spinning is not None:  # IsolatedExecutor: no callback may run while the nodes close
        busy = stop_spinning(node_timeout=_callback_wait)
        for node in busy or ():
            get_logger("reconphys_ros.spin").info(
                f"{node.get_name()} is still in a callback after {_callback_wait(node):g} s: not waiting for it")
    for node in nodes:
        close = getattr(node, "close", None)
        if close is not None:
            _best_effort(node, "close", close)
    executor.shutdown()
    for node in nodes:
        _best_effort(node, "destroy", node.destroy_node)


def _callback_wait(node) -> float:
    """How long shutdown waits for a running callback of `node` (see CLOSE_CALLBACK_WAIT_S)."""
    return CLOSE_CALLBACK_WAIT_S if callable(getattr(node, "close", None)) else BUSY_CALLBACK_WAIT_S


def _best_effort(node, action: str, call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:
        get_logger("reconphys_ros.spin").error(
            f"{action} of node {node.get_name()} failed, going on with the others: {describe_exception(exc)}")


def run_node(factory: Callable[[], object], args=None) -> None:
    """main() of a node: rclpy.init with the command line (--ros-args ...), spin, clean shutdown."""
    limit_malloc_arenas()
    init_without_signal_handlers(args)
    stop = stop_on_signals()
    try:
        node = factory()
    except ValueError as exc:  # bad parameters: say why and exit non-zero
        rclpy.try_shutdown()
        raise SystemExit(f"error: {exc}") from None
    spin_nodes([node], IsolatedExecutor(), stop)
    rclpy.try_shutdown()
    if stop.is_set():
        exit_after_signal()


def exit_after_signal(code: int = 0) -> None:
    """End a process that a signal asked to stop, once everything that matters is closed (bags, workers, the ROS
    context): run the atexit handlers, flush, and skip the interpreter's module teardown, which takes ~1 s for
    torch alone here (several under load) and would break the < 2 s SIGINT shutdown promise."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
