//! Credentials kept out of messages and logs.

/// A URL without its credentials, for messages and logs: `user:pw@` keeps the user,
/// a bare token (`https://TOKEN@host`) is hidden whole.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://baler:pw@db/baler"),
            "postgres://baler:***@db/baler"
        );
        assert_eq!(super::redact("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(
            super::redact("https://ghp_token@github.com/acme/widget.git"),
            "https://***@github.com/acme/widget.git"
        );
    }
}
