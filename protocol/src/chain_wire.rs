//! The chain's API over libp2p: protocol `/cairn/chain/1`.
//!
//! One request and one response per stream, each a frame:
//!
//! ```text
//! u32 big-endian length │ postcard message (ChainApiRequest or ChainApiResponse)
//! ```
//!
//! A request is an HTTP request in miniature (method, path with query,
//! body) and a response an HTTP response (status, content type, body): a
//! validator runs each request through the same routes as its HTTP API
//! (`/chain/...`, docs/chain.md), so both transports answer alike by
//! construction. The length is checked against [`MAX_REQUEST_FRAME`] or
//! [`MAX_RESPONSE_FRAME`] before a byte of the message is read.
//!
//! A new incompatible version gets a new protocol name (`/cairn/chain/2`).

use serde::{Deserialize, Serialize};

use crate::chain::MAX_TX_BYTES;

/// The libp2p protocol name of this message set.
pub const CHAIN_PROTOCOL: &str = "/cairn/chain/1";
/// Longest path (with its query string), in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Every path starts with this.
pub const PATH_PREFIX: &str = "/chain/";
/// Largest request body: the HTTP API's own limit (a hex-encoded largest
/// transaction in JSON).
pub const MAX_REQUEST_BODY: usize = 2 * MAX_TX_BYTES + 1024;
/// Largest response body.
pub const MAX_RESPONSE_BODY: usize = 16 << 20;
/// Longest content type, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 64;
/// Room for postcard's tags and length varints.
const FRAME_SLACK: usize = 64;
/// Largest request frame (without the length prefix).
pub const MAX_REQUEST_FRAME: usize = MAX_PATH_LEN + MAX_REQUEST_BODY + FRAME_SLACK;
/// Largest response frame (without the length prefix).
pub const MAX_RESPONSE_FRAME: usize = MAX_CONTENT_TYPE_LEN + MAX_RESPONSE_BODY + FRAME_SLACK;

/// The HTTP method of a request; the API has only these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainMethod {
    Get,
    Post,
}

impl ChainMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// One API request: what an HTTP client would send, minus headers. A body
/// is raw (for `POST /chain/tx`, the encoded signed transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainApiRequest {
    pub method: ChainMethod,
    /// `/chain/...`, with an optional `?query`.
    pub path: String,
    pub body: Vec<u8>,
}

/// One API answer: the HTTP status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainApiResponse {
    pub status: u16,
    /// Empty when the answer has none.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Why a message is out of bounds or does not decode.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChainWireError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong { len: usize, max: usize },
    #[error("message does not decode: {0}")]
    Decode(String),
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
    #[error("path must start with {PATH_PREFIX}")]
    PathOutside,
    #[error("path of {0} bytes exceeds the limit of {MAX_PATH_LEN}")]
    PathTooLong(usize),
    #[error("path may hold only visible ASCII characters")]
    PathCharacters,
    #[error("body of {len} bytes exceeds the limit of {max}")]
    BodyTooLarge { len: usize, max: usize },
    #[error("content type must be at most {MAX_CONTENT_TYPE_LEN} visible ASCII characters")]
    ContentType,
    #[error("status {0} is not an HTTP status")]
    Status(u16),
}

impl ChainApiRequest {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: ChainMethod::Get,
            path: path.into(),
            body: Vec::new(),
        }
    }

    /// Whether the request is within the protocol's bounds.
    pub fn check(&self) -> Result<(), ChainWireError> {
        if self.path.len() > MAX_PATH_LEN {
            return Err(ChainWireError::PathTooLong(self.path.len()));
        }
        if !self.path.starts_with(PATH_PREFIX) {
            return Err(ChainWireError::PathOutside);
        }
        if !self.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ChainWireError::PathCharacters);
        }
        if self.body.len() > MAX_REQUEST_BODY {
            return Err(ChainWireError::BodyTooLarge {
                len: self.body.len(),
                max: MAX_REQUEST_BODY,
            });
        }
        Ok(())
    }

    /// The frame, length prefix included; refuses a request out of bounds.
    pub fn encode(&self) -> Result<Vec<u8>, ChainWireError> {
        self.check()?;
        Ok(frame(self))
    }

    /// Decodes a frame's message (without its prefix) and checks it.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChainWireError> {
        let request: Self = decode(bytes, MAX_REQUEST_FRAME)?;
        request.check()?;
        Ok(request)
    }
}

impl ChainApiResponse {
    /// Whether the response is within the protocol's bounds.
    pub fn check(&self) -> Result<(), ChainWireError> {
        if !(100..=599).contains(&self.status) {
            return Err(ChainWireError::Status(self.status));
        }
        if self.content_type.len() > MAX_CONTENT_TYPE_LEN
            || !self
                .content_type
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(ChainWireError::ContentType);
        }
        if self.body.len() > MAX_RESPONSE_BODY {
            return Err(ChainWireError::BodyTooLarge {
                len: self.body.len(),
                max: MAX_RESPONSE_BODY,
            });
        }
        Ok(())
    }

    /// The frame, length prefix included; refuses a response out of bounds.
    pub fn encode(&self) -> Result<Vec<u8>, ChainWireError> {
        self.check()?;
        Ok(frame(self))
    }

    /// Decodes a frame's message (without its prefix) and checks it.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChainWireError> {
        let response: Self = decode(bytes, MAX_RESPONSE_FRAME)?;
        response.check()?;
        Ok(response)
    }
}

/// Checks a length prefix against `max` (one of [`MAX_REQUEST_FRAME`],
/// [`MAX_RESPONSE_FRAME`]) before the message is read.
pub fn check_frame_len(prefix: [u8; 4], max: usize) -> Result<usize, ChainWireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(ChainWireError::FrameTooLong { len, max });
    }
    Ok(len)
}

fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail; the checks above
    // bound the length well inside u32.
    let body = postcard::to_allocvec(message).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], max: usize) -> Result<T, ChainWireError> {
    if bytes.len() > max {
        return Err(ChainWireError::FrameTooLong {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| ChainWireError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ChainWireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The message of a frame, checking its prefix.
    fn message(frame: &[u8], max: usize) -> &[u8] {
        let len = check_frame_len(frame[..4].try_into().unwrap(), max).unwrap();
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    proptest! {
        #[test]
        fn requests_round_trip(
            post in any::<bool>(),
            tail in "[a-z0-9/?=&]{0,200}",
            body in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let request = ChainApiRequest {
                method: if post { ChainMethod::Post } else { ChainMethod::Get },
                path: format!("/chain/{tail}"),
                body,
            };
            let frame = request.encode().unwrap();
            prop_assert_eq!(ChainApiRequest::decode(message(&frame, MAX_REQUEST_FRAME)).unwrap(), request);
        }

        #[test]
        fn responses_round_trip(
            status in 100u16..600,
            content_type in "[a-z/+; =-]{0,64}",
            body in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let response = ChainApiResponse { status, content_type, body };
            let frame = response.encode().unwrap();
            prop_assert_eq!(ChainApiResponse::decode(message(&frame, MAX_RESPONSE_FRAME)).unwrap(), response);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ChainApiRequest::decode(&bytes);
            let _ = ChainApiResponse::decode(&bytes);
        }
    }

    #[test]
    fn out_of_bounds_and_garbage_are_refused() {
        let ok = ChainApiRequest::get("/chain/status");
        assert!(ok.check().is_ok());
        for (path, want) in [
            ("/status", ChainWireError::PathOutside),
            ("/chainy/status", ChainWireError::PathOutside),
            ("/chain/a b", ChainWireError::PathCharacters),
            ("/chain/\n", ChainWireError::PathCharacters),
        ] {
            assert_eq!(ChainApiRequest::get(path).encode(), Err(want), "{path}");
        }
        let long = format!("/chain/{}", "a".repeat(MAX_PATH_LEN));
        assert!(matches!(
            ChainApiRequest::get(long).check(),
            Err(ChainWireError::PathTooLong(_))
        ));
        let big = ChainApiRequest {
            method: ChainMethod::Post,
            path: "/chain/tx".into(),
            body: vec![0; MAX_REQUEST_BODY + 1],
        };
        assert!(matches!(
            big.check(),
            Err(ChainWireError::BodyTooLarge { .. })
        ));
        // A hand-made oversized message is refused on decode, too.
        let raw = postcard::to_allocvec(&big).unwrap();
        assert!(ChainApiRequest::decode(&raw).is_err());
        assert!(matches!(
            check_frame_len(u32::MAX.to_be_bytes(), MAX_REQUEST_FRAME),
            Err(ChainWireError::FrameTooLong { .. })
        ));
        assert!(check_frame_len(
            ((MAX_RESPONSE_FRAME + 1) as u32).to_be_bytes(),
            MAX_RESPONSE_FRAME
        )
        .is_err());

        let bad_responses = [
            ChainApiResponse {
                status: 42,
                content_type: String::new(),
                body: Vec::new(),
            },
            ChainApiResponse {
                status: 200,
                content_type: "x".repeat(MAX_CONTENT_TYPE_LEN + 1),
                body: Vec::new(),
            },
            ChainApiResponse {
                status: 200,
                content_type: "text/plain\r\nX-Evil: 1".into(),
                body: Vec::new(),
            },
        ];
        for r in bad_responses {
            assert!(r.encode().is_err(), "{r:?}");
            let raw = postcard::to_allocvec(&r).unwrap();
            assert!(ChainApiResponse::decode(&raw).is_err(), "{r:?}");
        }

        // Garbage, truncation, trailing bytes, a huge declared length.
        let frame = ok.encode().unwrap();
        let m = &frame[4..];
        assert!(ChainApiRequest::decode(&m[..m.len() - 1]).is_err());
        let mut trailing = m.to_vec();
        trailing.push(0);
        assert_eq!(
            ChainApiRequest::decode(&trailing),
            Err(ChainWireError::TrailingBytes(1))
        );
        assert!(ChainApiRequest::decode(&[7, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(ChainApiRequest::decode(&[]).is_err());
        // Method 0, then a path claiming 4 GiB.
        assert!(ChainApiRequest::decode(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f, b'/']).is_err());
    }
}
