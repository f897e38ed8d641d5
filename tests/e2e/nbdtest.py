# SPDX-License-Identifier: MIT
"""Helpers for the Python end-to-end tests (python3-libnbd 1.14).

Run with /usr/bin/python3, which has the nbd module.
"""
import errno
import sys
import time

import nbd


def check(msg):
    print("check:", msg, flush=True)


def ok(msg):
    print("  ok:", msg, flush=True)


def fail(msg):
    print("FAIL:", msg, file=sys.stderr, flush=True)
    sys.exit(1)


def ename(num):
    return errno.errorcode.get(num, str(num))


def connect(uri, strict=True):
    """A handle on uri with base:allocation requested; strict=False lets
    the test send requests libnbd would refuse to send."""
    h = nbd.NBD()
    if not strict:
        h.set_strict_mode(0)
    h.add_meta_context("base:allocation")
    h.set_uri_allow_local_file(True)  # tls-certificates=DIR in test URIs
    h.connect_uri(uri)
    return h


def expect_error(want, what, fn, *args, **kwargs):
    """Call fn(*args) and require it to fail with errno want."""
    try:
        fn(*args, **kwargs)
    except nbd.Error as e:
        if e.errnum != want:
            fail(f"{what}: failed with {ename(e.errnum)} ({e.string}), "
                 f"want {ename(want)}")
        ok(f"{what} -> {ename(want)}")
        return
    fail(f"{what}: succeeded, want {ename(want)}")


class Op:
    """An aio command whose reply (time and errno) is recorded by its
    completion callback."""

    def __init__(self, name):
        self.name = name
        self.done = None  # time.monotonic() of the reply
        self.err = None  # 0 or the errno of the reply
        self.buf = None  # keeps a write buffer alive

    def callback(self, err):
        self.err = err.value
        self.done = time.monotonic()
        return 1  # retire the command


def aio(name, fn, *args, buf=None, **kwargs):
    """Start fn (an h.aio_* method) with a recording completion callback."""
    op = Op(name)
    op.buf = buf
    if buf is not None:
        args = (buf,) + args
    fn(*args, completion=op.callback, **kwargs)
    return op


def aio_write(h, name, data, offset, flags=0):
    buf = nbd.Buffer.from_bytearray(bytearray(data))
    return aio(name, h.aio_pwrite, offset, buf=buf, flags=flags)


def poll_until(handles, cond, timeout, what):
    """Drive every handle until cond() is true; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        for h in handles:
            if h.aio_in_flight() > 0:
                h.poll(5)
