"""Errors of ``hybridge.core.sip``.

Every error carries ``status_hint``: the SIP status a server would answer a request that
failed this way (a response that fails is dropped, RFC 3261 §18.1.2). The codec never sends
anything; the caller decides whether to answer and then closes the stream.

    SipError                        root of this package (a HybridgeError); status_hint
     ├── MalformedStartLineError    400  not "Method SP Request-URI SP SIP/2.0" or
     │                                   "SIP/2.0 SP 3DIGIT SP Reason"
     ├── MalformedHeaderError       400  a line that is not "name: value", a bare CR or LF,
     │                                   a continuation line with nothing to continue
     ├── InvalidHeaderValueError    400  a header the codec reads (Via, CSeq, To, ...) whose
     │                                   value does not match its grammar
     ├── MissingHeaderError         400  Via, From, To, Call-ID or CSeq absent
     ├── DuplicateHeaderError       400  a single-valued header (CSeq, Content-Length, ...)
     │                                   given twice
     ├── MissingContentLengthError  400  a stream message without Content-Length (§18.3)
     ├── CSeqMethodMismatchError    400  CSeq method differs from the request method
     ├── IncompleteMessageError     400  the peer closed the stream, or the datagram ended,
     │                                   inside a message
     ├── UnsupportedVersionError    505  a well-formed SIP version other than 2.0
     ├── BodyTooLargeError          413  Content-Length above the body limit
     ├── MessageTooLargeError       513  header section + body above the message limit
     ├── HeaderLineTooLongError     513  one line above the line limit
     ├── TooManyHeadersError        513  more header lines than the header-count limit
     └── StreamFailedError          data offered to a stream that already failed

SIP has no 431 (HTTP's "Request Header Fields Too Large"); 513 "Message Too Large"
(RFC 3261 §21.5.13: "the message length exceeded its capabilities") is the closest, so the
header-section limits use it. 494 (RFC 3329, Security Agreement Required) and 420 (Bad
Extension, about Require/Proxy-Require) are not about size or syntax and are never hinted.
"""

from __future__ import annotations

from hybridge.core.errors import HybridgeError


class SipError(HybridgeError):
    """Root of every error raised by ``hybridge.core.sip``.

    ``status_hint`` is the response status that fits a request failing this way.
    """

    status_hint: int = 400

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint


class MalformedStartLineError(SipError):
    """The request line or status line does not follow RFC 3261 §7.1 / §7.2."""


class MalformedHeaderError(SipError):
    """A header line is not ``name HCOLON value`` (RFC 3261 §7.3), or line ends are bare."""


class _NamedHeaderError(SipError):
    """An error about one named header; ``header`` is its canonical name."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header


class InvalidHeaderValueError(_NamedHeaderError):
    """A header the codec reads has a value its grammar (RFC 3261 §25.1) does not allow."""


class MissingHeaderError(_NamedHeaderError):
    """A header every request and response must carry (RFC 3261 §8.1.1) is absent."""


class DuplicateHeaderError(_NamedHeaderError):
    """A header that may appear once appears again (RFC 4475 §3.3.8, §3.3.9)."""


class MissingContentLengthError(SipError):
    """A message on a stream has no Content-Length (RFC 3261 §18.3: it MUST, on streams)."""


class CSeqMethodMismatchError(SipError):
    """The CSeq method is not the request method (RFC 3261 §8.1.1.5, RFC 4475 §3.1.2.17)."""


class IncompleteMessageError(SipError):
    """The input ended inside a message (RFC 3261 §18.3, RFC 4475 §3.1.2.2)."""


class UnsupportedVersionError(SipError):
    """A syntactically valid SIP version other than 2.0 (RFC 3261 §21.5.14: 505)."""

    status_hint = 505


class BodyTooLargeError(SipError):
    """Content-Length is above ``max_body_size`` (RFC 3261 §21.4.11: 413)."""

    status_hint = 413


class MessageTooLargeError(SipError):
    """The header section plus body is above ``max_message_size`` (RFC 3261 §21.5.13: 513)."""

    status_hint = 513


class HeaderLineTooLongError(SipError):
    """One line of the header section is above ``max_line_length`` (513, see module doc)."""

    status_hint = 513


class TooManyHeadersError(SipError):
    """The header section has more than ``max_header_count`` lines (513, see module doc)."""

    status_hint = 513


class StreamFailedError(SipError):
    """The stream failed earlier; it accepts nothing more. Close the connection.

    ``status_hint`` is that of the original error.
    """
