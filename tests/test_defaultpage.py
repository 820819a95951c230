"""Tests for the built-in page of ``twistd scgi`` (:mod:`scgi_twisted._defaultpage`).

Strategy: every request is a real SCGI netstring fed to a real :class:`SCGISite`
channel on a ``StringTransport`` with a ``Clock`` (no sockets, no reactor); the response
is split into its ``Status:`` line, headers and body.  Hostile values go into every
field the page shows, and the tests check that none of them survives unescaped.
"""

from __future__ import annotations

import html
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource
from twisted.web.server import Site

from scgi_twisted import SCGISite
from scgi_twisted._defaultpage import DefaultPage

from .support.memory import connect, serveSCGI
from .support.scgi import BASE, Pairs, Response, buildRequest, replace, without


def render(
    pairs: Pairs = BASE,
    body: bytes = b"",
    root: IResource | None = None,
    **site: Any,
) -> Response:
    """Serve one request to the default page (or ``root``) in memory."""
    page = DefaultPage() if root is None else root
    return serveSCGI(SCGISite(page, reactor=Clock(), **site), buildRequest(pairs, body))


def shown(text: str) -> bytes:
    """Return ``text`` as the HTML page shows it (escaped, UTF-8)."""
    return html.escape(text, quote=True).encode("utf-8")


class DefaultPageTests(SynchronousTestCase):
    """The built-in page shows the request as a twisted.web application sees it."""

    def test_answersOK(self) -> None:
        """A plain GET is answered 200 with a complete HTML document, then closed."""
        channel, transport = connect(SCGISite(DefaultPage(), reactor=Clock()))
        channel.dataReceived(buildRequest(BASE))
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(Failure(ConnectionDone()))
        response = Response(transport.value())
        self.assertEqual(response.status, b"200 OK")
        self.assertTrue(response.body.startswith(b"<!DOCTYPE html>"))
        self.assertTrue(response.body.rstrip().endswith(b"</html>"))
        self.assertEqual(int(response.header(b"content-length")), len(response.body))

    def test_htmlHeaders(self) -> None:
        """The page is UTF-8 HTML, never cached or sniffed, under a strict CSP."""
        response = render()
        self.assertEqual(response.header(b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(response.header(b"x-content-type-options"), b"nosniff")
        self.assertEqual(response.header(b"cache-control"), b"no-store")
        csp = response.header(b"content-security-policy")
        self.assertIn(b"default-src 'none'", csp)
        self.assertNotIn(b"script-src", csp)

    def test_requestLine(self) -> None:
        """The method, the raw URI and the protocol are shown."""
        pairs = replace(BASE, REQUEST_METHOD=b"PUT", REQUEST_URI=b"/a%20b/c?x=1&y=2")
        response = render(pairs)
        self.assertIn(b">PUT<", response.body)
        self.assertIn(shown("/a%20b/c?x=1&y=2"), response.body)
        self.assertIn(b"HTTP/1.1", response.body)

    def test_prepathPostpath(self) -> None:
        """``prepath`` and ``postpath`` are shown as the lists of bytes they are."""
        pairs = replace(
            BASE,
            REQUEST_URI=b"/app/a%2Fb/c",
            SCRIPT_NAME=b"/app",
            PATH_INFO=b"/a/b/c",
        )
        body = render(pairs).body
        self.assertIn(shown(repr([b"app"])), body)
        self.assertIn(shown(repr([b"a/b", b"c"])), body)

    def test_mount(self) -> None:
        """With the site's mount prefix, the prefix's segments are in ``prepath``."""
        pairs = replace(BASE, REQUEST_URI=b"/app/x")
        response = render(pairs, mount="/app")
        data = render(replace(pairs, REQUEST_URI=b"/app/x?format=json"), mount="/app")
        self.assertIn(shown(repr([b"app"])), response.body)
        self.assertEqual(data.json()["prepath"], ["app"])
        self.assertEqual(data.json()["postpath"], ["x"])
        self.assertEqual(data.json()["url"], "http://example.test:8080/app")

    def test_everyPath(self) -> None:
        """The page is a leaf: every path below it shows the page."""
        response = render(replace(BASE, REQUEST_URI=b"/deep/er/path?format=json"))
        self.assertEqual(response.status, b"200 OK")
        self.assertEqual(response.json()["postpath"], ["deep", "er", "path"])

    def test_everyMethod(self) -> None:
        """The page answers any method, such as DELETE or OPTIONS."""
        for method in (b"DELETE", b"OPTIONS", b"PATCH"):
            response = render(replace(BASE, REQUEST_METHOD=method))
            self.assertEqual(response.status, b"200 OK", method)
            self.assertIn(b">" + method + b"<", response.body)

    def test_clientAddress(self) -> None:
        """The client address and port come from REMOTE_ADDR and REMOTE_PORT."""
        body = render().body
        self.assertIn(b"203.0.113.9, port 51234 (IPv4)", body)
        self.assertIn(b"REMOTE_ADDR, REMOTE_PORT", body)

    def test_ipv6Client(self) -> None:
        """An IPv6 REMOTE_ADDR is shown as an IPv6 client."""
        pairs = replace(BASE, REMOTE_ADDR=b"2001:db8::7", REQUEST_URI=b"/?format=json")
        self.assertEqual(
            render(pairs).json()["client"],
            {"type": "IPv6", "host": "2001:db8::7", "port": 51234},
        )

    def test_notSecure(self) -> None:
        """Without HTTPS or REQUEST_SCHEME=https the request is shown as not secure."""
        body = render().body
        self.assertIn(b"no (http)", body)
        self.assertIn(shown("http://example.test:8080/"), body)

    def test_secure(self) -> None:
        """HTTPS=on makes the request secure, and its URL https."""
        pairs = replace(BASE, HTTPS=b"on", REQUEST_SCHEME=b"https")
        body = render(pairs).body
        self.assertIn(b'class="yes">yes (https)', body)
        self.assertIn(shown("https://example.test:8080/"), body)

    def test_host(self) -> None:
        """The host name and port come from the Host header."""
        data = render(replace(BASE, REQUEST_URI=b"/?format=json")).json()
        self.assertEqual(data["host"], "example.test")
        self.assertEqual(data["port"], 8080)

    def test_headers(self) -> None:
        """Every request header is listed with its value."""
        pairs = [*BASE, (b"HTTP_X_REQUEST_ID", b"abc-123")]
        body = render(pairs).body
        self.assertIn(b"X-Request-Id</th><td>abc-123</td>", body)
        self.assertIn(b"User-Agent</th><td>curl/8.5.0</td>", body)

    def test_scgiVariables(self) -> None:
        """The raw SCGI variables are listed in arrival order, CONTENT_LENGTH first."""
        body = render().body
        names = [b"CONTENT_LENGTH", *(name for name, _ in BASE)]
        positions = [body.index(b"<tr><th>" + name + b"</th>") for name in names]
        self.assertEqual(positions, sorted(positions))
        self.assertIn(b"REMOTE_PORT</th><td>51234</td>", body)

    def test_repeatedVariables(self) -> None:
        """A repeated variable is listed each time it was sent, marked as repeated."""
        pairs = [*BASE, (b"HTTP_COOKIE", b"a=1"), (b"HTTP_COOKIE", b"b=2")]
        body = render(pairs).body
        self.assertIn(b"HTTP_COOKIE</th><td>a=1</td>", body)
        self.assertIn(
            b'HTTP_COOKIE<span class="repeat">repeated</span></th><td>b=2</td>', body
        )

    def test_emptyValue(self) -> None:
        """An empty value is marked as empty rather than left blank."""
        self.assertIn(
            b'QUERY_STRING</th><td><span class="empty">(empty)', render().body
        )

    def test_body(self) -> None:
        """A POST body's size and type are shown, and form fields in the arguments."""
        pairs = [
            *replace(BASE, REQUEST_METHOD=b"POST"),
            (b"CONTENT_TYPE", b"application/x-www-form-urlencoded"),
        ]
        body = render(pairs, b"name=value&n=2").body
        self.assertIn(b"14 bytes, application/x-www-form-urlencoded", body)
        self.assertIn(b"name</th><td>value</td>", body)

    def test_head(self) -> None:
        """HEAD gets the headers of the GET, with its Content-Length, and no body."""
        get = render(replace(BASE, REQUEST_METHOD=b"GET"))
        head = render(replace(BASE, REQUEST_METHOD=b"HEAD"))
        self.assertEqual(head.status, b"200 OK")
        self.assertEqual(head.body, b"")
        self.assertEqual(head.header(b"content-type"), get.header(b"content-type"))
        # The bodies differ only in the method, wherever it is shown.
        self.assertEqual(
            int(head.header(b"content-length")),
            len(get.body.replace(b">GET<", b">HEAD<")),
        )

    def test_versions(self) -> None:
        """The footer names scgi_twisted and the Twisted version."""
        self.assertIn(b"scgi_twisted ", render().body)
        self.assertIn(b"on Twisted ", render().body)

    def test_json(self) -> None:
        """``?format=json`` gives the same facts as JSON."""
        pairs = replace(BASE, REQUEST_URI=b"/x/y?format=json&q=1", HTTPS=b"on")
        response = render(pairs)
        self.assertEqual(response.header(b"content-type"), b"application/json")
        self.assertEqual(response.header(b"x-content-type-options"), b"nosniff")
        data = response.json()
        self.assertEqual(data["method"], "GET")
        self.assertEqual(data["uri"], "/x/y?format=json&q=1")
        self.assertEqual(data["protocol"], "HTTP/1.1")
        self.assertEqual(data["prepath"], [])
        self.assertEqual(data["postpath"], ["x", "y"])
        self.assertIs(data["secure"], True)
        self.assertEqual(data["url"], "https://example.test:8080/")
        self.assertEqual(data["args"], {"format": ["json"], "q": ["1"]})
        self.assertEqual(data["body_length"], 0)
        self.assertIn(["User-Agent", "curl/8.5.0"], data["headers"])
        self.assertEqual(
            data["scgi"],
            [["CONTENT_LENGTH", "0"]]
            + [[name.decode(), value.decode()] for name, value in pairs],
        )
        self.assertEqual(data["notes"], [])

    def test_jsonHead(self) -> None:
        """HEAD with ``?format=json`` gets the JSON's headers and no body."""
        pairs = replace(BASE, REQUEST_METHOD=b"HEAD", REQUEST_URI=b"/?format=json")
        response = render(pairs)
        self.assertEqual(response.header(b"content-type"), b"application/json")
        self.assertEqual(response.body, b"")
        self.assertGreater(int(response.header(b"content-length")), 100)


HOSTILE = b"\"'><script>alert(1)</script><img src=x onerror=alert(2)>&amp;"


class HostileValueTests(SynchronousTestCase):
    """Every value from the request is escaped; nothing the client sent is markup."""

    def assertInert(self, body: bytes) -> None:
        """Assert that no hostile markup from :data:`HOSTILE` survives in ``body``."""
        for fragment in (b"<script", b"<img", b"onerror=alert(2)>", b"\"'>"):
            self.assertNotIn(fragment, body)
        self.assertIn(b"&lt;script&gt;alert(1)&lt;/script&gt;", body)

    def test_header(self) -> None:
        """A hostile header value is escaped, in the headers and in the variables."""
        body = render([*BASE, (b"HTTP_X_EVIL", HOSTILE)]).body
        self.assertInert(body)
        self.assertEqual(body.count(shown(HOSTILE.decode())), 2)

    def test_variableName(self) -> None:
        """A hostile variable name is escaped."""
        self.assertInert(render([*BASE, (b"X_" + HOSTILE, b"1")]).body)

    def test_uriAndQuery(self) -> None:
        """A hostile URI and query (with their arguments) are escaped everywhere."""
        pairs = replace(
            BASE, REQUEST_URI=b"/" + HOSTILE + b"?" + HOSTILE + b"=" + HOSTILE
        )
        self.assertInert(render(pairs).body)

    def test_host(self) -> None:
        """A hostile Host (shown as the host name and in the URL) is escaped."""
        self.assertInert(render(replace(BASE, HTTP_HOST=HOSTILE)).body)

    def test_method(self) -> None:
        """A hostile method is escaped."""
        self.assertInert(render(replace(BASE, REQUEST_METHOD=HOSTILE)).body)

    def test_protocol(self) -> None:
        """A hostile SERVER_PROTOCOL is escaped."""
        self.assertInert(render(replace(BASE, SERVER_PROTOCOL=HOSTILE)).body)

    def test_remoteAddr(self) -> None:
        """A REMOTE_ADDR that is not an address is escaped and gives a placeholder."""
        body = render(replace(BASE, REMOTE_ADDR=HOSTILE)).body
        self.assertInert(body)
        self.assertIn(b"0.0.0.0, port 0 (IPv4)", body)

    def test_contentType(self) -> None:
        """A hostile CONTENT_TYPE is escaped."""
        pairs = [*replace(BASE, REQUEST_METHOD=b"POST"), (b"CONTENT_TYPE", HOSTILE)]
        self.assertInert(render(pairs, b"x").body)

    def test_invisibleCharacters(self) -> None:
        """Control and bidi characters and bad UTF-8 are spelled out, not sent raw."""
        value = b"a\x1b[31mb\tc\xe2\x80\xaed\xffe"
        body = render([*BASE, (b"HTTP_X_ODD", value)]).body
        self.assertIn(b"a\\x1b[31mb\\x09c\\u202ed\\xffe", body)
        self.assertNotIn(b"\x1b", body)
        self.assertNotIn("\u202e".encode(), body)

    def test_utf8(self) -> None:
        """Valid UTF-8 is shown as the text it encodes."""
        body = render([*BASE, (b"HTTP_X_NAME", "café ☕".encode())]).body
        self.assertIn("café ☕".encode(), body)

    def test_nonASCIIHost(self) -> None:
        """A Host that cannot make a URL still gets the page, saying why."""
        response = render(replace(BASE, HTTP_HOST="café.test".encode()))
        self.assertEqual(response.status, b"200 OK")
        self.assertIn(b"(cannot be built:", response.body)

    def test_json(self) -> None:
        """The JSON rendering holds the hostile values but no ``<``, ``>`` or ``&``."""
        pairs = [
            *replace(BASE, REQUEST_URI=b"/?format=json"),
            (b"HTTP_X_EVIL", HOSTILE),
        ]
        response = render(pairs)
        for character in (b"<", b">", b"&"):
            self.assertNotIn(character, response.body)
        self.assertIn(["X-Evil", HOSTILE.decode()], response.json()["headers"])


class NotesTests(SynchronousTestCase):
    """The page points out what the frontend may have got wrong."""

    def notes(self, pairs: Pairs) -> list[str]:
        """Return the notes the JSON rendering gives for a request."""
        notes = render(replace(pairs, REQUEST_URI=b"/?format=json")).json()["notes"]
        assert isinstance(notes, list)
        return notes

    def test_none(self) -> None:
        """A complete request from nginx gets no notes, and the page no notes box."""
        self.assertEqual(self.notes(BASE), [])
        self.assertNotIn(b'class="notes"', render().body)

    def test_noRemoteAddr(self) -> None:
        """A missing REMOTE_ADDR is pointed out."""
        (note,) = self.notes(without(BASE, b"REMOTE_ADDR"))
        self.assertIn("no IP address in REMOTE_ADDR", note)
        self.assertIn(b'class="notes"', render(without(BASE, b"REMOTE_ADDR")).body)

    def test_unixRemoteAddr(self) -> None:
        """The ``unix:`` that nginx sends as REMOTE_ADDR is pointed out too."""
        (note,) = self.notes(replace(BASE, REMOTE_ADDR=b"unix:"))
        self.assertIn("no IP address in REMOTE_ADDR", note)

    def test_noRequestURI(self) -> None:
        """A missing REQUEST_URI is pointed out."""
        pairs = [*without(BASE, b"REQUEST_URI"), (b"PATH_INFO", b"/x")]
        body = render(pairs).body
        self.assertIn(b"no REQUEST_URI", body)

    def test_scriptNameWithoutPathInfo(self) -> None:
        """SCRIPT_NAME without PATH_INFO (Apache's default) is pointed out."""
        (note,) = self.notes([*BASE, (b"SCRIPT_NAME", b"/app/x")])
        self.assertIn("SCRIPT_NAME without PATH_INFO", note)

    def test_rootScriptName(self) -> None:
        """An empty SCRIPT_NAME without PATH_INFO is not worth a note."""
        self.assertEqual(self.notes([*BASE, (b"SCRIPT_NAME", b"")]), [])

    def test_forwardedProto(self) -> None:
        """X-Forwarded-Proto: https on a request that is not secure is pointed out."""
        (note,) = self.notes([*BASE, (b"HTTP_X_FORWARDED_PROTO", b"https")])
        self.assertIn("X-Forwarded-Proto: https, which is never trusted", note)

    def test_forwardedProtoSecure(self) -> None:
        """X-Forwarded-Proto on a secure request is not worth a note."""
        pairs = [*BASE, (b"HTTPS", b"on"), (b"HTTP_X_FORWARDED_PROTO", b"https")]
        self.assertEqual(self.notes(pairs), [])


class NotSCGITests(SynchronousTestCase):
    """The page also works in a plain HTTP ``Site``, where there are no variables."""

    def test_plainHTTP(self) -> None:
        """Over HTTP the page says that the request did not arrive over SCGI."""
        site = Site(DefaultPage(), reactor=Clock())
        channel = site.buildProtocol(None)
        assert channel is not None
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /x HTTP/1.0\r\nHost: example.test\r\n\r\n")
        channel.connectionLost(Failure(ConnectionDone()))
        raw = transport.value()
        self.assertTrue(raw.startswith(b"HTTP/1.0 200 OK\r\n"), raw[:100])
        self.assertIn(b"This request did not arrive over SCGI.", raw)
        self.assertIn(shown(repr([b"x"])), raw)
