"""GuardedNode: the base of every pipeline node. No message or request can take the process down through it.

An exception that escapes a subscription or service callback reaches the executor, and reconphys-launch runs
every node in one process: one bad gripper command once stopped the whole pipeline. Here every subscription and
service callback is wrapped so that an exception becomes a dropped input (`self.dropped`, rate-limited warning
naming the exception and where it was raised): that message or request is lost, the node goes on.
"""
from __future__ import annotations

import functools
import os
import traceback

from rclpy.node import Node

from reconphys_ros.ros.input_warnings import DroppedInputLog


def describe_exception(exc: BaseException) -> str:
    """'ValueError at control.py:90 in command: <message>': what failed and where, in one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__name__}{where}: {exc}"


def format_traceback(exc: BaseException) -> str:
    """The full traceback of `exc`, as Python prints it: for errors in worker threads, which have no caller to
    raise to and must reach the node's log whole."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


class GuardedNode(Node):
    """A Node whose subscription and service callbacks turn exceptions into dropped inputs with a warning."""

    def __init__(self, node_name: str, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.dropped = DroppedInputLog(self.get_logger())

    def create_subscription(self, msg_type, topic, callback, *args, **kwargs):
        return super().create_subscription(msg_type, topic, self._guarded(callback, f"{topic} message"),
                                           *args, **kwargs)

    def create_service(self, srv_type, srv_name, callback, *args, **kwargs):
        return super().create_service(srv_type, srv_name, self._guarded_service(callback, f"{srv_name} request"),
                                      *args, **kwargs)

    def _drop_failed(self, kind: str, exc: Exception) -> None:
        dropped = getattr(self, "dropped", None)
        if dropped is None:  # a callback ran during Node.__init__ (never seen): nothing to log with yet
            raise exc
        dropped.drop(kind, f"callback failed: {describe_exception(exc)}")

    def _guarded(self, callback, kind: str):
        @functools.wraps(callback)  # keeps the signature: rclpy passes MessageInfo to two-argument callbacks
        def guarded(*args):
            try:
                callback(*args)
            except Exception as exc:
                self._drop_failed(kind, exc)
        return guarded

    def _guarded_service(self, callback, kind: str):
        @functools.wraps(callback)
        def guarded(request, response):
            try:
                return callback(request, response)
            except Exception as exc:
                self._drop_failed(kind, exc)
                if hasattr(response, "success"):  # std_srvs/Trigger and alike: say it failed, and why
                    response.success = False
                if hasattr(response, "message"):
                    response.message = f"failed: {describe_exception(exc)}"
                return response
        return guarded
