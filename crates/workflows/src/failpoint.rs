//! Fail points for crash tests: places where the runtime aborts the process on purpose, so a test
//! can restart it and check that nothing is lost or done twice.

/// Where to abort. Set with [`crate::WorkflowRuntime::set_failpoint`] or the environment variable
/// `FUNNEL_FAILPOINT` (`after_commands`, `after_timer_commands`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// After a reaction's commands were sent (any trigger), before the instance's events are
    /// appended.
    AfterCommandBeforeSagaAppend,
    /// After the commands of a timer's reaction were sent, before the fired timer and the
    /// instance's events are appended.
    AfterTimerCommandBeforeAppend,
}

impl FailPoint {
    /// The name used in `FUNNEL_FAILPOINT`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailPoint::AfterCommandBeforeSagaAppend => "after_commands",
            FailPoint::AfterTimerCommandBeforeAppend => "after_timer_commands",
        }
    }

    /// Parses a name used in `FUNNEL_FAILPOINT`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            FailPoint::AfterCommandBeforeSagaAppend,
            FailPoint::AfterTimerCommandBeforeAppend,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// The fail point the environment asks for, if any.
    pub fn from_env() -> Option<Self> {
        std::env::var("FUNNEL_FAILPOINT")
            .ok()
            .and_then(|s| Self::parse(&s))
    }

    /// Whether the process should abort here: after `commands` were sent for a trigger that is a
    /// timer (`timer`) or a business event.
    pub(crate) fn hit(self, timer: bool, commands: usize) -> bool {
        commands > 0
            && match self {
                FailPoint::AfterCommandBeforeSagaAppend => true,
                FailPoint::AfterTimerCommandBeforeAppend => timer,
            }
    }
}
