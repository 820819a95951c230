"""Test helpers: drive a Resource or a Site through the real SCGI channel, in memory.

:class:`SCGITestClient` sends requests with the protocol of ``scgi_twisted.client``
(the same variables, and the same reading of the CGI response) to a real
:class:`~scgi_twisted.SCGISite` channel, over an in-memory connection
(``twisted.test.iosim``).  No socket is opened and no reactor runs: time is a
:class:`~twisted.internet.task.Clock` the test advances.  It works the same under
``trial`` and ``pytest``.

A resource that renders synchronously gives its response at once::

    from twisted.trial.unittest import SynchronousTestCase
    from twisted.web.resource import Resource

    from scgi_twisted.testing import SCGITestClient


    class Hello(Resource):
        isLeaf = True

        def render_GET(self, request):
            name = request.args.get(b"name", [b"world"])[0]
            return b"hello, " + name


    class HelloTests(SynchronousTestCase):
        def test_hello(self) -> None:
            client = SCGITestClient(Hello())
            response = client.get("/?name=you", headers={"Accept": "text/plain"})
            self.assertEqual(response.status, 200)
            self.assertEqual(response.body, b"hello, you")

Posting a form, sending cookies, mounting the application under a prefix (as a
frontend's ``SCRIPT_NAME``), and passing any :class:`~scgi_twisted.SCGISite` option::

    client = SCGITestClient(root, mount="/app", max_body_size=1024)
    response = client.post("/app/login", form={"user": "alice"}, cookies={"id": "1"})
    assert response.status == 302 and b"session" in response.cookies

A resource that returns ``NOT_DONE_YET`` finishes later: :meth:`SCGITestClient.start`
returns a :class:`PendingResponse`; advance :attr:`SCGITestClient.clock` (or fire what
the resource waits on) and ask again::

    pending = client.start("GET", "/slow")      # the resource calls clock.callLater
    assert not pending.finished
    client.clock.advance(5)
    assert pending.result().body == b"done"

    finished = pending.when_finished()         # or wait with a Deferred
    # ... self.successResultOf(finished).status ...

:meth:`PendingResponse.disconnect` makes the frontend go away (as nginx does when its
client aborts), so a test can check that the resource's ``notifyFinish()`` Deferred
fails and that it stops its work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource
from twisted.web.server import Site

from ._channel import SCGIChannel
from ._clientprotocol import Response
from ._clientsansio import (
    HeaderPairs,
    Text,
    VariableOverrides,
    encode_request,
)
from ._memory import FRONTEND, ClientOutcome, MemoryConnection, NullTransport
from ._site import RefusedConnection, SCGISite

__all__ = [
    "PendingResponse",
    "ResponseNotFinishedError",
    "SCGITestClient",
    "TestResponse",
]


def _failure(error: BaseException) -> Failure:
    """Wrap an exception in a ``Failure`` (``Failure`` itself is untyped)."""
    return Failure(error)  # type: ignore[no-untyped-call]


class ResponseNotFinishedError(AssertionError):
    """A response was asked for, but the server has not finished it.

    It is an ``AssertionError``, so a test that expected a finished response fails
    (rather than errors) with this message.
    """


@dataclass(frozen=True)
class TestResponse:
    """A complete response, as the SCGI channel wrote it.

    :ivar status: the status code.
    :ivar reason: the reason phrase.
    :ivar headers: the headers (without ``Status``).
    :ivar header_pairs: the headers exactly as written, in order.
    :ivar body: the body.
    :ivar raw: every byte the channel wrote.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    status: int
    reason: bytes
    headers: Headers = field(repr=False)
    header_pairs: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    body: bytes
    raw: bytes = field(repr=False)

    @property
    def text(self) -> str:
        """The body decoded with the ``charset`` of its ``Content-Type`` (or UTF-8)."""
        charset = "utf-8"
        for value in self.headers.getRawHeaders(b"content-type") or []:
            for parameter in value.split(b";")[1:]:
                name, _, given = parameter.partition(b"=")
                if name.strip().lower() == b"charset":
                    charset = given.strip().strip(b'"').decode("ascii", "replace")
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")

    @property
    def cookies(self) -> dict[bytes, bytes]:
        """The cookies the response sets (``Set-Cookie``), name to value."""
        cookies: dict[bytes, bytes] = {}
        for value in self.headers.getRawHeaders(b"set-cookie") or []:
            pair = value.split(b";", 1)[0]
            name, equals, cookie = pair.partition(b"=")
            if equals:
                cookies[name.strip()] = cookie.strip()
        return cookies

    @classmethod
    def parse(cls, raw: bytes, method: Text = b"GET") -> TestResponse:
        """Parse the complete output of an SCGI channel.

        :param raw: every byte the server wrote, up to its close.
        :param method: the request's method (a response to ``HEAD`` has no body).
        :returns: the response.
        :raises MalformedResponseError: if the bytes are not a valid CGI response.
        """
        outcome = ClientOutcome(_bytes(method))
        client = outcome.client
        client.makeConnection(NullTransport())  # type: ignore[no-untyped-call]
        client.dataReceived(raw)
        client.connectionLost(_failure(ConnectionDone("the response is complete")))
        response, body = outcome.result()
        return cls._fromClient(response, body, raw)

    @classmethod
    def _fromClient(cls, response: Response, body: bytes, raw: bytes) -> TestResponse:
        """Make a test response of what the SCGI client read."""
        return cls(
            response.code,
            response.phrase,
            response.headers,
            tuple(response.rawHeaders),
            body,
            raw,
        )


class PendingResponse:
    """A request that has been sent; its response may not be finished yet.

    The request is made by the SCGI client's own protocol
    (:mod:`scgi_twisted.client`) on an in-memory connection to the channel
    (``twisted.test.iosim``): the response is parsed as the client parses a real
    server's.

    :ivar channel: the server's channel for this connection.
    :ivar transport: the in-memory transport the channel writes to.
    :ivar method: the request's method.
    """

    def __init__(
        self,
        channel: SCGIChannel,
        method: bytes,
        clock: Clock,
        *,
        head: bytes,
        body: bytes,
    ) -> None:
        """Connect a client that sends ``head`` and ``body`` to ``channel``.

        Made by :meth:`SCGITestClient.start`, which then moves the bytes.
        """
        self.channel = channel
        self.method = method
        self._waiting: list[Deferred[TestResponse]] = []
        self._finished = False
        self._disconnected = False
        self._result: TestResponse | None = None
        self._outcome = ClientOutcome(method, head, body)
        client = self._outcome.client
        client.lostDeferred.addCallback(self._clientLost)
        self._connection = MemoryConnection(channel, client, clock)
        self.transport = self._connection.server

    @property
    def finished(self) -> bool:
        """Whether the server has finished its response (closed its side)."""
        return self._finished

    @property
    def raw(self) -> bytes:
        """Every byte the server has written so far."""
        return b"".join(self.transport.written)

    def result(self) -> TestResponse:
        """Return the finished response.

        :returns: the parsed response.
        :raises ResponseNotFinishedError: if the server has not finished it (advance
            the client's clock, or fire what the resource waits on, first).
        :raises MalformedResponseError: if the server wrote a malformed response.
        """
        if not self._finished:
            detail = (
                "the test disconnected first"
                if self._disconnected
                else f"{len(self.raw)} bytes written so far"
            )
            raise ResponseNotFinishedError(
                f"the server has not finished the response ({detail}); a resource "
                "that returned NOT_DONE_YET finishes once the clock is advanced or "
                "what it waits on fires"
            )
        if self._result is None:
            response, body = self._outcome.result()
            self._result = TestResponse._fromClient(response, body, self.raw)
        return self._result

    def when_finished(self) -> Deferred[TestResponse]:
        """Return a Deferred that fires with the response once it is finished.

        :returns: a Deferred firing with the :class:`TestResponse`, or failing with
            :class:`MalformedResponseError`.  It never fires if the test disconnects
            first.
        """
        if self._finished:
            try:
                return succeed(self.result())
            except Exception as error:
                return fail(_failure(error))
        waiting: Deferred[TestResponse] = Deferred()
        self._waiting.append(waiting)
        return waiting

    def disconnect(self) -> None:
        """Make the frontend close the connection, as nginx does on a client abort.

        The channel sees the end of its input, then the connection is lost: an
        unfinished request's ``notifyFinish()`` Deferred fails, and later writes are
        dropped.
        """
        if not self.transport.connected:
            return
        self._disconnected = True
        if not self.transport.disconnecting:
            self.channel.readConnectionLost()
        self._connection.client.loseConnection()  # type: ignore[no-untyped-call]
        self._connection.flush()

    def _clientLost(self, _: object) -> None:
        """The client's connection is closed: the response is finished."""
        if self._disconnected or self._finished:
            return
        self._finished = True
        waiting, self._waiting = self._waiting, []
        for deferred in waiting:
            try:
                deferred.callback(self.result())
            except Exception as error:
                deferred.errback(_failure(error))


class SCGITestClient:
    """Send requests to a resource or a site through the real SCGI channel, in memory.

    :param resource_or_site: the ``Resource`` to serve (in a new
        :class:`~scgi_twisted.SCGISite`; an object with a ``resource()`` method, such
        as a Klein app, too), an ``SCGISite``, or any other ``Site`` (served with
        :meth:`SCGISite.sharing`).
    :param mount: where the frontend mounts the application, such as ``"/app"``: it
        is sent as ``SCRIPT_NAME`` (with ``PATH_INFO``) and, for a new site, also
        set as its ``mount`` option.  By default, a given site's own ``mount``, else
        the root.  Request paths are full paths (``"/app/page"``).
    :param send_script_name: send ``SCRIPT_NAME`` and ``PATH_INFO``; false imitates
        nginx's stock ``scgi_params``, which sends neither (the site's ``mount`` then
        decides).
    :param secure: send the variables of a client that used TLS (``HTTPS=on``).
    :param variables: SCGI variables to set on every request.
    :param clock: the clock for the site's timers and the channel's timeouts; a new
        one by default.
    :param site_options: for a new site (or a shared plain ``Site``), the
        :class:`~scgi_twisted.SCGISite` keyword arguments, such as ``max_body_size``.

    :ivar site: the SCGI site requests go to.
    :ivar clock: the clock to advance.
    """

    def __init__(
        self,
        resource_or_site: IResource | Site | object,
        *,
        mount: Text | None = None,
        send_script_name: bool = True,
        secure: bool = False,
        variables: VariableOverrides = (),
        clock: Clock | None = None,
        **site_options: Any,
    ) -> None:
        """Create the client and, for a resource, its site."""
        self.clock = clock if clock is not None else Clock()
        if isinstance(resource_or_site, SCGISite):
            if site_options:
                raise TypeError(
                    "site options apply only when the client builds the site: "
                    + ", ".join(sorted(site_options))
                )
            site = resource_or_site
        elif isinstance(resource_or_site, Site):
            site = SCGISite.sharing(resource_or_site, mount=mount, **site_options)
        else:
            site = SCGISite(
                resource_or_site, mount=mount, reactor=self.clock, **site_options
            )
        self.site = site
        if mount is None and site.config.mount is not None:
            mount = site.config.mount
        self.mount = mount
        self.send_script_name = send_script_name
        self.secure = secure
        self.variables = (
            list(variables.items())
            if isinstance(variables, Mapping)
            else list(variables)
        )

    # Requests that finish at once.

    def request(
        self,
        method: Text,
        path: Text,
        *,
        headers: HeaderPairs | Headers | None = None,
        body: Text = b"",
        variables: VariableOverrides = (),
        cookies: Mapping[str, Text] | Mapping[bytes, Text] | None = None,
    ) -> TestResponse:
        """Send a request and return its response, which must finish at once.

        :param method: the request method.
        :param path: the full request path, with any query (``"/app/a?b=c"``).
        :param headers: the request headers: pairs, a mapping or ``Headers``.
        :param body: the request body (text is sent as UTF-8).
        :param variables: SCGI variables to set (``None`` leaves one out).
        :param cookies: cookies to send in a ``Cookie`` header.
        :returns: the response.
        :raises ResponseNotFinishedError: if the resource did not finish the
            response synchronously; use :meth:`start` for such resources.
        :raises MalformedResponseError: if the server wrote a malformed response.
        :raises LocalProtocolError: for arguments no request can carry.
        """
        return self.start(
            method,
            path,
            headers=headers,
            body=body,
            variables=variables,
            cookies=cookies,
        ).result()

    def get(self, path: Text, **options: Any) -> TestResponse:
        """Send a ``GET``; the options are those of :meth:`request`."""
        return self.request(b"GET", path, **options)

    def head(self, path: Text, **options: Any) -> TestResponse:
        """Send a ``HEAD``; the options are those of :meth:`request`."""
        return self.request(b"HEAD", path, **options)

    def delete(self, path: Text, **options: Any) -> TestResponse:
        """Send a ``DELETE``; the options are those of :meth:`request`."""
        return self.request(b"DELETE", path, **options)

    def post(
        self,
        path: Text,
        body: Text = b"",
        *,
        content_type: Text | None = None,
        form: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TestResponse:
        """Send a ``POST``.

        :param path: the full request path.
        :param body: the body.
        :param content_type: the ``Content-Type`` to send with it.
        :param form: form fields to send instead of ``body``, URL-encoded (a list
            value sends the field several times), with the form content type.
        :param options: the other options of :meth:`request`.
        :returns: the response.
        """
        return self.request(
            b"POST", path, **self._withBody(body, content_type, form, options)
        )

    def put(
        self,
        path: Text,
        body: Text = b"",
        *,
        content_type: Text | None = None,
        **options: Any,
    ) -> TestResponse:
        """Send a ``PUT``; see :meth:`post`."""
        return self.request(
            b"PUT", path, **self._withBody(body, content_type, None, options)
        )

    @staticmethod
    def _withBody(
        body: Text,
        content_type: Text | None,
        form: Mapping[str, Any] | None,
        options: dict[str, Any],
    ) -> dict[str, Any]:
        """Add a body and its content type to the options of :meth:`request`."""
        if form is not None:
            body = urlencode(form, doseq=True)
            content_type = content_type or b"application/x-www-form-urlencoded"
        if content_type is not None:
            headers = _headerList(options.get("headers"))
            headers.append((b"Content-Type", content_type))
            options["headers"] = headers
        options["body"] = body
        return options

    # Requests that may finish later.

    def start(
        self,
        method: Text,
        path: Text,
        *,
        headers: HeaderPairs | Headers | None = None,
        body: Text = b"",
        variables: VariableOverrides = (),
        cookies: Mapping[str, Text] | Mapping[bytes, Text] | None = None,
    ) -> PendingResponse:
        """Send a request on a new connection without waiting for its response.

        The parameters are those of :meth:`request`.

        :returns: the pending response; see :class:`PendingResponse`.
        :raises LocalProtocolError: for arguments no request can carry.
        :raises ConnectionRefusedError: if the site's ``allow`` list refuses the
            test frontend's address (127.0.0.1).
        """
        method_bytes = method if isinstance(method, bytes) else method.encode("ascii")
        payload = body if isinstance(body, bytes) else body.encode("utf-8")
        pairs = _headerList(headers)
        if cookies:
            pairs.append(
                (
                    b"Cookie",
                    b"; ".join(
                        _bytes(name) + b"=" + _bytes(value)
                        for name, value in cookies.items()
                    ),
                )
            )
        mount = self.mount if self.mount is not None else b""
        head = encode_request(
            method_bytes,
            path,
            pairs,
            [
                *self.variables,
                *(variables.items() if isinstance(variables, Mapping) else variables),
            ],
            len(payload),
            script_name=mount if self.send_script_name else None,
            secure=self.secure,
        )
        channel = self.site.buildProtocol(FRONTEND)
        if channel is None or isinstance(channel, RefusedConnection):
            raise ConnectionRefusedError("the site refused the test frontend's address")
        channel.callLater = self.clock.callLater
        pending = PendingResponse(
            channel, method_bytes, self.clock, head=head, body=payload
        )
        pending._connection.flush()
        return pending


def _bytes(value: Text) -> bytes:
    """Encode text as UTF-8."""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _headerList(headers: HeaderPairs | Headers | None) -> list[tuple[Text, Text]]:
    """Return request headers as a list of pairs."""
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return [
            (name, value)
            for name, values in headers.getAllRawHeaders()
            for value in values
        ]
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)
