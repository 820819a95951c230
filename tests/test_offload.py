"""Tests for :mod:`scgi_twisted.offload`, in memory.

The settings and path checks are tested directly; the responses through the real SCGI
channel with :class:`scgi_twisted.testing.SCGITestClient`.  That each frontend really
sends the file is tested end to end by ``test_offload*`` in ``tests/support/``
(run by ``test_nginx``, ``test_apache`` and ``test_lighttpd``).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar, cast

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from scgi_twisted.offload import (
    DEFAULT_INTERNAL_PREFIX,
    FileOffload,
    OffloadError,
    offload,
)
from scgi_twisted.testing import SCGITestClient, TestResponse

ROOT = "/srv/app/files"


class _Sender(Resource):
    """Offload ``/files/<path>`` as ``ROOT/<path>`` (decoded) with ``offloader``."""

    isLeaf = True

    def __init__(self, offloader: FileOffload, **options: Any) -> None:
        super().__init__()
        self.offloader = offloader
        self.options = options

    def render(self, request: Request) -> bytes:
        segments = [segment.decode("utf-8") for segment in request.postpath or []]
        path = "/".join([ROOT, *segments[1:]])
        request.setResponseCode(404)  # send() must make it a 200
        try:
            return self.offloader.send(request, path, **self.options)
        except OffloadError as error:
            request.setHeader(b"X-Error", str(error).encode("utf-8"))
            return b"refused"


def _get(offloader: FileOffload, path: str, **options: Any) -> TestResponse:
    """Send ``GET path`` to a :class:`_Sender` and return the response."""
    return SCGITestClient(_Sender(offloader, **options)).get(path)


class FileOffloadSettingsTests(SynchronousTestCase):
    """``FileOffload`` checks and normalises its settings."""

    def test_frontends(self) -> None:
        """The three frontends are accepted; the root is normalised."""
        for frontend in ("nginx", "apache", "lighttpd"):
            offloader = FileOffload(frontend, "/srv//app/./files/")
            self.assertEqual(offloader.root, ROOT)
            self.assertEqual(offloader.internal_prefix, DEFAULT_INTERNAL_PREFIX)

    def test_unknownFrontend(self) -> None:
        """An unknown frontend is refused, naming the known ones."""
        with self.assertRaises(OffloadError) as caught:
            FileOffload(cast(Any, "caddy"), ROOT)
        self.assertIn("nginx, apache, lighttpd", str(caught.exception))

    def test_badRoots(self) -> None:
        """A relative root, one with ``..``, NUL, CR or LF, or bytes is refused."""
        for root in ("srv/files", "/srv/../etc", "/srv/\x00", "/srv/a\nb", "/srv/\r"):
            with self.assertRaises(OffloadError, msg=repr(root)):
                FileOffload("nginx", root)
        with self.assertRaises(OffloadError):
            FileOffload("nginx", cast(Any, b"/srv/files"))

    def test_badInternalPrefixes(self) -> None:
        """An internal prefix is ``/.../`` without ``?``, ``#``, ``%`` or ``..``."""
        for prefix in (
            "_offload/",
            "/_offload",
            "/a?/",
            "/a#/",
            "/a%20/",
            "/../",
            "/\n/",
        ):
            with self.assertRaises(OffloadError, msg=repr(prefix)):
                FileOffload("nginx", ROOT, prefix)

    def test_errorIsValueError(self) -> None:
        """``OffloadError`` is a ``ValueError``."""
        self.assertTrue(issubclass(OffloadError, ValueError))


class FileOffloadPathTests(SynchronousTestCase):
    """Only absolute paths strictly inside the root are offloaded."""

    def setUp(self) -> None:
        self.offloader = FileOffload("apache", ROOT)

    def test_relative(self) -> None:
        """A path below the root gives its part below the root, normalised."""
        relative = self.offloader.relative
        self.assertEqual(relative(ROOT + "/report.pdf"), "report.pdf")
        self.assertEqual(relative(ROOT + "/./a//b.txt"), "a/b.txt")
        self.assertEqual(relative(PurePosixPath(ROOT, "x y", "z")), "x y/z")

    def test_outsideRoot(self) -> None:
        """A path outside the root is refused, also one sharing its text prefix."""
        for path in ("/etc/passwd", "/srv/app/files2/x", "/srv/app/filesx", "/srv"):
            with self.assertRaises(OffloadError, msg=path) as caught:
                self.offloader.relative(path)
            self.assertIn("not inside", str(caught.exception))

    def test_dotDot(self) -> None:
        """A ``..`` segment is refused, even when the result would be inside."""
        for path in (ROOT + "/../files/x", ROOT + "/a/../b", ROOT + "/.."):
            with self.assertRaises(OffloadError, msg=path) as caught:
                self.offloader.relative(path)
            self.assertIn("'..'", str(caught.exception))
        self.assertEqual(self.offloader.relative(ROOT + "/..x/y.."), "..x/y..")

    def test_directory(self) -> None:
        """The root itself and a path ending with ``/`` name directories: refused."""
        for path in (ROOT, ROOT + "/", ROOT + "/sub/", ROOT + "/."):
            with self.assertRaises(OffloadError, msg=path) as caught:
                self.offloader.relative(path)
            self.assertIn("directory", str(caught.exception))

    def test_relativePath(self) -> None:
        """A relative path is refused, even one that would be inside the root."""
        with self.assertRaises(OffloadError) as caught:
            self.offloader.relative("report.pdf")
        self.assertIn("not absolute", str(caught.exception))

    def test_controlCharacters(self) -> None:
        """NUL, CR and LF in a path are refused (header injection)."""
        for character in ("\x00", "\r", "\n"):
            path = f"{ROOT}/a{character}X-Evil: 1"
            with self.assertRaises(OffloadError, msg=repr(path)):
                self.offloader.header(path)

    def test_bytesPath(self) -> None:
        """A path given as bytes is refused: paths are text."""
        with self.assertRaises(OffloadError):
            self.offloader.relative(cast(Any, ROOT.encode() + b"/x"))

    def test_rootIsSlash(self) -> None:
        """With the root ``/``, every absolute file path is inside."""
        offloader = FileOffload("apache", "/")
        self.assertEqual(offloader.relative("/etc/hostname"), "etc/hostname")
        self.assertEqual(
            offloader.header("/etc/hostname"), (b"X-Sendfile", b"/etc/hostname")
        )


class FileOffloadHeaderTests(SynchronousTestCase):
    """Each frontend gets its own header, encoded as it decodes it."""

    names: ClassVar[dict[str, str]] = {
        "plain": "report.pdf",
        "spaced": "sub dir/caf\u00e9 & more.txt",
        "escape": "a%41.txt",
        "percent": "100%.txt",
    }

    def header(self, frontend: str, name: str, **options: Any) -> tuple[bytes, bytes]:
        """Return the header for the file ``name`` below the root."""
        offloader = FileOffload(cast(Any, frontend), ROOT, **options)
        return offloader.header(f"{ROOT}/{self.names[name]}")

    def test_nginx(self) -> None:
        """nginx: ``X-Accel-Redirect`` to the internal prefix, percent-encoded."""
        self.assertEqual(
            self.header("nginx", "plain"),
            (b"X-Accel-Redirect", b"/_offload/report.pdf"),
        )
        self.assertEqual(
            self.header("nginx", "spaced")[1],
            b"/_offload/sub%20dir/caf%C3%A9%20%26%20more.txt",
        )
        self.assertEqual(self.header("nginx", "escape")[1], b"/_offload/a%2541.txt")
        self.assertEqual(self.header("nginx", "percent")[1], b"/_offload/100%25.txt")
        self.assertEqual(
            self.header("nginx", "plain", internal_prefix="/internal/files/")[1],
            b"/internal/files/report.pdf",
        )

    def test_apache(self) -> None:
        """Apache: ``X-Sendfile`` with the raw absolute path, as UTF-8 bytes."""
        self.assertEqual(
            self.header("apache", "plain"),
            (b"X-Sendfile", b"/srv/app/files/report.pdf"),
        )
        self.assertEqual(
            self.header("apache", "spaced")[1],
            "/srv/app/files/sub dir/caf\u00e9 & more.txt".encode(),
        )
        self.assertEqual(self.header("apache", "escape")[1], b"/srv/app/files/a%41.txt")

    def test_apacheBarePercent(self) -> None:
        """Apache: a ``%`` that is no ``%XX`` escape is refused (Apache's AH10244)."""
        with self.assertRaises(OffloadError) as caught:
            self.header("apache", "percent")
        self.assertIn("AH10244", str(caught.exception))
        for name in ("x%", "x%4", "x%zz", "x%4g"):
            with self.assertRaises(OffloadError, msg=name):
                FileOffload("apache", ROOT).header(f"{ROOT}/{name}")

    def test_lighttpd(self) -> None:
        """Lighttpd: ``X-Sendfile`` with the absolute path, percent-encoded."""
        self.assertEqual(
            self.header("lighttpd", "plain"),
            (b"X-Sendfile", b"/srv/app/files/report.pdf"),
        )
        self.assertEqual(
            self.header("lighttpd", "spaced")[1],
            b"/srv/app/files/sub%20dir/caf%C3%A9%20%26%20more.txt",
        )
        self.assertEqual(
            self.header("lighttpd", "escape")[1], b"/srv/app/files/a%2541.txt"
        )
        self.assertEqual(
            self.header("lighttpd", "percent")[1], b"/srv/app/files/100%25.txt"
        )


class OffloadResponseTests(SynchronousTestCase):
    """The response ``send()`` makes, through the real SCGI channel."""

    def test_response(self) -> None:
        """A 200 with the header, the guessed type, an explicit status and no body.

        The resource had set 404 first: ``send()`` sets the status itself.
        """
        response = _get(FileOffload("nginx", ROOT), "/files/report.pdf")
        self.assertEqual(response.status, 200)
        self.assertTrue(response.raw.startswith(b"Status: 200 OK\r\n"), response.raw)
        self.assertEqual(response.body, b"")
        headers = response.headers
        self.assertEqual(
            headers.getRawHeaders(b"X-Accel-Redirect"), [b"/_offload/report.pdf"]
        )
        self.assertEqual(headers.getRawHeaders(b"Content-Type"), [b"application/pdf"])
        self.assertEqual(headers.getRawHeaders(b"Content-Length"), [b"0"])

    def test_eachFrontend(self) -> None:
        """Apache and lighttpd responses carry ``X-Sendfile`` and no other header."""
        for frontend, value in (
            ("apache", b"/srv/app/files/a b.txt"),
            ("lighttpd", b"/srv/app/files/a%20b.txt"),
        ):
            response = _get(FileOffload(cast(Any, frontend), ROOT), "/files/a%20b.txt")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.headers.getRawHeaders(b"X-Sendfile"), [value])
            self.assertFalse(response.headers.hasHeader(b"X-Accel-Redirect"))
            self.assertEqual(
                response.headers.getRawHeaders(b"Content-Type"), [b"text/plain"]
            )

    def test_contentType(self) -> None:
        """An unknown type is ``application/octet-stream``; one given is used."""
        offloader = FileOffload("lighttpd", ROOT)
        unknown = _get(offloader, "/files/data.unknown-extension")
        self.assertEqual(
            unknown.headers.getRawHeaders(b"Content-Type"),
            [b"application/octet-stream"],
        )
        for given in ("text/csv; charset=utf-8", b"text/csv; charset=utf-8"):
            response = _get(offloader, "/files/report.pdf", content_type=given)
            self.assertEqual(
                response.headers.getRawHeaders(b"Content-Type"),
                [b"text/csv; charset=utf-8"],
            )

    def test_badContentType(self) -> None:
        """A content type with CR, LF or NUL, or not Latin-1, is refused."""
        for given in ("text/plain\r\nX-Evil: 1", b"a\nb", "a\x00", "caf\u0113"):
            response = _get(FileOffload("nginx", ROOT), "/files/x", content_type=given)
            self.assertEqual(response.body, b"refused", given)

    def test_refusedPathLeavesResponseAlone(self) -> None:
        """A refused path raises before the response is touched: no header, no 200."""
        response = _get(FileOffload("apache", ROOT), "/files/..%2Fsecret")
        self.assertEqual(response.status, 404)
        self.assertEqual(response.body, b"refused")
        self.assertFalse(response.headers.hasHeader(b"X-Sendfile"))
        self.assertIn(b"'..'", response.headers.getRawHeaders(b"X-Error", [b""])[0])
        self.assertNotEqual(
            response.headers.getRawHeaders(b"Content-Type"),
            [b"application/octet-stream"],
        )

    def test_head(self) -> None:
        """A HEAD gets the same header and no body (the frontend answers it)."""
        client = SCGITestClient(_Sender(FileOffload("nginx", ROOT)))
        response = client.head("/files/report.pdf")
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"X-Accel-Redirect"),
            [b"/_offload/report.pdf"],
        )
        self.assertEqual(response.body, b"")

    def test_offloadFunction(self) -> None:
        """``offload()`` does what ``FileOffload(...).send()`` does, in one call."""

        class Download(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> bytes:
                return offload(
                    request,
                    "/srv/files/x y.bin",
                    frontend="nginx",
                    root="/srv/files",
                    internal_prefix="/protected/",
                )

        response = SCGITestClient(Download()).get("/anything")
        self.assertEqual(response.status, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"X-Accel-Redirect"),
            [b"/protected/x%20y.bin"],
        )
        self.assertEqual(response.body, b"")
