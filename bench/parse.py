#!/usr/bin/env python3
"""Micro benchmark: the sans-I/O parser and the CGI mapping, per request.

It runs what the channel runs for one request, without Twisted: a fresh
``SCGIParser`` given the whole request, its events taken, then the environ mapped
(``SCGIVariables``, ``is_secure``, ``client_address``, ``server_address``,
``request_headers``, ``request_uri``, ``request_method``, ``request_protocol``,
``path_segments`` and ``mount_depth`` when the frontend sent ``SCRIPT_NAME``).
The header blocks are what nginx (Debian's ``scgi_params``), Apache
(``mod_proxy_scgi``) and lighttpd (``mod_scgi``) send for a plain ``GET`` from a
browser-like client.

With ``--baseline REF`` it also loads ``_sansio``, ``_environ`` and ``_errors`` as
they are at the git revision ``REF`` and measures both, side by side, in one run::

    python bench/parse.py
    python bench/parse.py --baseline main
    python bench/parse.py --baseline main --repeat 7 --number 20000

It prints CPU microseconds per request (``time.process_time``), the best of
``--repeat`` rounds, for the parser alone, the mapping alone and both.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODULES = ("_errors", "_sansio", "_environ")

_BROWSER_HEADERS = [
    (b"HTTP_USER_AGENT", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101"),
    (
        b"HTTP_ACCEPT",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
    (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br"),
    (b"HTTP_CONNECTION", b"close"),
    (b"HTTP_COOKIE", b"session=6f1ed002ab5595859014ebf0951522d9; theme=dark"),
    (b"HTTP_UPGRADE_INSECURE_REQUESTS", b"1"),
]

NGINX = [
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/hello"),
    (b"QUERY_STRING", b""),
    (b"CONTENT_TYPE", b""),
    (b"DOCUMENT_URI", b"/hello"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SCGI", b"1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"51514"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_NAME", b"localhost"),
    (b"HTTP_HOST", b"localhost"),
    *_BROWSER_HEADERS,
]
"""nginx 1.22 with Debian's ``scgi_params`` (no SCRIPT_NAME/PATH_INFO)."""

NGINX_REPEATS = [
    *NGINX[:15],
    (b"HTTP_HOST", b"localhost:8080"),  # scgi_param HTTP_HOST $http_host;
    *_BROWSER_HEADERS[:5],
    (b"HTTP_COOKIE", b"session=6f1ed002ab5595859014ebf0951522d9"),
    (b"HTTP_COOKIE", b"theme=dark"),  # nginx 1.22 does not merge repeated headers
    *_BROWSER_HEADERS[6:],
]
"""nginx 1.22 as above, with ``scgi_param HTTP_HOST $http_host`` after the
``include`` and a client that sent two ``Cookie`` lines: repeated names."""

APACHE = [
    (b"CONTENT_LENGTH", b"0"),
    (b"SCGI", b"1"),
    (b"proxy-scgi-pathinfo", b"1"),
    (b"HTTP_HOST", b"localhost:8080"),
    *_BROWSER_HEADERS,
    (b"PATH", b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    (b"SERVER_SIGNATURE", b"<address>Apache/2.4.71 (Debian) Server at localhost"),
    (b"SERVER_SOFTWARE", b"Apache/2.4.71 (Debian)"),
    (b"SERVER_NAME", b"localhost"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_PORT", b"8080"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"DOCUMENT_ROOT", b"/var/www/html"),
    (b"REQUEST_SCHEME", b"http"),
    (b"CONTEXT_PREFIX", b"/app"),
    (b"CONTEXT_DOCUMENT_ROOT", b"/app"),
    (b"SERVER_ADMIN", b"webmaster@localhost"),
    (b"SCRIPT_FILENAME", b"proxy:scgi://127.0.0.1:4000/hello"),
    (b"REMOTE_PORT", b"51514"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"QUERY_STRING", b""),
    (b"REQUEST_URI", b"/app/hello"),
    (b"SCRIPT_NAME", b"/app"),
    (b"PATH_INFO", b"/hello"),
    (b"PATH_TRANSLATED", b"/var/www/html/hello"),
]
"""Apache 2.4 ``mod_proxy_scgi`` mounted at ``/app`` with ``proxy-scgi-pathinfo``."""

LIGHTTPD = [
    (b"CONTENT_LENGTH", b"0"),
    (b"QUERY_STRING", b""),
    (b"REQUEST_URI", b"/app/hello"),
    (b"REDIRECT_STATUS", b"200"),
    (b"SCRIPT_NAME", b"/app"),
    (b"PATH_INFO", b"/hello"),
    (b"PATH_TRANSLATED", b"/var/www/html/hello"),
    (b"SCRIPT_FILENAME", b"/var/www/html/app"),
    (b"DOCUMENT_ROOT", b"/var/www/html"),
    (b"REQUEST_METHOD", b"GET"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"SERVER_SOFTWARE", b"lighttpd/1.4.69"),
    (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"SERVER_PORT", b"8080"),
    (b"SERVER_ADDR", b"127.0.0.1"),
    (b"SERVER_NAME", b"localhost"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"51514"),
    (b"HTTP_HOST", b"localhost:8080"),
    *_BROWSER_HEADERS,
    (b"SCGI", b"1"),
]
"""lighttpd 1.4 ``mod_scgi`` mounted at ``/app``; ``SCGI`` comes last."""

LOADGEN = [
    (b"CONTENT_LENGTH", b"0"),
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/hello"),
    (b"QUERY_STRING", b""),
    (b"CONTENT_TYPE", b""),
    (b"DOCUMENT_URI", b"/hello"),
    (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SCGI", b"1"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"REMOTE_PORT", b"54321"),
    (b"SERVER_PORT", b"4000"),
    (b"SERVER_NAME", b"127.0.0.1"),
    (b"HTTP_HOST", b"127.0.0.1"),
    (b"HTTP_USER_AGENT", b"loadgen"),
    (b"HTTP_ACCEPT", b"*/*"),
]
"""What ``bench/loadgen.c`` sends for ``GET /hello`` (the end-to-end benchmark)."""

BLOCKS = {
    "nginx": NGINX,
    "nginx-dup": NGINX_REPEATS,
    "apache": APACHE,
    "lighttpd": LIGHTTPD,
    "loadgen": LOADGEN,
}


def encode(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Frame name/value pairs as a whole SCGI request without a body."""
    block = b"".join(name + b"\0" + value + b"\0" for name, value in pairs)
    return b"%d:%s," % (len(block), block)


def load_baseline(ref: str, where: str) -> tuple[ModuleType, ModuleType]:
    """Load ``_sansio`` and ``_environ`` as at git revision ``ref``, as a package."""
    package = os.path.join(where, "scgi_twisted_baseline")
    os.makedirs(package)
    with open(os.path.join(package, "__init__.py"), "w") as init:
        init.write("")
    for name in MODULES:
        source = subprocess.run(
            ["git", "-C", REPO, "show", f"{ref}:scgi_twisted/{name}.py"],
            check=True,
            capture_output=True,
        ).stdout
        with open(os.path.join(package, name + ".py"), "wb") as module:
            module.write(source)
    sys.path.insert(0, where)
    sansio = importlib.import_module("scgi_twisted_baseline._sansio")
    environ = importlib.import_module("scgi_twisted_baseline._environ")
    return sansio, environ


def steps(
    sansio: ModuleType, env: ModuleType, data: bytes
) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """Return the parser step and the mapping step, as the channel runs them."""
    parser_class = sansio.SCGIParser
    variables = env.SCGIVariables
    secure_of = env.is_secure
    client_of = env.client_address
    server_of = env.server_address
    headers_of = env.request_headers
    uri_of = env.request_uri
    method_of = env.request_method
    protocol_of = env.request_protocol
    segments_of = env.path_segments
    depth_of = env.mount_depth

    def parse() -> Any:
        parser = parser_class()
        parser.receive_data(data)
        event = parser.next_event()
        parser.next_event()
        return event

    def mapping(event: Any) -> Any:
        environ = event.environ
        variables(environ, event.raw)
        secure = secure_of(environ)
        client_of(environ)
        server_of(environ, secure)
        headers_of(environ)
        uri = uri_of(environ)
        path = uri.partition(b"?")[0]
        method_of(environ)
        protocol_of(environ)
        segments = segments_of(path)
        if "SCRIPT_NAME" in environ:
            depth_of(segments, environ, None)

    return parse, mapping


def timed(function: Callable[[], Any], number: int) -> float:
    """Return the CPU time per call of one round, in microseconds."""
    start = time.process_time()
    for _ in range(number):
        function()
    return (time.process_time() - start) / number * 1e6


def measure(
    implementations: list[tuple[ModuleType, ModuleType]],
    data: bytes,
    number: int,
    repeat: int,
) -> list[tuple[float, float, float]]:
    """Return (parser, mapping, both) in CPU µs per request, for each implementation.

    The rounds of the implementations alternate, and the best round of each is kept,
    so that a burst of load from other processes weighs on all of them alike.
    """
    runs: list[list[Callable[[], Any]]] = []
    for sansio, env in implementations:
        parse, mapping = steps(sansio, env, data)
        event = parse()
        runs.append(
            [
                parse,
                lambda mapping=mapping, event=event: mapping(event),
                lambda mapping=mapping, parse=parse: mapping(parse()),
            ]
        )
    figures = [[float("inf")] * 3 for _ in runs]
    for _ in range(repeat):
        for figure, functions in zip(figures, runs, strict=True):
            for index, function in enumerate(functions):
                figure[index] = min(figure[index], timed(function, number))
    return [(parse, mapping, both) for parse, mapping, both in figures]


def main() -> int:
    """Run the benchmark and print the table."""
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--baseline", help="a git revision to compare with")
    options.add_argument("--number", type=int, default=10000, help="calls per round")
    options.add_argument("--repeat", type=int, default=5, help="rounds (best kept)")
    options.add_argument(
        "--blocks",
        default=",".join(BLOCKS),
        help="comma-separated: " + ",".join(BLOCKS),
    )
    args = options.parse_args()
    sys.path.insert(0, REPO)
    sansio = importlib.import_module("scgi_twisted._sansio")
    env = importlib.import_module("scgi_twisted._environ")
    with tempfile.TemporaryDirectory() as where:
        base = load_baseline(args.baseline, where) if args.baseline else None
        print(f"CPU µs per request (best of {args.repeat} rounds of {args.number})")
        head = f"{'block':10} {'pairs':>5} {'bytes':>5}  "
        head += f"{'parser':>7} {'mapping':>7} {'both':>7}"
        if base:
            head += f"  | {'parser':>7} {'mapping':>7} {'both':>7} {'gain':>6}"
            print(f"{'':32}this tree{'':16}| {args.baseline}")
        print(head)
        for name in args.blocks.split(","):
            pairs = BLOCKS[name]
            data = encode(pairs)
            implementations = [(sansio, env)] + ([base] if base else [])
            figures = measure(implementations, data, args.number, args.repeat)
            parse_us, map_us, both_us = figures[0]
            line = f"{name:10} {len(pairs):5} {len(data):5}  "
            line += f"{parse_us:7.2f} {map_us:7.2f} {both_us:7.2f}"
            if base:
                base_parse, base_map, base_both = figures[1]
                line += f"  | {base_parse:7.2f} {base_map:7.2f} {base_both:7.2f}"
                line += f" {base_both / both_us:5.2f}x"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
