//! The clients' server-side filters: a regular expression or a list of prefixes, on the stream
//! name or the event type.
//!
//! Regular expressions are the .NET dialect the clients write, look-around included: the Python
//! client's default `^(?!(\$.+$|PersistentConfig\d+$|Result$))` (exclude system events) is a
//! negative look-ahead, which `fancy-regex` supports. A client's pattern runs with a backtracking
//! limit, so a pathological one fails that event's match rather than holding a core.

use crate::proto::event_store::client::streams::read_req::options::{
    FilterOptions, filter_options,
};
use funnel_store::RecordedEvent;

/// The default search window when the client does not give one (KurrentDB's).
const DEFAULT_WINDOW: u32 = 32;

#[derive(Debug)]
pub struct EventFilter {
    on_type: bool,
    matcher: Matcher,
    /// A checkpoint is due every this many events scanned.
    pub checkpoint_interval: u64,
}

#[derive(Debug)]
enum Matcher {
    Prefixes(Vec<String>),
    Regex(Box<fancy_regex::Regex>),
}

impl EventFilter {
    pub fn from_options(options: &FilterOptions) -> Result<Self, tonic::Status> {
        let (on_type, expr) = match &options.filter {
            Some(filter_options::Filter::StreamIdentifier(e)) => (false, e),
            Some(filter_options::Filter::EventType(e)) => (true, e),
            None => {
                return Err(tonic::Status::invalid_argument(
                    "a filter needs a stream-name or an event-type expression",
                ));
            }
        };
        let matcher = if !expr.prefix.is_empty() {
            Matcher::Prefixes(expr.prefix.clone())
        } else {
            let regex = fancy_regex::RegexBuilder::new(&expr.regex)
                .backtrack_limit(100_000)
                .delegate_size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    tonic::Status::invalid_argument(format!(
                        "the filter's regular expression `{}` is not valid: {e}",
                        expr.regex
                    ))
                })?;
            Matcher::Regex(Box::new(regex))
        };
        let window = match options.window {
            Some(filter_options::Window::Max(m)) if m > 0 => m,
            _ => DEFAULT_WINDOW,
        };
        if options.checkpoint_interval_multiplier == 0 {
            return Err(tonic::Status::invalid_argument(
                "the checkpoint interval multiplier must be at least 1",
            ));
        }
        Ok(Self {
            on_type,
            matcher,
            checkpoint_interval: u64::from(window)
                * u64::from(options.checkpoint_interval_multiplier),
        })
    }

    pub fn matches(&self, rec: &RecordedEvent) -> bool {
        let subject = if self.on_type {
            rec.meta.event_type.as_str()
        } else {
            rec.meta.stream.as_str()
        };
        match &self.matcher {
            Matcher::Prefixes(p) => p.iter().any(|p| subject.starts_with(p.as_str())),
            Matcher::Regex(r) => r.is_match(subject).unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::event_store::client::streams::read_req::options::filter_options::{
        Expression, Filter, Window,
    };

    fn matcher(filter: Filter) -> EventFilter {
        EventFilter::from_options(&FilterOptions {
            filter: Some(filter),
            window: Some(Window::Max(30)),
            checkpoint_interval_multiplier: 5,
        })
        .unwrap()
    }

    fn subject_matches(f: &EventFilter, s: &str) -> bool {
        match &f.matcher {
            Matcher::Prefixes(p) => p.iter().any(|p| s.starts_with(p.as_str())),
            Matcher::Regex(r) => r.is_match(s).unwrap(),
        }
    }

    #[test]
    fn the_python_clients_default_exclusion_keeps_funnels_types_and_drops_system_ones() {
        let f = matcher(Filter::EventType(Expression {
            regex: r"^(?!(\$.+$|PersistentConfig\d+$|Result$))".into(),
            prefix: vec![],
        }));
        assert!(subject_matches(&f, "lead.registered"));
        assert!(!subject_matches(&f, "$metadata"));
        assert!(!subject_matches(&f, "PersistentConfig1"));
        assert!(!subject_matches(&f, "Result"));
        assert_eq!(f.checkpoint_interval, 150);
    }

    #[test]
    fn prefixes_and_the_rust_clients_exclusion() {
        let f = matcher(Filter::StreamIdentifier(Expression {
            regex: String::new(),
            prefix: vec!["lead-".into(), "office-".into()],
        }));
        assert!(subject_matches(&f, "lead-0192"));
        assert!(!subject_matches(&f, "staff-1"));
        let f = matcher(Filter::EventType(Expression {
            regex: r"^[^\$].*".into(),
            prefix: vec![],
        }));
        assert!(subject_matches(&f, "lead.registered"));
        assert!(!subject_matches(&f, "$stats"));
    }

    #[test]
    fn a_bad_regex_or_a_zero_multiplier_is_refused() {
        let bad = FilterOptions {
            filter: Some(Filter::EventType(Expression {
                regex: "(".into(),
                prefix: vec![],
            })),
            window: None,
            checkpoint_interval_multiplier: 1,
        };
        assert!(EventFilter::from_options(&bad).is_err());
        let zero = FilterOptions {
            filter: Some(Filter::EventType(Expression {
                regex: ".*".into(),
                prefix: vec![],
            })),
            window: None,
            checkpoint_interval_multiplier: 0,
        };
        assert!(EventFilter::from_options(&zero).is_err());
    }
}
