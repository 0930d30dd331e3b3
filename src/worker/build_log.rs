//! A release's build log: what the job did, line by line. Lines that name where the
//! repository lives (a private host, a local path) are marked for admins only; the public
//! pages and API show the log without them (`releases::public_log`).

use std::fmt::Display;

use crate::releases::ADMIN_ONLY;

#[derive(Debug, Clone, Default)]
pub struct BuildLog {
    text: String,
}

impl BuildLog {
    /// A line anyone may read.
    pub fn line(&mut self, line: impl Display) {
        self.push("", line);
    }

    /// A line only admins see.
    pub fn admin_line(&mut self, line: impl Display) {
        self.push(ADMIN_ONLY, line);
    }

    fn push(&mut self, prefix: &str, line: impl Display) {
        // One entry is one line: a newline inside it (from an error message) would let it
        // pass for an unmarked line.
        let line = line.to_string().replace(['\n', '\r'], " ");
        self.text.push_str(prefix);
        self.text.push_str(&line);
        self.text.push('\n');
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_lines_are_left_out_of_the_public_log() {
        let mut log = BuildLog::default();
        log.admin_line("fetched from https://git.internal/x.git\nforged line");
        log.line("mirror synced in 3 ms");
        let public = crate::releases::public_log(log.as_str());
        assert_eq!(public, "mirror synced in 3 ms\n");
        assert!(log.as_str().contains("git.internal"));
    }
}
