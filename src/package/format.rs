//! What a release is packaged as: its archive formats and its layout.

use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use crate::names::{UnknownName, value_enum};

/// Where the top directory of an archive comes from and whether `.info` files are rewritten.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
    VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownName,
    parse_err_fn = unknown_layout
)]
pub enum Layout {
    /// Top directory `NAME-VERSION/`, files exactly as in git.
    Plain,
    /// Top directory `NAME/`, `.info` and `.info.yml` files get drupal.org's version block.
    Drupal,
}
value_enum!(Layout);

fn unknown_layout(value: &str) -> UnknownName {
    UnknownName::new("layout", value, <Layout as strum::VariantNames>::VARIANTS)
}

impl Layout {
    /// The name settings, the CLI and the database use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An archive format; its name is also the file extension.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
    VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(parse_err_ty = UnknownName, parse_err_fn = unknown_format)]
pub enum ArchiveFormat {
    #[strum(serialize = "tar.gz")]
    TarGz,
    #[strum(serialize = "zip")]
    Zip,
}
value_enum!(ArchiveFormat);

fn unknown_format(value: &str) -> UnknownName {
    UnknownName::new(
        "archive format",
        value,
        <ArchiveFormat as strum::VariantNames>::VARIANTS,
    )
}

impl ArchiveFormat {
    /// What a release is packaged as when the project does not say.
    pub const DEFAULTS: [ArchiveFormat; 2] = [ArchiveFormat::TarGz, ArchiveFormat::Zip];

    /// The file extension, which is also the name settings and the database use.
    pub fn extension(self) -> &'static str {
        self.into()
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "application/gzip",
            ArchiveFormat::Zip => "application/zip",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ArchiveFormat, Layout};

    #[test]
    fn one_spelling_everywhere() {
        crate::names::assert_one_spelling::<ArchiveFormat>();
        crate::names::assert_one_spelling::<Layout>();
        // `baler package --layout/--format` accept the same names, in the same order.
        fn flags<T: clap::ValueEnum>() -> Vec<String> {
            T::value_variants()
                .iter()
                .filter_map(T::to_possible_value)
                .map(|v| v.get_name().to_string())
                .collect()
        }
        assert_eq!(flags::<ArchiveFormat>(), ["tar.gz", "zip"]);
        assert_eq!(flags::<Layout>(), ["plain", "drupal"]);
        assert_eq!(ArchiveFormat::TarGz.extension(), "tar.gz");
        assert_eq!(Layout::Drupal.as_str(), "drupal");
        assert_eq!(
            "rar".parse::<ArchiveFormat>().unwrap_err().to_string(),
            "unknown archive format `rar`, expected one of: tar.gz, zip"
        );
    }
}
