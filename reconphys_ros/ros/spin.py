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
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (call from the main thread)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def init_without_signal_handlers(args=None, context=None) -> None:
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


def spin_nodes(nodes: list, executor, stop: threading.Event | None = None) -> None:
    """Spin until `stop` is set, Ctrl-C or shutdown, then close() (when a node has one) and destroy every node."""
    for node in nodes:
        executor.add_node(node)
    try:
        while executor.context.ok() and not (stop is not None and stop.is_set()):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        shutdown_nodes(nodes, executor)


def shutdown_nodes(nodes: list, executor) -> None:
    """close() every node that has one (workers, bags), stop the executor, then destroy the nodes."""
    for node in nodes:
        close = getattr(node, "close", None)
        if close is not None:
            close()
    executor.shutdown()
    for node in nodes:
        node.destroy_node()


def run_node(factory: Callable[[], object], args=None) -> None:
    """main() of a node: rclpy.init with the command line (--ros-args ...), spin, clean shutdown."""
    init_without_signal_handlers(args)
    stop = stop_on_signals()
    try:
        node = factory()
    except ValueError as exc:  # bad parameters: say why and exit non-zero
        rclpy.try_shutdown()
        raise SystemExit(f"error: {exc}") from None
    spin_nodes([node], MultiThreadedExecutor(), stop)
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
