//! The rules file as TOML gives it, before validation: every value that can be wrong keeps its
//! span so that the semantic checks in `compile` can point at it.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::{Action, Direction, Verdict};

/// The whole file. Unknown keys are errors: a misspelt key silently ignored would be a rule that
/// matches more than its author meant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) default: Option<Verdict>,
    pub(crate) ask_fallback: Option<Verdict>,
    pub(crate) driver: Option<RawDriver>,
    #[serde(default)]
    pub(crate) rule: Vec<Spanned<RawRule>>,
}

/// The `[driver]` table: settings the service keeps the driver in sync with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDriver {
    pub(crate) default_verdict: Option<Verdict>,
    pub(crate) pend_timeout: Option<Spanned<String>>,
    pub(crate) max_pended: Option<Spanned<i64>>,
}

/// One `[[rule]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) name: Spanned<String>,
    pub(crate) action: Action,
    pub(crate) app: Option<Spanned<List<String>>>,
    pub(crate) direction: Option<Direction>,
    pub(crate) protocol: Option<Spanned<List<Scalar>>>,
    pub(crate) remote: Option<Spanned<List<String>>>,
    pub(crate) local: Option<Spanned<List<String>>>,
    pub(crate) remote_port: Option<Spanned<List<Scalar>>>,
    pub(crate) local_port: Option<Spanned<List<Scalar>>>,
    pub(crate) pid: Option<Spanned<List<Scalar>>>,
    pub(crate) domain: Option<Spanned<List<String>>>,
}

/// A list-valued condition: a TOML array, or a single value as shorthand for a one-element array.
pub(crate) struct List<T>(pub(crate) Vec<Item<T>>);

/// One list element. `span` is `None` for the single-value shorthand, whose span is the list's.
pub(crate) struct Item<T> {
    pub(crate) span: Option<Range<usize>>,
    pub(crate) value: T,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<T> ListVisitor<T> {
    fn one<'de, D: Deserializer<'de>>(value: D) -> Result<List<T>, D::Error>
    where
        T: Deserialize<'de>,
    {
        // The element type reports its own "invalid type" error, which names what it expected.
        Ok(List(vec![Item { span: None, value: T::deserialize(value)? }]))
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array or a single value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<T>>()? {
            items.push(Item { span: Some(item.span()), value: item.into_inner() });
        }
        Ok(List(items))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<List<T>, E> {
        Self::one(v.into_deserializer())
    }
}

/// The keyword enums. Written by hand rather than derived so that a value of the wrong type
/// (`action = 1`) is reported as "invalid type: integer `1`, expected one of `allow`, ..." instead
/// of the TOML deserializer's generic message for enums.
macro_rules! keyword_enum {
    ($ty:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(Keyword { names: &[$($name),+], values: &[$($ty::$variant),+] })
            }
        }
    };
}

keyword_enum!(Action { "allow" => Allow, "block" => Block, "ask" => Ask });
keyword_enum!(Verdict { "allow" => Allow, "block" => Block });
keyword_enum!(Direction { "outbound" => Outbound, "inbound" => Inbound });

/// Visits a string that must be one of `names`; `values` are the matching variants, in order.
struct Keyword<T: 'static> {
    names: &'static [&'static str],
    values: &'static [T],
}

impl<T: Copy + 'static> Visitor<'_> for Keyword<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of ")?;
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.names
            .iter()
            .position(|name| *name == v)
            .and_then(|i| self.values.get(i).copied())
            .ok_or_else(|| E::unknown_variant(v, self.names))
    }
}

/// A value that may be written as an integer or a string (`443` or `"8000-8100"`, `6` or `"tcp"`);
/// its meaning is checked per field in `compile`.
pub(crate) enum Scalar {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        // TOML integers are i64; anything larger is out of range for every field anyway.
        Ok(Scalar::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
}
