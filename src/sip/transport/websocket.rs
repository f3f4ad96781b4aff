//! SIP over WebSocket (RFC 7118) on a stream connection: the opening handshake (RFC 6455 §4,
//! with the `sip` subprotocol and the Origin policy) and the framing of each SIP message in
//! one WebSocket message, both ways.
//!
//! The driver keeps the bytes; this module only turns them over. Input is what the
//! connection read (plain TCP, or what TLS decrypted for `wss`); output is bytes for the
//! connection to write. The framing itself is tungstenite's ([`WebSocketContext`], which
//! answers pings and close frames itself); the handshake is read with httparse and answered
//! here, because the driver owns the socket and tungstenite's own handshake wants to.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

/// The subprotocol of RFC 7118 §4.
pub const SUBPROTOCOL: &str = "sip";

/// The largest opening handshake read; a longer one is refused (`431`).
const MAX_HANDSHAKE: usize = 8 << 10;

/// Which pages may open WebSockets: the `Origin` header a browser sends (RFC 6455 §10.2). A
/// client that sends none (a softphone, not a browser page) is not asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// Origins allowed besides the server's own (`https://phone.example.test`, compared
    /// without regard to case); `*` allows every origin.
    pub allowed: Vec<String>,
}

impl OriginPolicy {
    /// Whether a page of `origin` may connect to a server the page reached as `host` (its
    /// `Host` header): the same host and port, or an allowed origin.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim();
        if self
            .allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        // The page's own server: the origin's authority is the Host it connected to.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()))
    }
}

/// Reads an allowed origin as configured: `*`, or a web origin as a browser sends it
/// (`https://host[:port]`, no path), without a trailing `/`.
pub fn parse_origin(text: &str) -> crate::error::Result<String> {
    let value = text.trim().trim_end_matches('/');
    let good = value == "*"
        || value.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', ' ', '?', '#', '@'])
        });
    if good {
        Ok(value.to_string())
    } else {
        Err(crate::error::Error::InvalidArgument(format!(
            "'{text}' is not a web origin (https://host[:port], or *)"
        )))
    }
}

/// A handshake refused: the HTTP answer sent before the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// Why, for the answer's reason phrase and the log.
    pub reason: &'static str,
}

impl Refusal {
    fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal { status, reason }
    }

    /// The HTTP response saying so.
    pub fn response(&self) -> Vec<u8> {
        let extra = match self.status {
            426 => "Sec-WebSocket-Version: 13\r\n",
            _ => "",
        };
        format!(
            "HTTP/1.1 {} {}\r\n{extra}Connection: close\r\nContent-Length: 0\r\n\r\n",
            self.status, self.reason
        )
        .into_bytes()
    }
}

/// Reads an opening handshake from the start of `buf`: `Ok(None)` while it is incomplete,
/// `Ok(Some((length, answer)))` when it is accepted (the `101` answer; the WebSocket starts
/// after `length` bytes), `Err` when it is refused.
pub fn accept(buf: &[u8], origins: &OriginPolicy) -> Result<Option<(usize, Vec<u8>)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HANDSHAKE => {
            return Err(Refusal::new(431, "Request Header Fields Too Large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(431, "Request Header Fields Too Large"))
        }
        Err(_) => return Err(Refusal::new(400, "Bad Request (not a WebSocket handshake)")),
    };
    if length > MAX_HANDSHAKE {
        return Err(Refusal::new(431, "Request Header Fields Too Large"));
    }
    if request.method != Some("GET") || request.version != Some(1) {
        return Err(Refusal::new(400, "Bad Request (not a WebSocket handshake)"));
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect::<Vec<&str>>()
    };
    let has_token = |name: &str, token: &str| {
        header(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("Upgrade", "websocket") || !has_token("Connection", "upgrade") {
        return Err(Refusal::new(400, "Bad Request (not a WebSocket handshake)"));
    }
    if header("Sec-WebSocket-Version").first().map(|v| v.trim()) != Some("13") {
        return Err(Refusal::new(426, "Upgrade Required"));
    }
    let key = match header("Sec-WebSocket-Key").as_slice() {
        [key] if key.trim().len() == 24 => key.trim().to_string(),
        _ => return Err(Refusal::new(400, "Bad Request (Sec-WebSocket-Key)")),
    };
    if !has_token("Sec-WebSocket-Protocol", SUBPROTOCOL) {
        return Err(Refusal::new(
            400,
            "Bad Request (the sip subprotocol is required)",
        ));
    }
    let origins_given = header("Origin");
    if let Some(origin) = origins_given.first() {
        let host = header("Host").first().copied();
        if origins_given.len() > 1 || !origins.allows(origin, host) {
            return Err(Refusal::new(403, "Forbidden (origin not allowed)"));
        }
    }
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    Ok(Some((length, answer.into_bytes())))
}

/// The two sides of a connection as tungstenite sees them: reads come from the bytes the
/// connection read (then "would block"), writes go to the bytes it will write.
struct Pipe<'a> {
    input: &'a [u8],
    output: &'a mut Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.input.read(buf)?;
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a WebSocket gave from the bytes read.
#[derive(Debug, Default)]
pub struct Received {
    /// Each data message (text or binary), whole.
    pub messages: Vec<Vec<u8>>,
    /// Bytes to write (pongs, the answer to a close).
    pub output: Vec<u8>,
    /// The connection is to close once `output` is written, and why.
    pub closed: Option<String>,
}

/// An open WebSocket on a connection (after the handshake).
pub struct Session {
    context: WebSocketContext,
}

impl Session {
    /// A server's WebSocket taking messages of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Session {
        let config = WebSocketConfig::default()
            // Input is handed over from the connection's own buffer: a small chunk is
            // enough, and an idle connection keeps this much.
            .read_buffer_size(1024)
            // Each frame goes out at once (into the connection's queue).
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        Session {
            context: WebSocketContext::new(Role::Server, Some(config)),
        }
    }

    /// Takes the bytes `input` (all of them: what does not make a whole frame yet is kept).
    pub fn receive(&mut self, input: &[u8]) -> Received {
        let mut received = Received::default();
        let mut pipe = Pipe {
            input,
            output: &mut received.output,
        };
        loop {
            match self.context.read(&mut pipe) {
                Ok(Message::Text(text)) => received.messages.push(text.as_bytes().to_vec()),
                Ok(Message::Binary(data)) => received.messages.push(data.to_vec()),
                Ok(Message::Close(_)) => {
                    // The answer is queued; the next read says the socket may close.
                    let _ = self.context.flush(&mut pipe);
                    received.closed = Some("closed by peer (WebSocket close)".into());
                    break;
                }
                Ok(_) => {} // pings (answered by the context) and pongs
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = self.context.flush(&mut pipe);
                    break;
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    received.closed = Some("closed by peer (WebSocket close)".into());
                    break;
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    self.close_with(&mut pipe, CloseCode::Size, "message too large");
                    received.closed = Some(format!("WebSocket: {e}"));
                    break;
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    self.close_with(&mut pipe, CloseCode::Invalid, "text is not UTF-8");
                    received.closed = Some("WebSocket: text frame not UTF-8".into());
                    break;
                }
                Err(e) => {
                    self.close_with(&mut pipe, CloseCode::Protocol, "protocol error");
                    received.closed = Some(format!("WebSocket: {e}"));
                    break;
                }
            }
        }
        received
    }

    /// The frame carrying one SIP message: text when it is UTF-8, else binary (RFC 7118 §5.1).
    pub fn frame(&mut self, message: &[u8]) -> io::Result<Vec<u8>> {
        let mut output = Vec::with_capacity(message.len() + 10);
        let mut pipe = Pipe {
            input: &[],
            output: &mut output,
        };
        let message = match std::str::from_utf8(message) {
            Ok(text) => Message::text(text),
            Err(_) => Message::binary(message.to_vec()),
        };
        self.context
            .write(&mut pipe, message)
            .and_then(|()| self.context.flush(&mut pipe))
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(output)
    }

    /// Bytes of a close frame with `code` and `reason`, to write before the connection
    /// closes (a SIP layer's refusal of what the peer sent).
    pub fn close(&mut self, code: u16, reason: &str) -> Vec<u8> {
        let mut output = Vec::new();
        let mut pipe = Pipe {
            input: &[],
            output: &mut output,
        };
        self.close_with(&mut pipe, CloseCode::from(code), reason);
        output
    }

    fn close_with(&mut self, pipe: &mut Pipe<'_>, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        let _ = self.context.close(pipe, Some(frame));
        let _ = self.context.flush(pipe);
    }
}

/// The SIP message inside a frame this module made ([`Session::frame`]: a server's frames
/// are not masked), for reporting a message that could not be sent.
pub fn payload(frame: &[u8]) -> &[u8] {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        Some(_) => 2,
        None => return frame,
    };
    frame.get(header..).unwrap_or(frame)
}

/// Whether a WebSocket message can be a SIP message: its first line is a request line
/// (`METHOD URI SIP/2.0`) or a status line (`SIP/2.0 ...`); or keep-alive CRLFs.
pub fn looks_like_sip(message: &[u8]) -> bool {
    let line = message.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.starts_with(b"SIP/2.0 ") || (line.ends_with(b" SIP/2.0") && line.contains(&b' '))
}

/// Whether a WebSocket message is only CRLFs (the keep-alive some clients send as a
/// message), and whether it asks for an answer (a double CRLF, RFC 5626 §4.4.1).
pub fn keep_alive(message: &[u8]) -> Option<bool> {
    if message.is_empty() || !message.iter().all(|&b| b == b'\r' || b == b'\n') {
        return None;
    }
    Some(message.windows(4).any(|w| w == b"\r\n\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn handshake(extra: &str) -> String {
        format!(
            "GET / HTTP/1.1\r\nHost: sip.example.test:8080\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn accepts_a_sip_handshake_with_the_rfc_6455_accept_key() {
        let h = handshake("Sec-WebSocket-Protocol: chat, sip\r\n");
        let (n, answer) = accept(h.as_bytes(), &OriginPolicy::default())
            .unwrap()
            .unwrap();
        assert_eq!(n, h.len());
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
        // RFC 6455 §1.3's example.
        assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(answer.contains("Sec-WebSocket-Protocol: sip\r\n"));
    }

    #[test]
    fn waits_for_the_rest_of_a_handshake_and_bounds_it() {
        let h = handshake("Sec-WebSocket-Protocol: sip\r\n");
        assert_eq!(
            accept(&h.as_bytes()[..40], &OriginPolicy::default()),
            Ok(None)
        );
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HANDSHAKE));
        assert_eq!(
            accept(long.as_bytes(), &OriginPolicy::default())
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn refuses_what_is_not_a_sip_websocket() {
        let policy = OriginPolicy::default();
        let status = |text: &str| accept(text.as_bytes(), &policy).unwrap_err().status;
        assert_eq!(status("REGISTER sip:x SIP/2.0\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status(&handshake("")), 400, "no subprotocol");
        assert_eq!(status(&handshake("Sec-WebSocket-Protocol: chat\r\n")), 400);
        let old = handshake("Sec-WebSocket-Protocol: sip\r\n").replace("Version: 13", "Version: 8");
        let refusal = accept(old.as_bytes(), &policy).unwrap_err();
        assert_eq!(refusal.status, 426);
        assert!(String::from_utf8(refusal.response())
            .unwrap()
            .contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn configured_origins_are_checked() {
        assert_eq!(parse_origin("https://a.test/").unwrap(), "https://a.test");
        assert_eq!(
            parse_origin("http://a.test:8080").unwrap(),
            "http://a.test:8080"
        );
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in [
            "a.test",
            "ftp://a.test",
            "https://",
            "https://a.test/x",
            "https://u@a.test",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_the_servers_own_or_allowed() {
        let sip = "Sec-WebSocket-Protocol: sip\r\n";
        let with = |origin: &str| handshake(&format!("{sip}Origin: {origin}\r\n"));
        let none = OriginPolicy::default();
        assert!(accept(with("https://sip.example.test:8080").as_bytes(), &none).is_ok());
        assert_eq!(
            accept(with("https://evil.test").as_bytes(), &none)
                .unwrap_err()
                .status,
            403
        );
        let listed = OriginPolicy {
            allowed: vec!["https://evil.test".into()],
        };
        assert!(accept(with("https://EVIL.test").as_bytes(), &listed).is_ok());
        let any = OriginPolicy {
            allowed: vec!["*".into()],
        };
        assert!(accept(with("null").as_bytes(), &any).is_ok());
        // No Origin: not a browser.
        assert!(accept(handshake(sip).as_bytes(), &none).is_ok());
    }

    /// A client's masked frame, as a browser sends it.
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    #[test]
    fn messages_come_whole_across_reads_and_pings_are_answered() {
        let mut s = Session::new(65536);
        let sip = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let mut bytes = client_frame(1, sip);
        bytes.extend(client_frame(9, b"hi"));
        bytes.extend(client_frame(2, sip));
        let (a, b) = bytes.split_at(10);
        assert!(s.receive(a).messages.is_empty());
        let r = s.receive(b);
        assert_eq!(r.messages, vec![sip.to_vec(), sip.to_vec()]);
        assert_eq!(r.output, [0x8a, 2, b'h', b'i'], "the pong");
        assert!(r.closed.is_none());
    }

    /// A client's masked frame with the FIN bit as given.
    fn fragment(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = client_frame(opcode, payload);
        if !fin {
            f[0] &= 0x7f;
        }
        f
    }

    #[test]
    fn a_fragmented_message_is_one_sip_message_within_the_bound() {
        let sip = b"MESSAGE sip:a@x SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
        let mut s = Session::new(100);
        let mut bytes = fragment(false, 1, &sip[..10]);
        bytes.extend(client_frame(9, b"p")); // a ping may come between fragments
        bytes.extend(fragment(false, 0, &sip[10..30]));
        bytes.extend(fragment(true, 0, &sip[30..]));
        let r = s.receive(&bytes);
        assert_eq!(r.messages, vec![sip.to_vec()]);
        assert!(r.closed.is_none());
        // Fragments adding up past the bound close the WebSocket (1009), whatever each one's
        // size.
        let mut s = Session::new(100);
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend(fragment(
                false,
                if bytes.is_empty() { 1 } else { 0 },
                &[b'a'; 40],
            ));
        }
        let r = s.receive(&bytes);
        assert!(r.messages.is_empty());
        assert!(r.closed.is_some());
        assert_eq!(&r.output[2..4], &[0x03, 0xf1], "1009");
        // A continuation with no message begun is a protocol error (1002).
        let mut s = Session::new(100);
        let r = s.receive(&fragment(true, 0, b"x"));
        assert!(r.closed.is_some());
        assert_eq!(&r.output[2..4], &[0x03, 0xea], "1002");
    }

    #[test]
    fn oversized_unmasked_and_closing_frames_close_with_the_right_code() {
        let mut s = Session::new(100);
        let r = s.receive(&client_frame(1, &[b'a'; 200]));
        assert!(r.closed.is_some());
        assert_eq!(&r.output[..4], &[0x88, r.output[1], 0x03, 0xf1], "1009");

        let mut s = Session::new(100);
        let r = s.receive(&[0x81, 2, b'h', b'i']);
        assert!(r.closed.is_some(), "unmasked");
        assert_eq!(&r.output[2..4], &[0x03, 0xea], "1002");

        let mut s = Session::new(100);
        let r = s.receive(&client_frame(8, &[0x03, 0xe8]));
        assert!(r.closed.is_some());
        assert_eq!(r.output[0], 0x88, "the close is answered");
    }

    #[test]
    fn frames_go_out_unmasked_and_give_their_payload_back() {
        let mut s = Session::new(1 << 20);
        for size in [10, 300, 70_000] {
            let sip = vec![b'a'; size];
            let frame = s.frame(&sip).unwrap();
            assert_eq!(frame[0], 0x81, "a final text frame");
            assert_eq!(payload(&frame), &sip[..]);
        }
        assert_eq!(s.frame(&[0xff, 0xfe]).unwrap()[0], 0x82, "binary");
    }

    #[test]
    fn tells_sip_and_keep_alives_from_other_data() {
        assert!(looks_like_sip(b"REGISTER sip:x SIP/2.0\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
        assert!(!looks_like_sip(b"{\"hello\": 1}"));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\n"));
        assert_eq!(keep_alive(b"\r\n\r\n"), Some(true));
        assert_eq!(keep_alive(b"\r\n"), Some(false));
        assert_eq!(keep_alive(b"x\r\n"), None);
    }
}
