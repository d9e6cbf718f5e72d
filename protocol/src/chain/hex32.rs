//! Newtypes over 32 bytes that read as lowercase hex in human-readable
//! formats (JSON, TOML) and as 32 raw bytes otherwise (postcard).

/// Implements `Display`, `Debug`, `FromStr` (error `Rejection::Malformed`)
/// and hex-or-bytes serde for `$name(pub [u8; 32])`.
macro_rules! hex32_newtype {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    Ok(Self(<[u8; 32]>::deserialize(d)?))
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::chain::Rejection;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || {
                    $crate::chain::Rejection::Malformed(format!(
                        "'{}' is not 64 hex digits",
                        s.chars().take(80).collect::<String>()
                    ))
                };
                let bytes = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(s.as_bytes())
                    .map_err(|_| bad())?;
                Ok(Self(bytes.try_into().map_err(|_| bad())?))
            }
        }
    };
}

pub(crate) use hex32_newtype;
