//! The environment part of the settings: `BALER_*` variables override the file, and projects
//! name the variables that hold their secrets.

/// The process environment as the config sees it. Tests and `--demo` pass their own.
pub struct Environment<'a> {
    vars: &'a [(String, String)],
}

/// A setting's value with where it came from, so an error can name the file or the variable.
pub struct Sourced {
    pub value: Option<String>,
    pub origin: String,
}

impl<'a> Environment<'a> {
    pub fn new(vars: &'a [(String, String)]) -> Environment<'a> {
        Environment { vars }
    }

    /// A variable's value; an empty one counts as unset.
    pub fn var(&self, name: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    /// Every set variable whose name starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(k, v)| k.starts_with(prefix) && !v.is_empty())
            .cloned()
            .collect()
    }

    /// The variable `name` if set, else the file's value (from `file_origin`).
    pub fn or_file(&self, name: &str, file_value: Option<String>, file_origin: &str) -> Sourced {
        match self.var(name) {
            Some(value) => Sourced {
                value: Some(value),
                origin: format!("environment variable {name}"),
            },
            None => Sourced {
                value: file_value,
                origin: file_origin.to_string(),
            },
        }
    }
}
