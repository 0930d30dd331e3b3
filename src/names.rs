//! The fixed sets of names that settings, URLs and database columns spell: hosts, layouts,
//! archive formats. Each enum spells its names once, in its `strum` attributes; `FromStr` and
//! `Display` come from strum, serde goes through them (`serde_with`), and so does clap
//! ([`value_enum!`]). A name outside the set is an [`UnknownName`] that says what was expected.

/// A name that is not one of its set's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`, expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    what: &'static str,
    value: String,
    expected: &'static [&'static str],
}

impl UnknownName {
    pub fn new(what: &'static str, value: &str, expected: &'static [&'static str]) -> UnknownName {
        UnknownName {
            what,
            value: value.to_string(),
            expected,
        }
    }
}

/// `clap::ValueEnum` from the strum names, so a command-line flag accepts exactly the names the
/// config file does.
macro_rules! value_enum {
    ($name:ty) => {
        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                <$name as strum::VariantArray>::VARIANTS
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(<&'static str>::from(
                    self,
                )))
            }
        }
    };
}
pub(crate) use value_enum;

/// Checks that every name of `T` is spelled the same by `Display`, `FromStr` and serde: the
/// unit tests of each named enum call it.
#[cfg(test)]
pub(crate) fn assert_one_spelling<T>()
where
    T: strum::VariantArray
        + std::fmt::Display
        + std::str::FromStr<Err = UnknownName>
        + serde::Serialize
        + PartialEq
        + std::fmt::Debug
        + Copy
        + Into<&'static str>,
{
    for variant in T::VARIANTS {
        let name: &'static str = (*variant).into();
        assert_eq!(variant.to_string(), name);
        assert_eq!(name.parse::<T>().unwrap(), *variant);
        assert_eq!(
            serde_json::to_string(variant).unwrap(),
            format!("\"{name}\"")
        );
    }
}
