//! The handshake that runs on the exec channel before HTTP/2 starts.
//!
//! # Frame layout
//!
//! ```text
//! +-----------+----------+---------------+---------------+----------------------+
//! | len: u32  | magic[8] | major: u16 BE | minor: u16 BE | body (bincode 2)     |
//! | BE, bytes |"OCREMOTE"|               |               | standard config      |
//! | after len |          |               |               |                      |
//! +-----------+----------+---------------+---------------+----------------------+
//! ```
//!
//! The magic and the version sit outside bincode on purpose: a peer can always tell "not us" from
//! "us, but a version I do not speak", and refuse with a message naming both versions, even when
//! the body layout changed between versions.
//!
//! # Sequence
//!
//! 1. The local side writes a [`Hello`] frame to the stub's stdin.
//! 2. The stub writes [`SENTINEL`] and then a [`ServerHello`] frame ([`Welcome`] or [`Refusal`])
//!    to its stdout. Anything a login script printed before the stub started precedes the
//!    sentinel; the local side skips it (and reports it) while scanning for the sentinel.
//! 3. After a `Welcome`, both sides speak HTTP/2 (prior knowledge) on the same pipes.
//!
//! If the first bytes the stub reads are the HTTP/2 connection preface ([`H2_PREFACE`]) instead of
//! a frame, it skips the handshake entirely, which is what makes
//! `curl --http2-prior-knowledge` through `socat EXEC:` work for manual testing.
//!
//! Frames are bounded by [`MAX_FRAME_LEN`], checked before any allocation.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Identifies our frames. Never changes.
pub const MAGIC: [u8; 8] = *b"OCREMOTE";

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 0 };

/// Largest accepted frame body (everything after the length prefix), in bytes.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Bytes of the big-endian length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes of magic plus version that start every frame body.
const HEADER_LEN: usize = MAGIC.len() + 4;

/// Written by the stub right before its reply frame. It cannot be produced by a shell `echo` by
/// accident (it contains NUL and ESC) and cannot be mistaken for a frame length.
pub const SENTINEL: &[u8] = b"\x00\x1b[OPENCODE-REMOTE-STUB]\x00";

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A protocol version. Peers are compatible when their major versions are equal; minor versions
/// only add optional behaviour.
///
/// ```
/// use protocol::handshake::Version;
/// let v1_0 = Version { major: 1, minor: 0 };
/// let v1_3 = Version { major: 1, minor: 3 };
/// let v2_0 = Version { major: 2, minor: 0 };
/// assert!(v1_0.is_compatible_with(v1_3));
/// assert!(v1_3.is_compatible_with(v1_0));
/// assert!(!v1_0.is_compatible_with(v2_0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Compatible additions bump this.
    pub minor: u16,
}

impl Version {
    /// Whether a peer speaking `other` can talk to us.
    pub fn is_compatible_with(self, other: Version) -> bool {
        self.major == other.major
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// First frame, local side to stub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Version of the `opencode-remote` binary, e.g. `0.1.0`.
    pub client_version: String,
    /// OpenCode workspace id (`wrk_…`); empty for tools that are not tied to a workspace.
    pub workspace_id: String,
    /// The local OpenCode project id that sessions created on the host must carry.
    pub project_id: String,
    /// Working directory on the host; `None` means the remote user's home directory.
    pub directory: Option<String>,
    /// The host key fingerprint (`SHA256:…`) the local side verified against known_hosts.
    pub host_key_fingerprint: String,
}

/// Reply frame, stub to local side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerHello {
    /// The stub accepts the session; HTTP/2 follows.
    Welcome(Welcome),
    /// The stub refuses; it exits after writing this frame.
    Refusal(Refusal),
}

/// The stub's description of itself and of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Version of the stub binary.
    pub stub_version: String,
    /// `std::env::consts::OS` of the stub, e.g. `linux`.
    pub os: String,
    /// `std::env::consts::ARCH` of the stub, e.g. `x86_64`.
    pub arch: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Process id of the stub on the host.
    pub pid: u32,
    /// Home directory of the remote user.
    pub home: String,
    /// The working directory the stub resolved (absolute, symlinks followed).
    pub directory: String,
}

/// Why the stub refused a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Machine-readable reason.
    pub code: RefusalCode,
    /// Human-readable message; shown to the user as is.
    pub message: String,
    /// Version of the stub binary, so the local side can decide to reinstall.
    pub stub_version: String,
}

/// Machine-readable refusal reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    /// The major protocol versions differ.
    IncompatibleVersion,
    /// The hello frame could not be decoded.
    Malformed,
    /// The requested working directory does not exist or is not a directory.
    BadDirectory,
    /// Something went wrong on the host (state directory unusable, …).
    Internal,
}

/// A handshake frame body split into its fixed header and its bincode payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The sender's protocol version.
    pub version: Version,
    /// The bincode payload; decode it with [`decode_body`] once the version is known to be
    /// compatible.
    pub body: &'a [u8],
}

/// Errors from encoding or decoding handshake frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`] bytes.
    #[error("handshake frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
    },
    /// Fewer bytes than the frame needs.
    #[error("handshake frame truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The frame does not start with [`MAGIC`].
    #[error("not an opencode-remote handshake frame (bad magic {found:02x?})")]
    BadMagic {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// The peer speaks an incompatible major version.
    #[error("incompatible protocol versions: peer speaks {peer}, this side speaks {ours}")]
    IncompatibleVersion {
        /// The peer's version.
        peer: Version,
        /// Our version.
        ours: Version,
    },
    /// The payload is not a valid message.
    #[error("malformed handshake payload")]
    Malformed(#[source] bincode::error::DecodeError),
    /// The payload has bytes after the message.
    #[error("handshake payload has {0} trailing bytes")]
    TrailingBytes(usize),
    /// The message could not be encoded.
    #[error("cannot encode handshake message")]
    Encode(#[source] bincode::error::EncodeError),
    /// Reading or writing the channel failed.
    #[error("handshake i/o failed")]
    Io(#[from] std::io::Error),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Encodes `message` into a complete frame, length prefix included, at [`PROTOCOL_VERSION`].
///
/// # Errors
///
/// [`HandshakeError::Encode`] if serialization fails and [`HandshakeError::FrameTooLarge`] if
/// the result would exceed [`MAX_FRAME_LEN`].
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, HandshakeError> {
    encode_with_version(message, PROTOCOL_VERSION)
}

/// Like [`encode`], with an explicit version (tests and future downgrade paths).
///
/// # Errors
///
/// As for [`encode`].
pub fn encode_with_version<T: Serialize>(
    message: &T,
    version: Version,
) -> Result<Vec<u8>, HandshakeError> {
    let body =
        bincode::serde::encode_to_vec(message, bincode_config()).map_err(HandshakeError::Encode)?;
    let len = HEADER_LEN + body.len();
    if len > MAX_FRAME_LEN {
        return Err(HandshakeError::FrameTooLarge { len });
    }
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_LEN + len);
    // `len <= MAX_FRAME_LEN` fits in u32.
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&version.major.to_be_bytes());
    frame.extend_from_slice(&version.minor.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads a length prefix and checks it against [`MAX_FRAME_LEN`] without allocating.
///
/// # Errors
///
/// [`HandshakeError::FrameTooLarge`] for oversized announcements.
pub fn frame_len(prefix: [u8; LENGTH_PREFIX_LEN]) -> Result<usize, HandshakeError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(HandshakeError::FrameTooLarge { len });
    }
    Ok(len)
}

/// Splits a frame body (the bytes after the length prefix) into version and payload.
///
/// # Errors
///
/// [`HandshakeError::Truncated`] and [`HandshakeError::BadMagic`].
pub fn parse_frame(body: &[u8]) -> Result<Frame<'_>, HandshakeError> {
    let Some((header, payload)) = body.split_at_checked(HEADER_LEN) else {
        return Err(HandshakeError::Truncated {
            needed: HEADER_LEN,
            available: body.len(),
        });
    };
    let (magic, version) = header.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic {
            found: magic.to_vec(),
        });
    }
    let (Some(major), Some(minor)) = (version.first_chunk::<2>(), version.last_chunk::<2>()) else {
        return Err(HandshakeError::Truncated {
            needed: HEADER_LEN,
            available: body.len(),
        });
    };
    let version = Version {
        major: u16::from_be_bytes(*major),
        minor: u16::from_be_bytes(*minor),
    };
    Ok(Frame {
        version,
        body: payload,
    })
}

/// Decodes a bincode payload, rejecting trailing bytes.
///
/// # Errors
///
/// [`HandshakeError::Malformed`] and [`HandshakeError::TrailingBytes`].
pub fn decode_body<T: DeserializeOwned>(payload: &[u8]) -> Result<T, HandshakeError> {
    let (message, used) = bincode::serde::decode_from_slice(payload, bincode_config())
        .map_err(HandshakeError::Malformed)?;
    if used != payload.len() {
        return Err(HandshakeError::TrailingBytes(payload.len() - used));
    }
    Ok(message)
}

/// Decodes one complete frame (length prefix included) produced by [`encode`], requiring a
/// version compatible with ours and no bytes after the frame.
///
/// # Errors
///
/// Any [`HandshakeError`] describing what is wrong with the bytes.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, HandshakeError> {
    let Some((prefix, rest)) = frame.split_first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Err(HandshakeError::Truncated {
            needed: LENGTH_PREFIX_LEN,
            available: frame.len(),
        });
    };
    let len = frame_len(*prefix)?;
    if rest.len() < len {
        return Err(HandshakeError::Truncated {
            needed: len,
            available: rest.len(),
        });
    }
    if rest.len() > len {
        return Err(HandshakeError::TrailingBytes(rest.len() - len));
    }
    let frame = parse_frame(rest)?;
    if !PROTOCOL_VERSION.is_compatible_with(frame.version) {
        return Err(HandshakeError::IncompatibleVersion {
            peer: frame.version,
            ours: PROTOCOL_VERSION,
        });
    }
    decode_body(frame.body)
}

#[cfg(feature = "codec")]
pub use codec::FrameCodec;

#[cfg(feature = "codec")]
mod codec {
    use super::{HandshakeError, LENGTH_PREFIX_LEN, frame_len};
    use bytes::{Buf, BytesMut};
    use tokio_util::codec::Decoder;

    /// Splits a byte stream into raw frame bodies (length prefix removed), enforcing
    /// [`super::MAX_FRAME_LEN`] before reserving any memory. Parse the bodies with
    /// [`super::parse_frame`].
    #[derive(Debug, Default, Clone, Copy)]
    pub struct FrameCodec;

    impl Decoder for FrameCodec {
        type Item = BytesMut;
        type Error = HandshakeError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, HandshakeError> {
            let Some(prefix) = src.first_chunk::<LENGTH_PREFIX_LEN>() else {
                return Ok(None);
            };
            let len = frame_len(*prefix)?;
            if src.len() < LENGTH_PREFIX_LEN + len {
                src.reserve(LENGTH_PREFIX_LEN + len - src.len());
                return Ok(None);
            }
            src.advance(LENGTH_PREFIX_LEN);
            Ok(Some(src.split_to(len)))
        }

        fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, HandshakeError> {
            match self.decode(src)? {
                Some(frame) => Ok(Some(frame)),
                None if src.is_empty() => Ok(None),
                None => {
                    let needed = match src.first_chunk::<LENGTH_PREFIX_LEN>() {
                        Some(prefix) => LENGTH_PREFIX_LEN + frame_len(*prefix)?,
                        None => LENGTH_PREFIX_LEN,
                    };
                    Err(HandshakeError::Truncated {
                        needed,
                        available: src.len(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            client_version: "0.1.0".into(),
            workspace_id: "wrk_1".into(),
            project_id: "p".into(),
            directory: Some("/srv".into()),
            host_key_fingerprint: "SHA256:x".into(),
        }
    }

    #[test]
    fn hello_should_encode_to_golden_bytes() {
        let bytes = encode(&hello()).unwrap();
        let expected: Vec<u8> = [
            &[0, 0, 0, 41][..],
            b"OCREMOTE",
            &[0, 1, 0, 0],
            &[5],
            b"0.1.0",
            &[5],
            b"wrk_1",
            &[1],
            b"p",
            &[1, 4],
            b"/srv",
            &[8],
            b"SHA256:x",
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode::<Hello>(&bytes).unwrap(), hello());
    }

    #[test]
    fn welcome_should_round_trip_and_keep_its_variant_tag() {
        let welcome = ServerHello::Welcome(Welcome {
            stub_version: "0.1.0".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            kernel: "3.10.0".into(),
            pid: 300,
            home: "/home/u".into(),
            directory: "/home/u".into(),
        });
        let bytes = encode(&welcome).unwrap();
        // Variant index 0 follows the 12-byte header; 300 is a varint (251, 44, 1).
        assert_eq!(bytes[16], 0);
        assert!(bytes.windows(3).any(|w| w == [251, 44, 1]));
        assert_eq!(decode::<ServerHello>(&bytes).unwrap(), welcome);
    }

    #[test]
    fn decode_should_refuse_oversized_length_before_reading_body() {
        let err = decode::<Hello>(&[0, 1, 0, 1]).unwrap_err();
        assert!(
            matches!(err, HandshakeError::FrameTooLarge { len: 65537 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "handshake frame of 65537 bytes exceeds the limit of 65536 bytes"
        );
    }

    #[test]
    fn decode_should_report_truncated_frames() {
        let bytes = encode(&hello()).unwrap();
        for cut in [0, 3, 4, 10, bytes.len() - 1] {
            let err = decode::<Hello>(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, HandshakeError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn decode_should_refuse_wrong_magic() {
        let mut bytes = encode(&hello()).unwrap();
        bytes[4..12].copy_from_slice(b"SSH-2.0-");
        let err = decode::<Hello>(&bytes).unwrap_err();
        assert!(matches!(err, HandshakeError::BadMagic { .. }), "{err}");
    }

    #[test]
    fn decode_should_name_both_versions_when_incompatible() {
        let bytes = encode_with_version(&hello(), Version { major: 2, minor: 5 }).unwrap();
        let err = decode::<Hello>(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "incompatible protocol versions: peer speaks 2.5, this side speaks 1.0"
        );
        // A newer minor version is fine.
        let bytes = encode_with_version(&hello(), Version { major: 1, minor: 9 }).unwrap();
        assert_eq!(decode::<Hello>(&bytes).unwrap(), hello());
    }

    #[test]
    fn decode_should_refuse_garbage_payload_and_trailing_bytes() {
        let mut bytes = encode(&hello()).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Hello>(&bytes),
            Err(HandshakeError::TrailingBytes(1))
        ));

        let mut frame = vec![0, 0, 0, 17];
        frame.extend_from_slice(&MAGIC);
        frame.extend_from_slice(&[0, 1, 0, 0]);
        frame.extend_from_slice(&[200, 255, 255, 255, 255]);
        assert!(matches!(
            decode::<Hello>(&frame),
            Err(HandshakeError::Malformed(_))
        ));
    }

    #[test]
    fn preface_should_not_parse_as_a_frame_length() {
        // The stub tells a frame from the HTTP/2 preface by its first four bytes.
        let prefix: [u8; 4] = H2_PREFACE[..4].try_into().unwrap();
        assert!(frame_len(prefix).is_err());
    }

    #[cfg(feature = "codec")]
    #[test]
    fn codec_should_wait_for_whole_frames_and_cap_size() {
        use bytes::BytesMut;
        use tokio_util::codec::Decoder;
        let bytes = encode(&hello()).unwrap();
        let mut codec = FrameCodec;
        let mut buf = BytesMut::from(&bytes[..10]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&bytes[10..]);
        let body = codec.decode(&mut buf).unwrap().unwrap();
        let frame = parse_frame(&body).unwrap();
        assert_eq!(decode_body::<Hello>(frame.body).unwrap(), hello());

        let mut huge = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(HandshakeError::FrameTooLarge { .. })
        ));
        assert!(huge.capacity() < 1024);

        let mut partial = BytesMut::from(&bytes[..7]);
        assert!(matches!(
            codec.decode_eof(&mut partial),
            Err(HandshakeError::Truncated { .. })
        ));
    }
}
