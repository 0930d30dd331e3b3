//! Pagination as GitHub's API does it: `?page=N&per_page=M` (pages count from 1; `per_page`
//! above the maximum is capped, not refused) and a `Link` header with the `prev`, `next`,
//! `last` and `first` pages that exist.

use serde::Deserialize;

use crate::error::AppError;

/// The query as it arrived; numbers are checked by [`PageQuery::check`], so that a bad one
/// gets an error that names it.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

impl PageQuery {
    /// True when the query names a page or a page size; without either a list is its first
    /// page at the full size.
    pub fn asks_for_a_page(&self) -> bool {
        self.page.is_some() || self.per_page.is_some()
    }

    /// `per_page` defaults to `max_per_page` and is capped at it.
    pub fn check(self, max_per_page: usize) -> Result<Paging, AppError> {
        let page = whole_number("page", self.page.as_deref())?.unwrap_or(1);
        let per_page = whole_number("per_page", self.per_page.as_deref())?
            .unwrap_or(max_per_page)
            .min(max_per_page);
        Ok(Paging { page, per_page })
    }
}

fn whole_number(name: &str, value: Option<&str>) -> Result<Option<usize>, AppError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a whole number of at least 1, not {value:?}"
        ))),
    }
}

impl Paging {
    /// The items of this page out of `items`.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = (self.page - 1)
            .saturating_mul(self.per_page)
            .min(items.len());
        let end = start.saturating_add(self.per_page).min(items.len());
        &items[start..end]
    }

    /// The `Link` header for `total` items at `base` (an absolute URL without a query), or
    /// `None` when everything fits on one page, as GitHub leaves it out then.
    pub fn link(&self, base: &str, total: usize) -> Option<String> {
        let last = total.div_ceil(self.per_page).max(1);
        if last == 1 && self.page == 1 {
            return None;
        }
        let url = |page: usize| format!("<{base}?page={page}&per_page={}>", self.per_page);
        let mut rels = Vec::new();
        if self.page > 1 {
            rels.push(format!("{}; rel=\"prev\"", url((self.page - 1).min(last))));
        }
        if self.page < last {
            rels.push(format!("{}; rel=\"next\"", url(self.page + 1)));
            rels.push(format!("{}; rel=\"last\"", url(last)));
        }
        if self.page > 1 {
            rels.push(format!("{}; rel=\"first\"", url(1)));
        }
        Some(rels.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::{PageQuery, Paging};

    fn query(page: Option<&str>, per_page: Option<&str>) -> PageQuery {
        PageQuery {
            page: page.map(str::to_string),
            per_page: per_page.map(str::to_string),
        }
    }

    #[test]
    fn numbers_are_checked_and_per_page_capped() {
        let paging = query(None, None).check(100).unwrap();
        assert_eq!(
            paging,
            Paging {
                page: 1,
                per_page: 100
            }
        );
        let paging = query(Some("3"), Some("500")).check(100).unwrap();
        assert_eq!(
            paging,
            Paging {
                page: 3,
                per_page: 100
            }
        );
        for (page, per_page) in [(Some("0"), None), (Some("x"), None), (None, Some("-1"))] {
            let error = query(page, per_page).check(100).unwrap_err().to_string();
            assert!(
                error.contains("must be a whole number of at least 1"),
                "{error}"
            );
        }
    }

    #[test]
    fn pages_slice_their_items() {
        let items: Vec<u32> = (1..=5).collect();
        let page = |page| Paging { page, per_page: 2 };
        assert_eq!(page(1).slice(&items), [1, 2]);
        assert_eq!(page(3).slice(&items), [5]);
        assert!(page(4).slice(&items).is_empty());
    }

    #[test]
    fn links_name_the_pages_that_exist() {
        let base = "https://baler.example/api/v1/projects/demo/releases";
        let page = |page| Paging { page, per_page: 2 };
        assert_eq!(page(1).link(base, 2), None);
        assert_eq!(
            page(1).link(base, 5).unwrap(),
            format!(
                "<{base}?page=2&per_page=2>; rel=\"next\", <{base}?page=3&per_page=2>; rel=\"last\""
            )
        );
        assert_eq!(
            page(2).link(base, 5).unwrap(),
            format!(
                "<{base}?page=1&per_page=2>; rel=\"prev\", <{base}?page=3&per_page=2>; rel=\"next\", \
                 <{base}?page=3&per_page=2>; rel=\"last\", <{base}?page=1&per_page=2>; rel=\"first\""
            )
        );
        assert_eq!(
            page(3).link(base, 5).unwrap(),
            format!(
                "<{base}?page=2&per_page=2>; rel=\"prev\", <{base}?page=1&per_page=2>; rel=\"first\""
            )
        );
        // Past the end: back to the last page that exists.
        assert_eq!(
            page(9).link(base, 5).unwrap(),
            format!(
                "<{base}?page=3&per_page=2>; rel=\"prev\", <{base}?page=1&per_page=2>; rel=\"first\""
            )
        );
    }
}
