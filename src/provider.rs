//! The host a project's repository lives on and its webhooks come from.

use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use crate::names::UnknownName;

/// The host a project's webhooks come from; `gitea` covers Forgejo too.
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
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownName,
    parse_err_fn = unknown_provider
)]
pub enum Provider {
    Github,
    Gitlab,
    Gitea,
    Bitbucket,
}

fn unknown_provider(value: &str) -> UnknownName {
    UnknownName::new(
        "provider",
        value,
        <Provider as strum::VariantNames>::VARIANTS,
    )
}

impl Provider {
    /// The basic-auth user name the host expects with an access token as the password.
    pub fn token_user(self) -> &'static str {
        match self {
            Provider::Github => "x-access-token",
            Provider::Gitlab => "oauth2",
            Provider::Gitea => "oauth2",
            Provider::Bitbucket => "x-token-auth",
        }
    }

    /// The name settings, URLs and the database use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::Provider;

    #[test]
    fn one_spelling_everywhere() {
        crate::names::assert_one_spelling::<Provider>();
        assert_eq!(Provider::Gitea.as_str(), "gitea");
        let err = "svn".parse::<Provider>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown provider `svn`, expected one of: github, gitlab, gitea, bitbucket"
        );
    }
}
