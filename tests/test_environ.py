"""Unit tests for the pure CGI-environment mappings of ``scgi_twisted._environ``.

Every function is called directly with plain dictionaries of the shape the parser
produces (names as text, values as bytes).  The mount vectors are what nginx, Apache
and lighttpd were measured to send (``docs/deployment.md``, "What each frontend sends",
and ``docs/mounting.md``), so a change of rule shows up here first,
before the channel tests that run the same rows end to end.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scgi_twisted import SCGIVariables, _environ
from scgi_twisted._environ import (
    _joined,
    _mount_segments,
    _port,
    _split_host,
    client_address,
    is_secure,
    mount_depth,
    path_segments,
    request_headers,
    request_method,
    request_protocol,
    request_uri,
    server_address,
)
from scgi_twisted._errors import RemoteProtocolError

Environ = dict[str, bytes]


class SCGIVariablesTests(SynchronousTestCase):
    """The mapping handed to applications by ``getSCGIVariables``."""

    def setUp(self) -> None:
        self.raw = (
            (b"CONTENT_LENGTH", b"0"),
            (b"SCGI", b"1"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"REQUEST_URI", b"/caf\xc3\xa9?x=\xff"),
            (b"HTTP_COOKIE", b"b=2"),
        )
        self.variables = SCGIVariables(
            {
                "CONTENT_LENGTH": b"0",
                "SCGI": b"1",
                "HTTP_COOKIE": b"a=1; b=2",
                "REQUEST_URI": b"/caf\xc3\xa9?x=\xff",
            },
            self.raw,
        )

    def test_mapping(self) -> None:
        """Indexing gives the merged value; iteration keeps first-arrival order."""
        self.assertEqual(self.variables["HTTP_COOKIE"], b"a=1; b=2")
        self.assertEqual(
            list(self.variables),
            ["CONTENT_LENGTH", "SCGI", "HTTP_COOKIE", "REQUEST_URI"],
        )
        self.assertEqual(len(self.variables), 4)
        self.assertIn("SCGI", self.variables)
        self.assertNotIn("PATH_INFO", self.variables)
        self.assertIsNone(self.variables.get("PATH_INFO"))
        with self.assertRaises(KeyError):
            self.variables["PATH_INFO"]

    def test_raw(self) -> None:
        """``raw`` is every pair as received, in order, duplicates kept."""
        self.assertEqual(self.variables.raw, self.raw)

    def test_getAll(self) -> None:
        """``getAll`` gives each value of a name unmerged, or an empty list."""
        self.assertEqual(self.variables.getAll("HTTP_COOKIE"), [b"a=1", b"b=2"])
        self.assertEqual(self.variables.getAll("SCGI"), [b"1"])
        self.assertEqual(self.variables.getAll("PATH_INFO"), [])

    def test_headerBuffer(self) -> None:
        """``header(name)`` and ``header(name, "buffer")`` give the bytes as sent."""
        self.assertEqual(self.variables.header("REQUEST_URI"), b"/caf\xc3\xa9?x=\xff")
        self.assertEqual(
            self.variables.header("REQUEST_URI", "buffer"), b"/caf\xc3\xa9?x=\xff"
        )

    def test_headerDecoded(self) -> None:
        """A codec name decodes the value; undecodable bytes become U+FFFD."""
        self.assertEqual(
            self.variables.header("REQUEST_URI", "utf-8"), "/café?x=\ufffd"
        )
        self.assertEqual(self.variables.header("REQUEST_URI", "latin-1"), "/cafÃ©?x=ÿ")

    def test_headerMissing(self) -> None:
        """A variable that was not sent gives ``None`` whatever the encoding."""
        self.assertIsNone(self.variables.header("PATH_INFO"))
        self.assertIsNone(self.variables.header("PATH_INFO", "utf-8"))

    def test_repr(self) -> None:
        """The repr names the class and shows the merged variables."""
        self.assertEqual(
            repr(SCGIVariables({"SCGI": b"1"}, ((b"SCGI", b"1"),))),
            "SCGIVariables({'SCGI': b'1'})",
        )


class RequestLineTests(SynchronousTestCase):
    """``request_method`` and ``request_protocol``."""

    def test_method(self) -> None:
        """REQUEST_METHOD is used unchanged, case included."""
        self.assertEqual(request_method({"REQUEST_METHOD": b"POST"}), b"POST")
        self.assertEqual(request_method({"REQUEST_METHOD": b"get"}), b"get")

    def test_methodDefault(self) -> None:
        """A missing or empty REQUEST_METHOD is GET."""
        self.assertEqual(request_method({}), b"GET")
        self.assertEqual(request_method({"REQUEST_METHOD": b""}), b"GET")

    def test_protocol(self) -> None:
        """SERVER_PROTOCOL is used unchanged, even an unknown one."""
        self.assertEqual(
            request_protocol({"SERVER_PROTOCOL": b"HTTP/1.1"}), b"HTTP/1.1"
        )
        self.assertEqual(
            request_protocol({"SERVER_PROTOCOL": b"HTTP/2.0"}), b"HTTP/2.0"
        )
        self.assertEqual(request_protocol({"SERVER_PROTOCOL": b"FOO/9"}), b"FOO/9")

    def test_protocolDefault(self) -> None:
        """A missing or empty SERVER_PROTOCOL is HTTP/1.0."""
        self.assertEqual(request_protocol({}), b"HTTP/1.0")
        self.assertEqual(request_protocol({"SERVER_PROTOCOL": b""}), b"HTTP/1.0")


class RequestURITests(SynchronousTestCase):
    """``request_uri``: the raw target, path and query."""

    def test_requestURI(self) -> None:
        """REQUEST_URI is returned as sent: never decoded, query included."""
        uri = b"/app/a%2Fb/%20c/../d//e?q=1&r=%FF"
        self.assertEqual(request_uri({"REQUEST_URI": uri}), uri)

    def test_requestURIWinsOverScriptName(self) -> None:
        """SCRIPT_NAME and PATH_INFO are ignored when REQUEST_URI is present."""
        environ = {
            "REQUEST_URI": b"/x%20y",
            "SCRIPT_NAME": b"/other",
            "PATH_INFO": b"/path",
            "QUERY_STRING": b"q=1",
        }
        self.assertEqual(request_uri(environ), b"/x%20y")

    def test_synthesized(self) -> None:
        """Without REQUEST_URI the target is quote(SCRIPT_NAME + PATH_INFO)?QUERY."""
        environ = {
            "SCRIPT_NAME": b"/app",
            "PATH_INFO": b"/a b/caf\xc3\xa9/~u;p=1",
            "QUERY_STRING": b"q=1&r=2",
        }
        self.assertEqual(request_uri(environ), b"/app/a%20b/caf%C3%A9/~u;p=1?q=1&r=2")

    def test_synthesizedEmptyRequestURI(self) -> None:
        """An empty REQUEST_URI counts as missing."""
        environ = {"REQUEST_URI": b"", "PATH_INFO": b"/p", "QUERY_STRING": b""}
        self.assertEqual(request_uri(environ), b"/p")

    def test_synthesizedNothing(self) -> None:
        """With no path variable at all the target is ``/`` (plus any query)."""
        self.assertEqual(request_uri({}), b"/")
        self.assertEqual(request_uri({"QUERY_STRING": b"a=1"}), b"/?a=1")

    def test_synthesizedRelative(self) -> None:
        """A PATH_INFO without its leading slash still gives a target starting /."""
        self.assertEqual(request_uri({"PATH_INFO": b"x/y"}), b"/x/y")

    def test_absoluteForm(self) -> None:
        """An absolute-form REQUEST_URI is reduced to its path and query."""
        cases = {
            b"http://example.test/x/y?q=1": b"/x/y?q=1",
            b"https://example.test:8443/": b"/",
            b"http://example.test": b"/",
            b"http://example.test?q=1": b"/?q=1",
            b"HTTP://example.test/a?b/c": b"/a?b/c",
        }
        for uri, expected in cases.items():
            self.assertEqual(request_uri({"REQUEST_URI": uri}), expected, uri)

    def test_asterisk(self) -> None:
        """``*`` (OPTIONS *) is kept as it is."""
        self.assertEqual(request_uri({"REQUEST_URI": b"*"}), b"*")

    def test_noLeadingSlash(self) -> None:
        """A target that is neither a path nor absolute gets a leading ``/``."""
        self.assertEqual(request_uri({"REQUEST_URI": b"x/y?z"}), b"/x/y?z")
        self.assertEqual(request_uri({"REQUEST_URI": b"1://x"}), b"/1://x")


class RequestHeadersTests(SynchronousTestCase):
    """``request_headers``: HTTP headers rebuilt from the CGI variables."""

    def test_httpVariables(self) -> None:
        """HTTP_X_FOO_BAR becomes ``x-foo-bar``, in arrival order, value as sent."""
        environ = {
            "CONTENT_LENGTH": b"0",
            "HTTP_X_FOO_BAR": b"one",
            "REQUEST_URI": b"/",
            "HTTP_HOST": b"example.test",
            "HTTP_X_LATIN": b"caf\xe9",
        }
        self.assertEqual(
            request_headers(environ),
            [
                (b"x-foo-bar", b"one"),
                (b"host", b"example.test"),
                (b"x-latin", b"caf\xe9"),
            ],
        )

    def test_rememberedNames(self) -> None:
        """Names and plans are remembered: a second request maps the same.

        The memory is bounded: the caches hold at most their sizes, and a request
        with more or longer names than a plan may hold is planned anew each time.
        """
        environ = {
            "CONTENT_LENGTH": b"0",
            "HTTP_X_ONE": b"1",
            "SCGI": b"1",
            "HTTP_PROXY": b"evil",
            "HTTP_X_TWO": b"2",
        }
        expected = [(b"x-one", b"1"), (b"x-two", b"2")]
        _environ._cached_plan.cache_clear()
        self.assertEqual(request_headers(environ), expected)
        self.assertEqual(request_headers(environ), expected)
        self.assertEqual(_environ._cached_plan.cache_info().hits, 1)
        self.assertEqual(
            _environ._cached_plan.cache_info().maxsize, _environ.PLANS_CACHED
        )
        self.assertEqual(
            _environ._header_name.cache_info().maxsize, _environ.HEADER_NAMES_CACHED
        )
        for number in range(_environ.PLANS_CACHED + 10):
            distinct = {f"HTTP_X_{number}": b"%d" % number, "HTTP_X_ONE": b"1"}
            self.assertEqual(
                request_headers(distinct),
                [(b"x-%d" % number, b"%d" % number), (b"x-one", b"1")],
            )
        info = _environ._cached_plan.cache_info()
        self.assertEqual(info.currsize, _environ.PLANS_CACHED)
        long = {"HTTP_X_" + "A" * _environ.PLAN_CACHED_SIZE: b"v"}
        many = {f"HTTP_X_{n}": b"v" for n in range(_environ.PLAN_CACHED_NAMES + 1)}
        for environ in (long, many, long, many):
            self.assertEqual(len(request_headers(environ)), len(environ))
        self.assertEqual(_environ._cached_plan.cache_info().misses, info.misses)

    def test_errorsInOrder(self) -> None:
        """The first variable at fault, in arrival order, is the one named.

        A bad name after a bad value names the value, a bad value after a bad name
        names the name, whether the plan of the names is remembered or new.
        """
        valueFirst = {"HTTP_A": b"x\ry", "HTTP_B@": b"1"}
        nameFirst = {"HTTP_B@": b"1", "HTTP_A": b"x\ry"}
        for _attempt in range(2):
            with self.assertRaises(RemoteProtocolError) as caught:
                request_headers(valueFirst)
            self.assertEqual(
                str(caught.exception), "the value of HTTP_A holds CR or LF"
            )
            with self.assertRaises(RemoteProtocolError) as caught:
                request_headers(nameFirst)
            self.assertIn("'HTTP_B@' is not a token", str(caught.exception))
            lineBreak = {"HTTP_A": b"1", "CGI_THING": b"\r\n", "HTTP_C": b"\n"}
            with self.assertRaises(RemoteProtocolError) as caught:
                request_headers(lineBreak)
            self.assertEqual(
                str(caught.exception), "the value of HTTP_C holds CR or LF"
            )

    def test_emptyValue(self) -> None:
        """An empty HTTP_* value gives an empty header (nginx sends ``X-Empty:``)."""
        self.assertEqual(request_headers({"HTTP_X_EMPTY": b""}), [(b"x-empty", b"")])

    def test_contentVariables(self) -> None:
        """CONTENT_TYPE and CONTENT_LENGTH become headers, after the HTTP_* ones."""
        environ = {
            "CONTENT_LENGTH": b"27",
            "CONTENT_TYPE": b"text/plain",
            "HTTP_ACCEPT": b"*/*",
        }
        self.assertEqual(
            request_headers(environ),
            [
                (b"accept", b"*/*"),
                (b"content-type", b"text/plain"),
                (b"content-length", b"27"),
            ],
        )

    def test_contentLengthLeadingZeros(self) -> None:
        """CONTENT_LENGTH loses its leading zeros; 0 (however written) is left out."""
        self.assertEqual(
            request_headers({"CONTENT_LENGTH": b"0027"}), [(b"content-length", b"27")]
        )
        self.assertEqual(request_headers({"CONTENT_LENGTH": b"0"}), [])
        self.assertEqual(request_headers({"CONTENT_LENGTH": b"000"}), [])
        self.assertEqual(request_headers({}), [])

    def test_emptyContentType(self) -> None:
        """An empty CONTENT_TYPE (nginx always sends one) is left out."""
        self.assertEqual(request_headers({"CONTENT_TYPE": b""}), [])

    def test_skipped(self) -> None:
        """HTTP_CONTENT_TYPE/LENGTH, HTTP_TRANSFER_ENCODING, HTTP_PROXY are dropped."""
        environ = {
            "CONTENT_LENGTH": b"5",
            "CONTENT_TYPE": b"text/plain",
            "HTTP_CONTENT_TYPE": b"application/evil",
            "HTTP_CONTENT_LENGTH": b"999",
            "HTTP_TRANSFER_ENCODING": b"chunked",
            "HTTP_PROXY": b"http://evil.test/",
        }
        self.assertEqual(
            request_headers(environ),
            [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        )

    def test_otherContentHeadersKept(self) -> None:
        """Other HTTP_CONTENT_* headers (Content-Encoding) are real request headers."""
        self.assertEqual(
            request_headers({"HTTP_CONTENT_ENCODING": b"gzip"}),
            [(b"content-encoding", b"gzip")],
        )

    def test_notHTTP(self) -> None:
        """CGI variables that are not HTTP_* (HTTPS, HTTP) give no header."""
        environ = {"HTTPS": b"on", "HTTP": b"x", "REMOTE_ADDR": b"127.0.0.1"}
        self.assertEqual(request_headers(environ), [])

    def test_badName(self) -> None:
        """A name that is not a token after HTTP_ (empty, space, 8-bit) is a 400."""
        for key in ["HTTP_", "HTTP_X FOO", "HTTP_X\x01", "HTTP_CAF\xc9", "HTTP_X:Y"]:
            with self.assertRaises(RemoteProtocolError) as caught:
                request_headers({key: b"value"})
            self.assertEqual(caught.exception.status_hint, 400)
            self.assertIn(repr(key), str(caught.exception))

    def test_badValue(self) -> None:
        """CR or LF in an HTTP_* value or in CONTENT_TYPE is a 400."""
        for environ in [
            {"HTTP_X_FOO": b"a\r\nX-Injected: 1"},
            {"HTTP_X_FOO": b"a\nb"},
            {"HTTP_X_FOO": b"a\rb"},
            {"CONTENT_TYPE": b"text/plain\r\nX-Injected: 1"},
        ]:
            with self.assertRaises(RemoteProtocolError) as caught:
                request_headers(environ)
            self.assertEqual(caught.exception.status_hint, 400)
            self.assertIn("CR or LF", str(caught.exception))


class IsSecureTests(SynchronousTestCase):
    """``is_secure``: HTTPS and REQUEST_SCHEME, never client headers."""

    def test_https(self) -> None:
        """HTTPS ``on`` or ``1`` in any case means TLS."""
        for value in [b"on", b"ON", b"On", b"1"]:
            self.assertTrue(is_secure({"HTTPS": value}), value)

    def test_httpsOther(self) -> None:
        """Any other HTTPS value (off, empty, yes) does not."""
        for value in [b"off", b"", b"0", b"yes", b"true"]:
            self.assertFalse(is_secure({"HTTPS": value}), value)

    def test_requestScheme(self) -> None:
        """REQUEST_SCHEME ``https`` (any case) means TLS; ``http`` does not."""
        self.assertTrue(is_secure({"REQUEST_SCHEME": b"https"}))
        self.assertTrue(is_secure({"REQUEST_SCHEME": b"HTTPS"}))
        self.assertFalse(is_secure({"REQUEST_SCHEME": b"http"}))
        self.assertTrue(is_secure({"HTTPS": b"off", "REQUEST_SCHEME": b"https"}))

    def test_forwardedProtoIgnored(self) -> None:
        """A client-sent X-Forwarded-Proto (or Forwarded) never makes it secure."""
        environ = {
            "REQUEST_SCHEME": b"http",
            "HTTP_X_FORWARDED_PROTO": b"https",
            "HTTP_FORWARDED": b"proto=https",
            "HTTP_X_FORWARDED_SSL": b"on",
            "HTTP_HTTPS": b"on",
        }
        self.assertFalse(is_secure(environ))
        self.assertFalse(is_secure({}))


class ClientAddressTests(SynchronousTestCase):
    """``client_address``: REMOTE_ADDR and REMOTE_PORT."""

    def test_ipv4(self) -> None:
        """An IPv4 REMOTE_ADDR gives AF_INET with the port."""
        environ = {"REMOTE_ADDR": b"203.0.113.9", "REMOTE_PORT": b"51234"}
        self.assertEqual(
            client_address(environ), (socket.AF_INET, "203.0.113.9", 51234)
        )

    def test_ipv6(self) -> None:
        """An IPv6 REMOTE_ADDR gives AF_INET6."""
        environ = {"REMOTE_ADDR": b"2001:db8::1", "REMOTE_PORT": b"443"}
        self.assertEqual(client_address(environ), (socket.AF_INET6, "2001:db8::1", 443))
        self.assertEqual(
            client_address({"REMOTE_ADDR": b"::ffff:192.0.2.1"}),
            (socket.AF_INET6, "::ffff:192.0.2.1", 0),
        )

    def test_badPort(self) -> None:
        """A missing, empty, signed, spaced, huge or non-numeric port gives 0."""
        for port in [None, b"", b"abc", b"-1", b"+80", b" 80", b"65536", b"999999"]:
            environ = {"REMOTE_ADDR": b"192.0.2.1"}
            if port is not None:
                environ["REMOTE_PORT"] = port
            self.assertEqual(
                client_address(environ), (socket.AF_INET, "192.0.2.1", 0), port
            )

    def test_portBounds(self) -> None:
        """Ports 0 and 65535 are kept."""
        for port, expected in [(b"0", 0), (b"65535", 65535), (b"00080", 80)]:
            environ = {"REMOTE_ADDR": b"192.0.2.1", "REMOTE_PORT": port}
            self.assertEqual(client_address(environ)[2], expected)

    def test_notAnAddress(self) -> None:
        """Missing, empty, ``unix:``, a name or garbage give 0.0.0.0 port 0."""
        for addr in [None, b"", b"unix:", b"localhost", b"1.2.3", b"\xff\xfe", b"::g"]:
            environ = {"REMOTE_PORT": b"1234"}
            if addr is not None:
                environ["REMOTE_ADDR"] = addr
            self.assertEqual(
                client_address(environ), (socket.AF_INET, "0.0.0.0", 0), addr
            )

    def test_rememberedVerdicts(self) -> None:
        """Verdicts are remembered, and the memory is bounded.

        A remembered address answers as a new one would, the port always read anew;
        past its size the cache forgets the least recently used.
        """
        cache = _environ._client_host
        self.assertEqual(cache.cache_info().maxsize, _environ.CLIENT_HOSTS_CACHED)
        cache.cache_clear()
        for attempt in range(2):
            for number in range(10):
                environ = {
                    "REMOTE_ADDR": b"192.0.2.%d" % number,
                    "REMOTE_PORT": b"%d" % attempt,
                }
                self.assertEqual(
                    client_address(environ),
                    (socket.AF_INET, f"192.0.2.{number}", attempt),
                )
            self.assertEqual(
                client_address({"REMOTE_ADDR": b"nope", "REMOTE_PORT": b"1"}),
                (socket.AF_INET, "0.0.0.0", 0),
            )
        self.assertEqual(cache.cache_info().hits, 11)
        for number in range(_environ.CLIENT_HOSTS_CACHED + 1):
            client_address({"REMOTE_ADDR": b"10.0.%d.%d" % divmod(number, 256)})
        self.assertEqual(cache.cache_info().currsize, _environ.CLIENT_HOSTS_CACHED)


class ServerAddressTests(SynchronousTestCase):
    """``server_address``: the host and port the client addressed."""

    def test_serverNameAndPort(self) -> None:
        """SERVER_NAME and SERVER_PORT, when HTTP_HOST has no port."""
        environ = {
            "SERVER_NAME": b"localhost",
            "SERVER_PORT": b"8080",
            "HTTP_HOST": b"example.test",
        }
        self.assertEqual(server_address(environ, False), ("localhost", 8080))

    def test_hostHeaderPort(self) -> None:
        """An explicit port in HTTP_HOST (the public one) wins over SERVER_PORT."""
        environ = {
            "SERVER_NAME": b"localhost",
            "SERVER_PORT": b"8080",
            "HTTP_HOST": b"example.test:4443",
        }
        self.assertEqual(server_address(environ, True), ("localhost", 4443))

    def test_hostHeaderBadPort(self) -> None:
        """A non-numeric, empty or zero port in HTTP_HOST falls back to SERVER_PORT."""
        for host in [b"example.test:", b"example.test:x", b"example.test:0"]:
            environ = {"HTTP_HOST": host, "SERVER_PORT": b"81"}
            self.assertEqual(server_address(environ, False), ("example.test", 81))

    def test_emptyServerName(self) -> None:
        """An empty SERVER_NAME (lighttpd) falls back to HTTP_HOST's host."""
        environ = {"SERVER_NAME": b"", "HTTP_HOST": b"example.test:81"}
        self.assertEqual(server_address(environ, False), ("example.test", 81))

    def test_nothing(self) -> None:
        """No name and no port give localhost and the scheme's default port."""
        self.assertEqual(server_address({}, False), ("localhost", 80))
        self.assertEqual(server_address({}, True), ("localhost", 443))
        environ = {"SERVER_NAME": b"", "SERVER_PORT": b"", "HTTP_HOST": b""}
        self.assertEqual(server_address(environ, True), ("localhost", 443))

    def test_badServerPort(self) -> None:
        """A non-numeric or out-of-range SERVER_PORT gives the default port."""
        for port in [b"http", b"-1", b"70000", b"0"]:
            environ = {"SERVER_NAME": b"s", "SERVER_PORT": port}
            self.assertEqual(server_address(environ, False), ("s", 80), port)
            self.assertEqual(server_address(environ, True), ("s", 443), port)

    def test_ipv6Host(self) -> None:
        """A bracketed IPv6 HTTP_HOST keeps its brackets and gives its port."""
        environ = {"HTTP_HOST": b"[2001:db8::1]:8443"}
        self.assertEqual(server_address(environ, True), ("[2001:db8::1]", 8443))
        environ = {"HTTP_HOST": b"[2001:db8::1]"}
        self.assertEqual(server_address(environ, True), ("[2001:db8::1]", 443))

    def test_nonASCIIName(self) -> None:
        """A non-ASCII name is passed over: twisted.web needs an ASCII host."""
        environ = {"SERVER_NAME": b"caf\xe9", "HTTP_HOST": b"example.test"}
        self.assertEqual(server_address(environ, False), ("example.test", 80))
        environ = {"SERVER_NAME": b"caf\xe9", "HTTP_HOST": b"\xe9t\xe9:81"}
        self.assertEqual(server_address(environ, False), ("localhost", 81))
        self.assertEqual(
            server_address({"SERVER_NAME": b"caf\xc3\xa9"}, True), ("localhost", 443)
        )

    def test_rememberedAnswers(self) -> None:
        """Answers are remembered by every variable they depend on, within a bound."""
        cache = _environ._server_address
        self.assertEqual(cache.cache_info().maxsize, _environ.SERVER_ADDRESSES_CACHED)
        cache.cache_clear()
        for _attempt in range(2):
            for number in range(6):
                environ = {
                    "SERVER_NAME": b"s%d" % number,
                    "SERVER_PORT": b"8%d" % number,
                }
                self.assertEqual(
                    server_address(environ, False), (f"s{number}", 80 + number)
                )
                environ["SERVER_PORT"] = b""
                self.assertEqual(server_address(environ, True), (f"s{number}", 443))
                self.assertEqual(server_address(environ, False), (f"s{number}", 80))
                environ["HTTP_HOST"] = b"h:9"
                self.assertEqual(server_address(environ, False), (f"s{number}", 9))
        self.assertEqual(cache.cache_info().misses, 24)
        self.assertEqual(cache.cache_info().hits, 24)
        for number in range(_environ.SERVER_ADDRESSES_CACHED + 1):
            server_address({"SERVER_NAME": b"n%d" % number}, False)
        self.assertEqual(cache.cache_info().currsize, _environ.SERVER_ADDRESSES_CACHED)


class PathSegmentsTests(SynchronousTestCase):
    """``path_segments``: split on ``/`` first, then percent-decode each segment."""

    def test_split(self) -> None:
        """An encoded slash stays inside its segment; other escapes are decoded."""
        self.assertEqual(
            path_segments(b"/app/a%2Fb/%20c/caf%C3%A9"),
            [b"app", b"a/b", b" c", b"caf\xc3\xa9"],
        )

    def test_root(self) -> None:
        """``/`` is one empty segment; a trailing slash adds an empty segment."""
        self.assertEqual(path_segments(b"/"), [b""])
        self.assertEqual(path_segments(b"/app/"), [b"app", b""])
        self.assertEqual(path_segments(b"/a//b"), [b"a", b"", b"b"])


class MountDepthTests(SynchronousTestCase):
    """``mount_depth``: how many segments go to ``prepath``."""

    def assertDepth(
        self,
        uri: bytes,
        environ: Environ,
        expected: int,
        mount: bytes | None = None,
    ) -> None:
        """Split ``uri``'s path as twisted.web does and check the mount depth."""
        segments = path_segments(uri.partition(b"?")[0])
        self.assertEqual(mount_depth(segments, environ, mount), expected, uri)

    def test_nginx(self) -> None:
        """What nginx sends with our lines: SCRIPT_NAME /app, PATH_INFO decoded."""
        rows = [
            (b"/app", b""),
            (b"/app/", b"/"),
            (b"/app/a/b", b"/a/b"),
            (b"/app/a%2Fb/%20c", b"/a/b/ c"),
            (b"/app/caf%C3%A9/%7Eu", b"/caf\xc3\xa9/~u"),
            (b"/app/a/../b//c/./d", b"/b/c/d"),
        ]
        for uri, pathInfo in rows:
            environ = {"SCRIPT_NAME": b"/app", "PATH_INFO": pathInfo}
            self.assertDepth(uri, environ, 1)

    def test_apache(self) -> None:
        """The Apache rows (proxy-scgi-pathinfo), including its re-encoded PATH_INFO."""
        rows = [
            (b"/app", b"/app", b"/", 1),
            (b"/app/", b"/app", b"/", 1),
            (b"/app/a/b", b"/app", b"/a/b", 1),
            (b"/app/caf%C3%A9/%7Eu", b"/app/caf\xc3\xa9", b"/caf%C3%A9/~u", 1),
            (b"/app/a/../b//c/./d", b"/app", b"/b/c/d", 1),
            (b"/apple", b"", b"/apple", 0),
            (b"/x%20y/z", b"/x y", b"/x%20y/z", 0),
        ]
        for uri, scriptName, pathInfo, expected in rows:
            environ = {"SCRIPT_NAME": scriptName, "PATH_INFO": pathInfo}
            self.assertDepth(uri, environ, expected)

    def test_lighttpd(self) -> None:
        """The lighttpd rows; a bare /app comes without PATH_INFO (see below)."""
        rows = [
            (b"/app/", b"/"),
            (b"/app/a/b", b"/a/b"),
            (b"/app/a%2Fb/%20c", b"/a/b/ c"),
            (b"/app/caf%C3%A9/%7Eu", b"/caf\xc3\xa9/~u"),
        ]
        for uri, pathInfo in rows:
            self.assertDepth(uri, {"SCRIPT_NAME": b"/app", "PATH_INFO": pathInfo}, 1)

    def test_scriptNameAlone(self) -> None:
        """SCRIPT_NAME without PATH_INFO is not trusted (Apache without pathinfo)."""
        self.assertDepth(b"/app/a/b", {"SCRIPT_NAME": b"/app/a/b"}, 0)
        self.assertDepth(b"/app", {"SCRIPT_NAME": b"/app"}, 0)
        self.assertDepth(b"/app", {"SCRIPT_NAME": b"/app"}, 1, mount=b"/app")

    def test_root(self) -> None:
        """SCRIPT_NAME ``""`` or ``/`` is the root, for every frontend."""
        for scriptName in [b"", b"/"]:
            for uri, pathInfo in [(b"/apple", b"/apple"), (b"/x%20y/z", b"/x y/z")]:
                environ = {"SCRIPT_NAME": scriptName, "PATH_INFO": pathInfo}
                self.assertDepth(uri, environ, 0)

    def test_deepMount(self) -> None:
        """A mount of several segments moves all of them."""
        environ = {"SCRIPT_NAME": b"/a/b", "PATH_INFO": b"/c"}
        self.assertDepth(b"/a/b/c", environ, 2)
        self.assertDepth(b"/a/b/c", {}, 2, mount=b"/a/b/")

    def test_notAPrefix(self) -> None:
        """A SCRIPT_NAME that the path does not start with is ignored."""
        environ = {"SCRIPT_NAME": b"/other", "PATH_INFO": b"/x"}
        self.assertDepth(b"/app/y", environ, 0)
        self.assertDepth(b"/app/y", environ, 1, mount=b"/app")

    def test_segmentWise(self) -> None:
        """``/app`` is not a prefix of ``/apple``: prefixes match whole segments."""
        self.assertDepth(b"/apple", {"SCRIPT_NAME": b"/app", "PATH_INFO": b"le"}, 0)
        self.assertDepth(b"/apple/x", {}, 0, mount=b"/app")

    def test_pathInfoWithoutSlash(self) -> None:
        """A PATH_INFO without a leading slash never moves the whole path."""
        self.assertDepth(b"/x", {"SCRIPT_NAME": b"", "PATH_INFO": b"x"}, 0)
        self.assertDepth(b"/app/x", {"SCRIPT_NAME": b"/app", "PATH_INFO": b"x"}, 1)

    def test_configuredMount(self) -> None:
        """Without SCRIPT_NAME/PATH_INFO, a configured mount that matches applies."""
        self.assertDepth(b"/app/x", {}, 1, mount=b"/app")
        self.assertDepth(b"/app", {}, 1, mount=b"/app")
        self.assertDepth(b"/other/x", {}, 0, mount=b"/app")
        self.assertDepth(b"/app/x", {}, 0)

    def test_frontendWinsOverMount(self) -> None:
        """A usable SCRIPT_NAME/PATH_INFO wins over the configured mount."""
        environ = {"SCRIPT_NAME": b"", "PATH_INFO": b"/app/x"}
        self.assertDepth(b"/app/x", environ, 0, mount=b"/app")


class HelperTests(SynchronousTestCase):
    """The private helpers, directly."""

    def test_mountSegments(self) -> None:
        """``""`` and ``/`` have no segments; slashes at either end are ignored."""
        self.assertEqual(_mount_segments(b""), [])
        self.assertEqual(_mount_segments(b"/"), [])
        self.assertEqual(_mount_segments(b"/app/"), [b"app"])
        self.assertEqual(_mount_segments(b"/a/b"), [b"a", b"b"])

    def test_joined(self) -> None:
        """Segments join back into a PATH_INFO; none gives ``""``."""
        self.assertEqual(_joined([]), b"")
        self.assertEqual(_joined([b""]), b"/")
        self.assertEqual(_joined([b"a", b"b c"]), b"/a/b c")

    def test_port(self) -> None:
        """Only 1 to 5 ASCII digits up to 65535 make a port; anything else is 0."""
        self.assertEqual(_port(b"8080"), 8080)
        self.assertEqual(_port(b"65535"), 65535)
        for raw in [None, b"", b"65536", b"123456", b"-1", b"8O", b"\xb2"]:
            self.assertEqual(_port(raw), 0, raw)

    def test_portHugeDigits(self) -> None:
        """5000 digits (past int()'s 4300-digit limit) are 0, not a ValueError."""
        self.assertEqual(_port(b"9" * 5000), 0)
        environ = {"REMOTE_ADDR": b"192.0.2.1", "REMOTE_PORT": b"1" * 5000}
        self.assertEqual(client_address(environ), (socket.AF_INET, "192.0.2.1", 0))
        environ = {"SERVER_PORT": b"1" * 5000, "HTTP_HOST": b"h:" + b"2" * 5000}
        self.assertEqual(server_address(environ, False), ("h", 80))

    def test_splitHost(self) -> None:
        """Host values split into a name and an explicit port, if any."""
        cases: dict[bytes, tuple[bytes, int | None]] = {
            b"example.test": (b"example.test", None),
            b"example.test:81": (b"example.test", 81),
            b"example.test:": (b"example.test", None),
            b"example.test:http": (b"example.test", None),
            b"[::1]:81": (b"[::1]", 81),
            b"[::1]": (b"[::1]", None),
            b"[::1": (b"[::1", None),
            b"[::1]x": (b"[::1]", None),
            b"": (b"", None),
        }
        for host, expected in cases.items():
            self.assertEqual(_split_host(host), expected, host)


# The mappings against a reference: the straightforward reading of the rules.

_REFERENCE_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def referenceHeaders(environ: Mapping[str, bytes]) -> list[tuple[bytes, bytes]]:
    """Map variables to headers one by one, as the rules say, with nothing remembered.

    :raises RemoteProtocolError: for the first variable, in order, that cannot be a
        header: a name that is not a token, or CR or LF in a value.
    """
    skipped = {
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_PROXY",
    }
    headers = []
    for key, value in environ.items():
        if not key.startswith("HTTP_") or key in skipped:
            continue
        name = key[5:].replace("_", "-")
        if not _REFERENCE_TOKEN.match(name):
            raise RemoteProtocolError(f"the header name in {key!r} is not a token")
        if b"\r" in value or b"\n" in value:
            raise RemoteProtocolError(f"the value of {key} holds CR or LF")
        headers.append((name.lower().encode("latin-1"), value))
    contentType = environ.get("CONTENT_TYPE")
    if contentType:
        if b"\r" in contentType or b"\n" in contentType:
            raise RemoteProtocolError("the value of CONTENT_TYPE holds CR or LF")
        headers.append((b"content-type", contentType))
    contentLength = environ.get("CONTENT_LENGTH", b"0").lstrip(b"0")
    if contentLength:
        headers.append((b"content-length", contentLength))
    return headers


VARIABLE_NAMES = st.sampled_from(
    [
        *("HTTP_HOST", "HTTP_USER_AGENT", "HTTP_X_FOO", "HTTP_COOKIE") * 3,
        *("CONTENT_TYPE", "CONTENT_LENGTH", "REQUEST_URI", "SCGI", "HTTP_PROXY"),
        *("HTTP_CONTENT_TYPE", "HTTP_TRANSFER_ENCODING", "HTTP_", "HTTP_X@Y"),
        *("HTTP_CAF\xc9", "HTTP_x_lower", "Http_X", "HTTP_X__Y"),
    ]
)
VARIABLE_VALUES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"", b"0", b"007", b"text/plain", b"a\rb", b"\n", b"x\r\n"]),
)


class ReferenceTests(SynchronousTestCase):
    """The mappings, with their remembered plans, against plain references."""

    @settings(derandomize=True, max_examples=500, deadline=None)
    @given(
        items=st.lists(st.tuples(VARIABLE_NAMES, VARIABLE_VALUES), max_size=10),
        wrapped=st.booleans(),
    )
    def test_headersAsReference(
        self, items: list[tuple[str, bytes]], wrapped: bool
    ) -> None:
        """Any variables give the reference's headers, or its error, every time.

        The plan of a set of names is remembered after the first request; the
        second request, with the same names, takes it.  A wrapped
        ``SCGIVariables`` maps the same as a plain dictionary.
        """
        environ = dict(items)
        mapping: Mapping[str, bytes] = environ
        if wrapped:
            raw = tuple((key.encode("latin-1"), value) for key, value in items)
            mapping = SCGIVariables(environ, raw)
        try:
            expected: object = referenceHeaders(environ)
        except RemoteProtocolError as error:
            expected = str(error)
        for _attempt in range(2):
            try:
                outcome: object = request_headers(mapping)
            except RemoteProtocolError as error:
                outcome = str(error)
            self.assertEqual(outcome, expected)

    @settings(derandomize=True, max_examples=300, deadline=None)
    @given(
        segments=st.lists(
            st.text(alphabet="ab%2F0c/é ", max_size=6).map(
                lambda text: text.encode("utf-8")
            ),
            max_size=5,
        )
    )
    def test_segmentsAsReference(self, segments: list[bytes]) -> None:
        """Any path splits on ``/`` first, then each segment is percent-decoded."""
        path = b"/" + b"/".join(segments)
        expected = [unquote_to_bytes(part) for part in path[1:].split(b"/")]
        self.assertEqual(path_segments(path), expected)
