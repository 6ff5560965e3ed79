//! DNS names: the strict check for configured patterns, and the lenient form of names seen on the
//! wire.
//!
//! Two kinds of name meet in a domain rule, and they need opposite treatment:
//! - **Patterns** come from an administrator (a rules file, then the blocklist IOCTL). They are
//!   checked strictly ([`validate`]): a typo must be an error, not a rule that silently never
//!   matches. Internationalized names are written in their punycode (`xn--`) form, which is what
//!   TLS and HTTP carry on the wire (RFC 6066 §3: "HostName" is ASCII; RFC 5890 A-labels).
//! - **Names seen on the wire** (a TLS SNI, an HTTP `Host`) come from whatever process opened the
//!   connection. They are never rejected, only normalized ([`HostName::from_wire`]): ASCII case
//!   folded, trailing dots dropped, every other byte kept. Rejecting an odd spelling would be a way
//!   around a block rule (`EVIL.example.`, `x_y.evil.example` and even non-ASCII bytes below
//!   `evil.example` must still match `*.evil.example`).
//!
//! Matching is byte equality after normalization, on label boundaries: `*.example.com` matches
//! `a.example.com` and `a.b.example.com` but neither `example.com` nor `badexample.com`.

/// Longest DNS name in text form, without the trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// How many bytes of a name seen on the wire are kept (its tail, see [`HostName`]).
pub const HOST_CAPACITY: usize = 255;

/// What a domain pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternKind {
    /// `example.com`: that name only.
    Exact,
    /// `*.example.com`: every name below `example.com`, at any depth, but not `example.com`.
    Below,
}

/// Why bytes are not a valid pattern name. Positions are byte offsets into the checked name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameError {
    /// No bytes at all.
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong {
        /// The name's length.
        len: usize,
    },
    /// Two dots in a row, or a leading or trailing dot.
    EmptyLabel {
        /// Where the empty label is.
        at: usize,
    },
    /// A label longer than [`MAX_LABEL_LEN`].
    LabelTooLong {
        /// Where the label starts.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// An ASCII byte other than a letter, digit, `-` or `_`.
    BadCharacter {
        /// Where it is.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// A byte ≥ 0x80: internationalized names must be written in punycode.
    NonAscii {
        /// Where it is.
        at: usize,
    },
    /// A label that starts or ends with `-`.
    HyphenAtLabelEdge {
        /// Where the label starts.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// An uppercase letter where the canonical (lowercase) form is required.
    Uppercase {
        /// Where it is.
        at: usize,
    },
}

impl NameError {
    /// A short description, for error messages.
    #[must_use]
    pub const fn describe(&self) -> &'static str {
        match self {
            NameError::Empty => "the domain name is empty",
            NameError::TooLong { .. } => "the domain name is longer than 253 characters",
            NameError::EmptyLabel { .. } => "empty label (two dots in a row, or a leading dot)",
            NameError::LabelTooLong { .. } => "a label is longer than 63 characters",
            NameError::BadCharacter { .. } => "a character that is not allowed in a domain name",
            NameError::NonAscii { .. } => {
                "a non-ASCII character: write internationalized names in their punycode (`xn--`) form"
            }
            NameError::HyphenAtLabelEdge { .. } => "a label starts or ends with `-`",
            NameError::Uppercase { .. } => "an uppercase letter where the lowercase form is required",
        }
    }
}

/// Checks a pattern's name: 1 to 253 bytes of dot-separated labels of 1 to 63 ASCII letters,
/// digits, `-` or `_` (underscores appear in real names: `_dmarc`, some CDN hosts), no label
/// starting or ending with `-`, no leading or trailing dot. Either case is accepted.
///
/// # Errors
/// The first problem found, scanning from the start.
pub fn validate(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    let mut start = 0_usize;
    for label in name.split(|byte| *byte == b'.') {
        check_label(label, start)?;
        start = start.saturating_add(label.len()).saturating_add(1);
    }
    Ok(())
}

/// [`validate`], and every letter lowercase: the one encoding the blocklist IOCTL accepts.
///
/// # Errors
/// As [`validate`], or [`NameError::Uppercase`].
pub fn validate_canonical(name: &[u8]) -> Result<(), NameError> {
    validate(name)?;
    match name.iter().position(u8::is_ascii_uppercase) {
        Some(at) => Err(NameError::Uppercase { at }),
        None => Ok(()),
    }
}

fn check_label(label: &[u8], start: usize) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel { at: start });
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong { start, len: label.len() });
    }
    for (offset, byte) in label.iter().enumerate() {
        let at = start.saturating_add(offset);
        if !byte.is_ascii() {
            return Err(NameError::NonAscii { at });
        }
        if !(byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'_') {
            return Err(NameError::BadCharacter { at, byte: *byte });
        }
    }
    if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
        return Err(NameError::HyphenAtLabelEdge { start, len: label.len() });
    }
    Ok(())
}

/// Whether `host` is strictly below `suffix`: it ends in `.` + `suffix`. Both must already be
/// normalized (the same case); this is the label-boundary rule that keeps `*.example.com` from
/// matching `badexample.com`.
#[must_use]
pub fn is_below(host: &[u8], suffix: &[u8]) -> bool {
    let Some(dot) = host.len().checked_sub(suffix.len().saturating_add(1)) else {
        return false;
    };
    host.get(dot) == Some(&b'.') && host.get(dot.saturating_add(1)..) == Some(suffix)
}

/// A name seen on the wire (TLS SNI, HTTP `Host`), normalized for matching.
///
/// Normalization: ASCII letters lowercased, trailing dots removed (`example.com.` is the same name
/// as `example.com`, so a trailing dot must not be a way around a rule), every other byte kept as
/// it came. Names longer than [`HOST_CAPACITY`] keep their **tail**: the end of a name is what a
/// `*.suffix` rule looks at, so a long name cannot push the part that matters out of the buffer;
/// such a name is [`HostName::is_truncated`] and never matches an exact pattern (patterns are at
/// most 253 bytes). It lives on the stack or in a flow's slot: no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HostName {
    bytes: [u8; HOST_CAPACITY],
    len: u8,
    truncated: bool,
}

impl HostName {
    /// No name.
    pub const EMPTY: HostName = HostName { bytes: [0; HOST_CAPACITY], len: 0, truncated: false };

    /// Normalizes `raw` as it came off the wire.
    #[must_use]
    pub fn from_wire(raw: &[u8]) -> HostName {
        let mut end = raw.len();
        while end > 0 && raw.get(end.saturating_sub(1)) == Some(&b'.') {
            end = end.saturating_sub(1);
        }
        let name = raw.get(..end).unwrap_or_default();
        let start = name.len().saturating_sub(HOST_CAPACITY);
        let kept = name.get(start..).unwrap_or_default();
        let mut out = HostName::EMPTY;
        for (slot, byte) in out.bytes.iter_mut().zip(kept) {
            *slot = byte.to_ascii_lowercase();
        }
        // `kept` is at most HOST_CAPACITY (255) bytes long.
        out.len = u8::try_from(kept.len()).unwrap_or(u8::MAX);
        out.truncated = start > 0;
        out
    }

    /// The normalized bytes (the name's tail if it was truncated).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether there is no name.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the name was longer than [`HOST_CAPACITY`] and only its tail is kept.
    #[must_use]
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Whether every byte is ASCII (an internationalized name sent in its UTF-8 form is not; it
    /// can still match a `*.suffix` rule on its ASCII tail).
    #[must_use]
    pub fn is_ascii(&self) -> bool {
        self.as_bytes().is_ascii()
    }

    /// Whether the name is a valid DNS name in the sense of [`validate`].
    #[must_use]
    pub fn is_valid_dns(&self) -> bool {
        !self.truncated && validate(self.as_bytes()).is_ok()
    }

    /// Whether the name is exactly `name` (normalized, lowercase). Never true for a truncated name.
    #[must_use]
    pub fn is(&self, name: &[u8]) -> bool {
        !self.truncated && !self.is_empty() && self.as_bytes() == name
    }

    /// Whether the name is strictly below `suffix` (normalized, lowercase).
    #[must_use]
    pub fn is_below(&self, suffix: &[u8]) -> bool {
        is_below(self.as_bytes(), suffix)
    }

    /// Whether `pattern` (a normalized name of kind `kind`) matches this name.
    #[must_use]
    pub fn matches(&self, kind: PatternKind, pattern: &[u8]) -> bool {
        match kind {
            PatternKind::Exact => self.is(pattern),
            PatternKind::Below => self.is_below(pattern),
        }
    }

    /// Every proper parent of the name, longest first: for `a.b.example.com`, `b.example.com`,
    /// `example.com`, `com`. A `*.suffix` pattern matches exactly when its suffix is one of these,
    /// so a set lookup per parent is a complete `Below` match (at most 127 of them).
    #[must_use]
    pub fn parents(&self) -> Parents<'_> {
        Parents { rest: self.as_bytes() }
    }
}

impl core::fmt::Debug for HostName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.truncated {
            f.write_str("…")?;
        }
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// The iterator of [`HostName::parents`].
#[derive(Clone, Debug)]
pub struct Parents<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Parents<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let dot = self.rest.iter().position(|byte| *byte == b'.')?;
            self.rest = self.rest.get(dot.saturating_add(1)..).unwrap_or_default();
            // A trailing dot was removed by `from_wire`, so a parent is empty only for a name
            // ending in `.` after truncation; no pattern is empty, so skip it.
            if !self.rest.is_empty() {
                return Some(self.rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_accepts_ordinary_names() {
        for name in ["example.com", "a.b.c", "_dmarc.example.com", "xn--bcher-kva.example", "x", "A-1.Example"] {
            assert_eq!(validate(name.as_bytes()), Ok(()), "{name}");
        }
    }

    #[test]
    fn validate_reports_each_mistake() {
        assert_eq!(validate(b""), Err(NameError::Empty));
        assert_eq!(validate(b"a..b"), Err(NameError::EmptyLabel { at: 2 }));
        assert_eq!(validate(b".a"), Err(NameError::EmptyLabel { at: 0 }));
        assert_eq!(validate(b"a."), Err(NameError::EmptyLabel { at: 2 }));
        assert_eq!(validate(b"a b"), Err(NameError::BadCharacter { at: 1, byte: b' ' }));
        assert_eq!(validate("bü.de".as_bytes()), Err(NameError::NonAscii { at: 1 }));
        assert_eq!(validate(b"a.-b"), Err(NameError::HyphenAtLabelEdge { start: 2, len: 2 }));
        let long_label = [b'a'; 64];
        assert_eq!(validate(&long_label), Err(NameError::LabelTooLong { start: 0, len: 64 }));
        let long_name = [b'a'; 254];
        assert_eq!(validate(&long_name), Err(NameError::TooLong { len: 254 }));
        assert_eq!(validate_canonical(b"example.Com"), Err(NameError::Uppercase { at: 8 }));
        assert_eq!(validate_canonical(b"example.com"), Ok(()));
    }

    #[test]
    fn wire_names_are_folded_and_lose_trailing_dots() {
        let name = HostName::from_wire(b"WWW.Example.COM..");
        assert_eq!(name.as_bytes(), b"www.example.com");
        assert!(name.is(b"www.example.com"));
        assert!(name.is_below(b"example.com"));
        assert!(!name.is_below(b"www.example.com"));
        assert!(!HostName::from_wire(b"badexample.com").is_below(b"example.com"));
        assert!(HostName::from_wire(b"...").is_empty());
    }

    #[test]
    fn non_ascii_bytes_are_kept_and_still_match_below() {
        let name = HostName::from_wire("Bücher.Evil.Example".as_bytes());
        assert!(!name.is_ascii());
        assert!(!name.is_valid_dns());
        assert!(name.is_below(b"evil.example"));
    }

    #[test]
    fn long_names_keep_their_tail() {
        let mut raw = [b'a'; 300];
        raw[287..].copy_from_slice(b".evil.example");
        let name = HostName::from_wire(&raw);
        assert!(name.is_truncated());
        assert_eq!(name.as_bytes().len(), HOST_CAPACITY);
        assert!(name.is_below(b"evil.example"));
        assert!(!name.is(name.as_bytes()));
        assert!(!name.is_valid_dns());
    }

    #[test]
    fn parents_are_every_proper_suffix() {
        let name = HostName::from_wire(b"a.b.example.com");
        let parents: [&[u8]; 3] = [b"b.example.com", b"example.com", b"com"];
        assert!(name.parents().eq(parents));
        assert_eq!(HostName::from_wire(b"com").parents().count(), 0);
        let odd: [&[u8]; 2] = [b".b", b"b"];
        assert!(HostName::from_wire(b"a..b").parents().eq(odd));
    }

    proptest::proptest! {
        // No failure file (Miri isolates the file system), and few cases under Miri (it is slow).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            cases: if cfg!(miri) { 8 } else { 256 },
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn below_is_exactly_a_parent(host in "[a-zA-Z.]{0,40}", suffix in "[a-z]{1,5}(\\.[a-z]{1,5}){0,2}") {
            let name = HostName::from_wire(host.as_bytes());
            let by_parent = name.parents().any(|parent| parent == suffix.as_bytes());
            proptest::prop_assert_eq!(name.is_below(suffix.as_bytes()), by_parent);
        }

        #[test]
        fn from_wire_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let name = HostName::from_wire(&raw);
            proptest::prop_assert!(name.as_bytes().len() <= HOST_CAPACITY);
            proptest::prop_assert!(name.as_bytes().last() != Some(&b'.'));
            let _ = validate(&raw);
        }
    }
}
